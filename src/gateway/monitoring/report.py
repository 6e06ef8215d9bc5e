"""A self-contained HTML drift report: per version and side, a table of features sorted by
drift and, per feature, a histogram of the reference against the current window.

Input is the plain-dict payload ``onnxgate drift --json`` prints (so this module knows
nothing of protobuf or numpy), plus, when the gateway samples it, each version's global
feature importance under ``"importance"`` (version -> rows, features, mean_abs), and,
for versions registered with reference labels, the label-free performance estimate under
``"performance"`` (the versions of ``onnxgate performance --json``: estimated accuracy with
its interval, ROC AUC, F1, realised accuracy once labels joined, and how it was calibrated).
Histograms are inline SVG: no scripts, no external files, no plotting library; the page
opens anywhere and can be attached to a ticket. Bars show
each bin's share of rows (reference vs current); hovering a bar shows the exact counts.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from gateway.monitoring.statistics import DRIFT_STATISTICS, DriftStatistic, wire_value

__all__ = ["performance_html", "render_html"]

MAX_HISTOGRAMS = 100  # per side: past this, the table still lists every feature
REF_COLOUR, CUR_COLOUR = "#8da0cb", "#fc8d62"

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em} h2{font-size:1.2em;margin-top:2em} h3{font-size:1.05em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0 1.5em}
th,td{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:right}
th:first-child,td:first-child{text-align:left}
tr.drift td{background:#fde0dd;font-weight:600}
.badge{display:inline-block;padding:.1em .5em;border-radius:.3em;color:#fff;font-weight:600}
.bad{background:#d7301f} .ok{background:#31a354}
.grid{display:flex;flex-wrap:wrap;gap:1em}
.card{border:1px solid #ddd;border-radius:.4em;padding:.5em}
.card.drift{border-color:#d7301f}
.meta{color:#666;font-size:.85em}
td.note{text-align:left;color:#666;font-size:.9em}
"""


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    v = float(value)
    if math.isnan(v):
        return "-"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        return f"{v:.{max(digits - 2, 1)}e}"
    return f"{v:.{digits}g}"


def _bin_labels(edges: Sequence[float]) -> list[str]:
    if not edges:
        return ["all"]
    labels = [f"≤{_num(edges[0], 3)}"]
    labels += [f"({_num(a, 3)},{_num(b, 3)}]" for a, b in zip(edges[:-1], edges[1:], strict=True)]
    labels.append(f">{_num(edges[-1], 3)}")
    return labels


def histogram_svg(feature: Mapping[str, Any], width: int = 380, height: int = 190) -> str:
    """Grouped bars (reference vs current share per bin) as one inline <svg> element."""
    hist = feature.get("histogram") or {}
    ref = [float(c) for c in hist.get("reference", [])]
    cur = [float(c) for c in hist.get("current", [])]
    if not ref or len(ref) != len(cur):
        return '<p class="meta">no histogram</p>'
    ref_total, cur_total = sum(ref) or 1.0, sum(cur) or 1.0
    p_ref = [c / ref_total for c in ref]
    p_cur = [c / cur_total for c in cur]
    labels = _bin_labels(list(hist.get("edges", [])))
    left, bottom, top = 36, 46, 18
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = max(max(p_ref), max(p_cur), 1e-12)
    group = plot_w / len(ref)
    bar = max(group * 0.4, 1.0)
    name = html.escape(str(feature.get("name", "")))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="histogram of {name}">',
        f'<text x="{left}" y="12" font-size="11">share of rows per bin (max {peak:.1%})</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 8}" y2="{top + plot_h}" '
        'stroke="#999"/>',
    ]
    for b, (pr, pc) in enumerate(zip(p_ref, p_cur, strict=True)):
        x = left + b * group + group * 0.1
        for offset, share, count, total, colour, what in (
            (0.0, pr, ref[b], ref_total, REF_COLOUR, "reference"),
            (bar, pc, cur[b], cur_total, CUR_COLOUR, "current"),
        ):
            h = plot_h * share / peak
            tip = f"{what} {labels[b]}: {int(count)} of {int(total)} ({share:.1%})"
            parts.append(
                f'<rect x="{x + offset:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{html.escape(tip)}</title></rect>'
            )
        if len(ref) <= 12 or b % max(len(ref) // 8, 1) == 0:
            lx, ly = left + b * group + group / 2, top + plot_h + 10
            parts.append(
                f'<text x="{lx:.1f}" y="{ly:.1f}" font-size="8" text-anchor="end" '
                f'transform="rotate(-35 {lx:.1f} {ly:.1f})">{html.escape(labels[b])}</text>'
            )
    parts.append(
        f'<rect x="{width - 150}" y="3" width="9" height="9" fill="{REF_COLOUR}"/>'
        f'<text x="{width - 138}" y="11" font-size="10">reference</text>'
        f'<rect x="{width - 80}" y="3" width="9" height="9" fill="{CUR_COLOUR}"/>'
        f'<text x="{width - 68}" y="11" font-size="10">current</text></svg>'
    )
    return "".join(parts)


def _columns(features: list[Mapping[str, Any]]) -> list[DriftStatistic]:
    """The statistic columns: table rows with a header; sparse ones only when some value."""
    return [
        row
        for row in DRIFT_STATISTICS
        if row.header is not None
        and (not row.sparse or any(wire_value(f, row) is not None for f in features))
    ]


def _side_html(side: Mapping[str, Any]) -> str:
    features: list[Mapping[str, Any]] = list(side.get("features", []))
    drifted = bool(side.get("drifted"))
    columns = _columns(features)
    badge = (
        '<span class="badge bad">DRIFT</span>' if drifted else '<span class="badge ok">OK</span>'
    )
    driving = ", ".join(html.escape(f) for f in side.get("driving_features", [])) or "none"
    out = [
        f"<h3>{html.escape(str(side.get('side', '')))} {badge}</h3>",
        f'<p class="meta">drifted features: {driving}; alpha {_num(side.get("alpha"))} '
        f"({html.escape(str(side.get('correction', '')))} correction); window "
        f"{side.get('window_rows', 0)} rows, reference {side.get('reference_rows', 0)} rows</p>",
        "<table><tr><th>feature</th>"
        + "".join(f"<th>{html.escape(row.header or '')}</th>" for row in columns)
        + "<th>drift</th></tr>",
    ]
    for f in features:
        cls = ' class="drift"' if f.get("drifted") else ""
        cells = "".join(f"<td>{_num(wire_value(f, row))}</td>" for row in columns)
        mark = "yes" if f.get("drifted") else ("no data" if f.get("no_data") else "")
        name = html.escape(str(f.get("name", "")))
        out.append(f"<tr{cls}><td>{name}</td>{cells}<td>{mark}</td></tr>")
    out.append("</table><div class='grid'>")
    for f in features[:MAX_HISTOGRAMS]:
        cls = "card drift" if f.get("drifted") else "card"
        title = html.escape(str(f.get("name", "")))
        stats = f"PSI {_num(f.get('psi'), 3)} · p adj. {_num(f.get('pvalue_adjusted'), 3)}"
        out.append(
            f'<div class="{cls}"><b>{title}</b> <span class="meta">{stats}</span><br>'
            f"{histogram_svg(f)}</div>"
        )
    out.append("</div>")
    if len(features) > MAX_HISTOGRAMS:
        out.append(f'<p class="meta">histograms of the first {MAX_HISTOGRAMS} features</p>')
    return "\n".join(out)


def _importance_html(imp: Mapping[str, Any], top: int = 20) -> str:
    """Global importance of one version (``onnxgate explain --importance`` data)."""
    pairs = sorted(zip(imp["features"], imp["mean_abs"], strict=True), key=lambda p: -p[1])
    rows = "".join(
        f"<tr><td>{html.escape(str(f))}</td><td>{_num(v)}</td></tr>" for f, v in pairs[:top]
    )
    return (
        f'<h3>feature importance</h3><p class="meta">mean |attribution| over '
        f"{int(imp['rows'])} sampled rows of live traffic (top {top})</p>"
        f"<table><tr><th>feature</th><th>mean |attribution|</th></tr>{rows}</table>"
    )


def _pct(value: Any) -> str:
    return "-" if value is None or math.isnan(float(value)) else f"{100 * float(value):.1f}%"


def performance_html(versions: Sequence[Mapping[str, Any]]) -> str:
    """The performance section: per version, the label-free estimate beside realised."""
    rows = []
    for v in versions:
        est, real = v.get("estimated") or {}, v.get("realised") or {}
        low, high = est.get("accuracy_ci") or (None, None)
        rows.append(
            f"<tr><td>{html.escape(str(v.get('version', '')))}</td>"
            f"<td>{html.escape(str(v.get('role') or '-'))}</td><td>{v.get('rows', 0)}</td>"
            f"<td>{_pct(est.get('accuracy'))}</td>"
            f"<td>{'-' if low is None else f'{_pct(low)} – {_pct(high)}'}</td>"
            f"<td>{_num(est.get('roc_auc'), 3)}</td><td>{_num(est.get('f1'), 3)}</td>"
            f"<td>{_pct(real.get('accuracy'))}</td><td>{real.get('labels', 0)}</td>"
            f'<td class="note">{html.escape(str(v.get("note") or ""))}</td></tr>'
        )
    return (
        '<h2 id="performance">Performance estimate (before labels)</h2>'
        '<p class="meta">Label-free (CBPE): each output window\'s calibrated scores give the '
        "expected accuracy with its 95% interval, ROC AUC and F1; the calibration was fitted "
        "on the reference with its labels (the note says how, or why there is no estimate). "
        "Realised: accuracy of the labels joined so far.</p>"
        "<table><tr><th>version</th><th>role</th><th>window rows</th><th>estimated accuracy"
        "</th><th>95% interval</th><th>ROC AUC</th><th>F1</th><th>realised accuracy</th>"
        "<th>labels</th><th>calibration</th></tr>" + "".join(rows) + "</table>"
    )


def render_html(payload: Mapping[str, Any]) -> str:
    """The whole report for ``{"model": ..., "versions": [...]}`` (see module docstring)."""
    model = html.escape(str(payload.get("model", "")))
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    body = [f"<h1>Drift report: {model}</h1>", f'<p class="meta">generated {now}</p>']
    if payload.get("performance"):
        body.append(performance_html(payload["performance"]))
    for v in payload.get("versions", []):
        source = html.escape(str(v.get("profile_source") or "none yet"))
        body.append(f"<h2>version {html.escape(str(v.get('version', '')))}</h2>")
        body.append(
            f'<p class="meta">reference profile: {source}; window {v.get("window_rows", 0)} '
            f"rows; {v.get('rows_seen', 0)} rows seen</p>"
        )
        sides = v.get("sides", [])
        if not sides:
            body.append("<p>No drift computed yet (no profile or too few rows).</p>")
        body.extend(_side_html(side) for side in sides)
        for skipped in v.get("skipped", []):
            body.append(f'<p class="meta">not monitored: {html.escape(str(skipped))}</p>')
        importance = payload.get("importance", {}).get(str(v.get("version", "")))
        if importance:
            body.append(_importance_html(importance))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Drift report: {model}</title><style>{_STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
