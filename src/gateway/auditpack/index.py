"""The pack's index: every file with its sha256, and each AI Act article with its files.

Pure: :func:`index_of` builds ``index.json``'s value from the parts; :func:`markdown` and
:func:`html` render the same value for people, so the three always agree.
"""

from __future__ import annotations

import hashlib
import html as html_lib
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.auditpack.parts import ARTICLES, Evidence, Part

__all__ = ["FORMAT", "index_of", "markdown", "html"]

FORMAT = "onnxgate-audit-pack/1"


def index_of(ev: Evidence, parts: Sequence[Part], verification_ok: bool) -> dict[str, Any]:
    files: list[dict[str, Any]] = [
        {
            "path": p.path,
            "sha256": hashlib.sha256(p.data).hexdigest(),
            "bytes": len(p.data),
            "title": p.title,
            "articles": list(p.articles),
            "description": p.description,
            "items": p.items,
        }
        for p in parts
    ]
    return {
        "format": FORMAT,
        "model": ev.model,
        "period": {"since": ev.since, "until": ev.until},
        "generated_at": ev.generated_at,
        "generated_by": ev.generated_by,
        "verified": verification_ok,
        "articles": {
            article: {
                "title": title,
                "files": [f["path"] for f in files if article in f["articles"]],
            }
            for article, title in ARTICLES.items()
        },  # fmt: skip
        "files": files,
    }


def _period(index: Mapping[str, Any]) -> str:
    period = index["period"]
    return f"{period['since'] or 'the beginning'} to {period['until'] or 'now'}"


def markdown(index: Mapping[str, Any]) -> str:
    verdict = "verified: intact" if index["verified"] else "verification FAILED (see below)"
    out = [
        f"# Audit pack: {index['model']}",
        "",
        f"Period: {_period(index)}  ",
        f"Generated {index['generated_at']} by {index['generated_by']}  ",
        f"Result: **{verdict}** (`verification.json`)",
        "",
        "## EU AI Act (Regulation (EU) 2024/1689)",
        "",
        "| article | what it asks | files |",
        "|---|---|---|",
    ]
    for article, entry in index["articles"].items():
        files = ", ".join(f"`{f}`" for f in entry["files"]) or "-"
        out.append(f"| {article} | {entry['title']} | {files} |")
    out += ["", "## Files", "", "| file | contents | items | articles | sha256 |",
            "|---|---|---|---|---|"]  # fmt: skip
    for f in index["files"]:
        items = "" if f["items"] is None else str(f["items"])
        out.append(f"| `{f['path']}` | {f['title']}: {f['description']} | {items} | "
                   f"{', '.join(f['articles'])} | `{f['sha256']}` |")  # fmt: skip
    out += ["", "Check a file: `sha256sum FILE` must print the sha256 above.", ""]
    return "\n".join(out)


def html(index: Mapping[str, Any]) -> str:
    e = html_lib.escape
    verdict = "verified: intact" if index["verified"] else "verification FAILED"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Audit pack: {e(index['model'])}</title>",
        "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;"
        "text-align:left;vertical-align:top}code{font-size:85%;word-break:break-all}</style>",
        "</head><body>",
        f"<h1>Audit pack: {e(index['model'])}</h1>",
        f"<p>Period: {e(_period(index))}<br>Generated {e(index['generated_at'])} by "
        f"{e(index['generated_by'])}<br>Result: <strong>{e(verdict)}</strong> "
        '(<a href="verification.json">verification.json</a>)</p>',
        "<h2>EU AI Act (Regulation (EU) 2024/1689)</h2>",
        "<table><tr><th>article</th><th>what it asks</th><th>files</th></tr>",
    ]
    for article, entry in index["articles"].items():
        links = ", ".join(f'<a href="{e(f)}">{e(f)}</a>' for f in entry["files"]) or "-"
        out.append(f"<tr><td>{e(article)}</td><td>{e(entry['title'])}</td><td>{links}</td></tr>")
    out += ["</table>", "<h2>Files</h2>",
            "<table><tr><th>file</th><th>contents</th><th>items</th><th>articles</th>"
            "<th>sha256</th></tr>"]  # fmt: skip
    for f in index["files"]:
        items = "" if f["items"] is None else str(f["items"])
        out.append(
            f'<tr><td><a href="{e(f["path"])}">{e(f["path"])}</a></td>'
            f"<td><strong>{e(f['title'])}</strong>: {e(f['description'])}</td>"
            f"<td>{items}</td><td>{e(', '.join(f['articles']))}</td>"
            f"<td><code>{f['sha256']}</code></td></tr>"
        )
    out += ["</table>", "</body></html>", ""]
    return "\n".join(out)
