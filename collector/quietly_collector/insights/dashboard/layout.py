"""The page shell: navigation, period and app controls, sign-out, inline CSS."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from urllib.parse import urlencode

from aiohttp import web

from quietly_collector.insights.render.style import CSS

PAGES = (("executive", "/dashboard", "Executive"),
         ("product", "/dashboard/product", "Product"),
         ("engineering", "/dashboard/engineering", "Engineering"))
PERIODS = (7, 30, 90)
# Nothing but this page's own inline CSS, its forms and data: images: the browser
# refuses any other fetch, so a mistake cannot leak a request to a third party.
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:;"
       " form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def html_response(body: str, status: int = 200) -> web.Response:
    resp = web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["Cache-Control"] = "no-store"  # figures for the admin's eyes only
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


def document(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            # An empty icon: otherwise the browser asks for /favicon.ico (a 404).
            '<link rel="icon" href="data:,">'
            f"<title>{escape(title)} · Quietly</title><style>{CSS}</style></head>"
            f"<body>{body}</body></html>")


def page(active: str, title: str, subtitle: str, days: int, app: str, body: str,
         where: str = "", choices: Sequence[tuple[str, Sequence[str]]] = ()) -> str:
    """``where``: the segment filter in force (``plan:paid``); ``choices``: the segments
    and values the selector offers, as plain links."""
    nav = "".join(
        f'<a href="{href}{_qs(days, app, where)}" class="{"on" if key == active else ""}">'
        f"{label}</a>" for key, href, label in PAGES)
    here = dict((k, h) for k, h, _ in PAGES)[active]
    periods = "".join(
        f'<a href="{here}{_qs(d, app, where)}" class="{"on" if d == days else ""}">{d} days</a>'
        for d in PERIODS)
    scope = (f' · app <b>{escape(app)}</b> (<a href="{here}{_qs(days, "", where)}">all apps</a>)'
             if app else " · all apps")
    if choices:
        links = [f'<a href="{here}{_qs(days, app)}" class="{"" if where else "on"}">'
                 "all installs</a>"]
        for name, values in choices:
            links += [f'<a href="{here}{_qs(days, app, f"{name}:{v}")}" class="'
                      f'{"on" if where == f"{name}:{v}" else ""}">{escape(name)}: {escape(v)}</a>'
                      for v in values]
        body = f'<nav class="controls segments" aria-label="segment">{"".join(links)}</nav>{body}'

    header = (
        '<header class="top"><span class="brand">Quietly</span>'
        f'<nav aria-label="dashboards">{nav}</nav>'
        '<form method="post" action="/dashboard/logout"><button type="submit">Sign out'
        "</button></form></header>")
    return document(title, (
        f"{header}<main><h1>{escape(title)}</h1><p class=\"sub\">{escape(subtitle)}</p>"
        f'<div class="controls">{periods}<span class="sub">{scope}</span></div>'
        f"{body}<footer>Rendered by the collector from the metric views; nothing on this"
        " page is fetched from elsewhere. Changes compare with the period of the same"
        " length just before.</footer></main>"))


def _qs(days: int, app: str, where: str = "") -> str:
    params: dict[str, str | int] = {"days": days}
    if app:
        params["app"] = app
    if where:
        params["where"] = where
    return "?" + urlencode(params)


def panel(title: str, content: str, extra_class: str = "") -> str:
    return f'<section class="panel {extra_class}"><h2>{escape(title)}</h2>{content}</section>'
