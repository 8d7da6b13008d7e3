"""The paths of ``quietly query paths`` as a flow: one column per step, a node per step
name sized by its sessions, and a band from node to node for every path, as wide as
its sessions. Inline SVG rendered on the server, like charts.py: no script."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from html import escape

from quietly_collector.insights.render.charts import PALETTE

W, H = 640, 260
PAD, NODE_W, LABEL = 8, 10, 26  # node width; characters of a label kept

Path = tuple[Sequence[str], int]  # steps, sessions


def flow(paths: Sequence[Path], label: str = "") -> str:
    """``paths``: the top paths (steps, sessions); nodes are stacked per column."""
    paths = [(list(s), n) for s, n in paths if s and n > 0]
    if not paths:
        return '<p class="empty">No paths in this period.</p>'
    cols = max(len(s) for s, _ in paths)
    size: list[dict[str, int]] = [defaultdict(int) for _ in range(cols)]
    for steps, n in paths:
        for i, step in enumerate(steps):
            size[i][step] += n
    total = max(sum(c.values()) for c in size)
    scale = (H - 2 * PAD - 6 * PAD) / total
    xs = [PAD + (W - 2 * PAD - NODE_W - 150) * (i / max(1, cols - 1)) for i in range(cols)]
    top: list[dict[str, float]] = []
    parts: list[str] = []
    for i, col in enumerate(size):
        y, at = float(PAD), {}
        for step, n in sorted(col.items(), key=lambda kv: (-kv[1], kv[0])):
            at[step] = y
            h = max(2.0, n * scale)
            color = PALETTE[i % len(PALETTE)]
            parts.append(f'<rect x="{xs[i]:.1f}" y="{y:.1f}" width="{NODE_W}" height="{h:.1f}"'
                         f' fill="{color}"><title>{escape(step)}: {n:,} sessions</title></rect>')
            parts.append(f'<text x="{xs[i] + NODE_W + 3:.1f}" y="{y + min(h, 14) - 3:.1f}"'
                         f' class="flowlab">{escape(_short(step))}</text>')
            y += h + PAD
        top.append(at)
    # Bands, widest first underneath: each takes its share of its two nodes' height.
    offset: list[dict[str, float]] = [defaultdict(float) for _ in range(cols)]
    inbound: list[dict[str, float]] = [defaultdict(float) for _ in range(cols)]
    for steps, n in sorted(paths, key=lambda p: -p[1]):
        h = n * scale
        for i in range(len(steps) - 1):
            a, b = steps[i], steps[i + 1]
            y0 = top[i][a] + offset[i][a] + h / 2
            y1 = top[i + 1][b] + inbound[i + 1][b] + h / 2
            offset[i][a] += h
            inbound[i + 1][b] += h
            x0, x1 = xs[i] + NODE_W, xs[i + 1]
            mid = (x0 + x1) / 2
            parts.append(f'<path d="M{x0:.1f},{y0:.1f} C{mid:.1f},{y0:.1f} {mid:.1f},{y1:.1f}'
                         f' {x1:.1f},{y1:.1f}" fill="none" stroke="{PALETTE[0]}"'
                         f' stroke-opacity="0.25" stroke-width="{max(1.0, h):.1f}">'
                         f"<title>{escape(' → '.join(steps))}: {n:,} sessions</title></path>")
    return (f'<svg class="chart flow" viewBox="0 0 {W} {H}" role="img"'
            f' aria-label="{escape(label)}">{"".join(parts)}</svg>')


def _short(step: str) -> str:
    return step if len(step) <= LABEL else step[:LABEL - 1] + "…"
