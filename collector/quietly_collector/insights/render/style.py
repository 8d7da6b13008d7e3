"""The one stylesheet, inlined into every page (the report's HTML uses it too)."""

from __future__ import annotations

CSS = """
:root { color-scheme: light; --ink:#1f2937; --muted:#6b7280; --line:#e5e7eb; --bg:#f6f7f9;
  --card:#fff; --accent:#2563eb; --good:#15803d; --bad:#b91c1c; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color:var(--ink); background:var(--bg); }
header.top { background:#111827; color:#f9fafb; padding:0 24px; display:flex;
  align-items:center; gap:24px; flex-wrap:wrap; }
header.top .brand { font-weight:700; letter-spacing:.02em; padding:14px 0; }
header.top nav a { color:#d1d5db; text-decoration:none; padding:16px 12px; display:inline-block;
  border-bottom:3px solid transparent; }
header.top nav a.on { color:#fff; border-bottom-color:#60a5fa; }
header.top nav a:hover { color:#fff; }
header.top form { margin-left:auto; }
header.top button { background:none; color:#d1d5db; border:1px solid #4b5563; border-radius:6px;
  padding:4px 10px; cursor:pointer; font:inherit; }
main { max-width:1200px; margin:0 auto; padding:20px 24px 48px; }
h1 { font-size:1.5rem; margin:.2em 0 .1em; }
h2 { font-size:1.1rem; margin:0 0 .6em; }
h3 { font-size:1rem; margin:1em 0 .4em; }
.sub { color:var(--muted); margin:0 0 16px; }
.controls { display:flex; gap:8px; align-items:center; flex-wrap:wrap; margin:0 0 16px; }
.controls a { padding:4px 10px; border-radius:999px; border:1px solid var(--line);
  background:var(--card); color:var(--ink); text-decoration:none; }
.controls a.on { background:var(--accent); border-color:var(--accent); color:#fff; }
.grid { display:grid; gap:16px; grid-template-columns:repeat(auto-fit, minmax(460px, 1fr)); }
.cards { display:grid; gap:12px; grid-template-columns:repeat(auto-fit, minmax(190px, 1fr));
  margin-bottom:16px; }
.card, section.panel { background:var(--card); border:1px solid var(--line); border-radius:10px;
  padding:14px 16px; }
section.panel { margin-bottom:16px; }
.card .label { color:var(--muted); font-size:.85rem; }
.card .value { font-size:1.6rem; font-weight:650; margin:2px 0; }
.better { color:var(--good); } .worse { color:var(--bad); } .same { color:var(--muted); }
.delta { font-size:.85rem; }
svg.chart { width:100%; height:auto; max-height:300px; display:block; }
svg.chart .grid { stroke:var(--line); stroke-width:1; }
svg.chart text { font-size:11px; fill:var(--muted); }
svg.chart .ylab { text-anchor:end; }
svg.chart .val { fill:var(--ink); font-weight:600; }
svg.flow .flowlab { fill:var(--ink); font-size:10px; }
svg.spark { width:94px; height:24px; vertical-align:middle; }
.legend { display:flex; gap:14px; flex-wrap:wrap; font-size:.85rem; color:var(--muted); }
.legend i { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:5px; }
table { border-collapse:collapse; width:100%; font-size:.92rem; }
th, td { text-align:left; padding:6px 8px; border-bottom:1px solid var(--line);
  vertical-align:middle; }
th { color:var(--muted); font-weight:600; font-size:.82rem; text-transform:uppercase;
  letter-spacing:.03em; }
td.n, th.n { text-align:right; font-variant-numeric:tabular-nums; }
.hbar { display:inline-block; width:140px; height:10px; background:#eef2f7; border-radius:5px;
  overflow:hidden; vertical-align:middle; }
.hbar span { display:block; height:100%; border-radius:5px; }
.grade { display:inline-block; padding:1px 8px; border-radius:999px; font-size:.8rem;
  font-weight:600; }
.g-target { background:#dcfce7; color:#166534; } .g-good { background:#e0f2fe; color:#075985; }
.g-acceptable { background:#fef9c3; color:#854d0e; } .g-poor { background:#ffedd5; color:#9a3412; }
.g-unacceptable { background:#fee2e2; color:#991b1b; }
.g-ungraded { background:#f3f4f6; color:#4b5563; }
.alerts { border-left:4px solid var(--bad); }
.alerts.none { border-left-color:var(--good); }
.sev { font-weight:700; text-transform:uppercase; font-size:.75rem; }
.sev-critical { color:var(--bad); } .sev-warning { color:#b45309; }
.empty { color:var(--muted); font-style:italic; }
.login { max-width:380px; margin:12vh auto; background:var(--card); border:1px solid var(--line);
  border-radius:12px; padding:28px; }
.login input { width:100%; padding:8px 10px; font:inherit; border:1px solid #d1d5db;
  border-radius:6px; margin:6px 0 14px; }
.login button { background:var(--accent); color:#fff; border:0; border-radius:6px;
  padding:8px 16px; font:inherit; cursor:pointer; }
.error { color:var(--bad); }
footer { color:var(--muted); font-size:.8rem; margin-top:24px; }
"""
