"""The console's frame: one stylesheet, the navigation, tables and badges."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["badge", "esc", "page", "percent", "table"]

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#263238;color:#eceff1;padding:.6em 1.5em;display:flex;gap:1.5em;
align-items:center}
header a{color:#eceff1;text-decoration:none} header .who{margin-left:auto;font-size:.85em}
main{padding:1em 2em;max-width:78em}
h1{font-size:1.4em} h2{font-size:1.15em;margin-top:1.8em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0 1.2em;background:#fff}
th,td{padding:.3em .7em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
th{background:#eceff1}
tr.drift td,tr.fail td{background:#fde0dd}
.badge{display:inline-block;padding:.1em .5em;border-radius:.3em;color:#fff;font-weight:600;
font-size:.85em}
.bad{background:#d7301f} .ok{background:#31a354} .pending{background:#fdae61;color:#222}
.info{background:#546e7a}
.meta{color:#666;font-size:.85em}
.grid{display:flex;flex-wrap:wrap;gap:1em}
.card{border:1px solid #ddd;border-radius:.4em;padding:.5em;background:#fff}
.card.drift{border-color:#d7301f}
nav.tabs a{margin-right:1.2em}
form.login{background:#fff;border:1px solid #ddd;padding:1.5em;max-width:24em}
form.login input{width:100%;margin:.4em 0 1em;padding:.4em}
.error{color:#b71c1c;font-weight:600}
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def percent(share: float) -> str:
    return f"{100 * share:.1f}%"


def badge(text: str, kind: str) -> str:
    """``kind``: ok | bad | pending | info."""
    return f'<span class="badge {esc(kind)}">{esc(text)}</span>'


def table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], *, classes: Sequence[str] = ()
) -> str:
    """Cells are HTML already (escape text with :func:`esc`); ``classes`` per row."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{esc(classes[i])}"' if i < len(classes) and classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(headers)}" class="meta">none</td></tr>')
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def page(
    title: str, body: str, *, who: str = "", model: str = "", refresh_s: int | None = None
) -> str:
    """A whole document: header with navigation, then ``body`` (HTML). ``refresh_s``: the
    browser reloads it that often (a rollout in progress), saying so under the title."""
    links = ['<a href="/ui/models"><b>onnxgate</b></a>', '<a href="/ui/models">models</a>']
    links.append('<a href="/ui/audit">audit</a>')
    if who:
        links.append(f'<span class="who">{esc(who)} · <a href="/ui/logout">log out</a></span>')
    tabs = ""
    if model:
        m = esc(model)
        tabs = (
            f'<nav class="tabs"><a href="/ui/models/{m}">versions &amp; traffic</a>'
            f'<a href="/ui/models/{m}/governor">governor</a>'
            f'<a href="/ui/models/{m}/drift">drift</a>'
            f'<a href="/ui/models/{m}/shadows">shadows</a></nav>'
        )
    reload, note = "", ""
    if refresh_s is not None:
        reload = f'<meta http-equiv="refresh" content="{int(refresh_s)}">'
        note = (
            f'<p class="meta" id="refreshing">a rollout is in progress: this page reloads '
            f"every {int(refresh_s)} s</p>"
        )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">{reload}'
        f"<title>{esc(title)} · onnxgate</title><style>{_STYLE}</style></head><body>"
        f"<header>{''.join(links)}</header><main><h1>{esc(title)}</h1>{note}{tabs}\n{body}\n"
        "</main></body></html>\n"
    )
