"""The model page's accuracy section: estimated (no labels) vs realised, over time.

Input is one plain dict per version (:func:`gateway.console.views.performance_doc`): the
label-free estimate of its current window, its history (one point per monitor refresh
that saw new rows, with the 95 % interval), and the realised accuracy of joined labels by
the time their predictions were made. The plot is inline SVG like the rest of the console:
per version, the estimate as a solid line inside its shaded interval, the realised
accuracy as dashed line with dots (a dot's size grows with its labels). Nothing computed
here but the picture's geometry.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.console.layout import esc, percent, table

__all__ = ["accuracy_section", "accuracy_svg"]

Doc = Mapping[str, Any]
PALETTE = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d")


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _clock(at: float, tenths: bool = False) -> str:
    text = time.strftime("%H:%M:%S", time.gmtime(at))
    return f"{text}.{int(at * 10) % 10}" if tenths else text


def accuracy_svg(versions: Sequence[Doc], width: int = 720, height: int = 260) -> str:
    """Estimated and realised accuracy of each version against time, one <svg>."""
    points = [
        (p["at"], y)
        for v in versions
        for key in ("history", "realised_history")
        for p in v.get(key, [])
        for y in (_finite(p.get("accuracy")), _finite(p.get("low")), _finite(p.get("high")))
        if y is not None
    ]
    if not points:
        return '<p class="meta">no estimate yet (too few rows, or no reference labels)</p>'
    t0, t1 = min(t for t, _ in points), max(t for t, _ in points)
    t1 = t1 if t1 > t0 else t0 + 1.0
    lo = math.floor(min(y for _, y in points) * 10) / 10
    lo = min(lo, 0.9)
    left, right, top, bottom = 46, 120, 14, 30
    plot_w, plot_h = width - left - right, height - top - bottom

    def xy(t: float, y: float) -> str:
        x = left + plot_w * (t - t0) / (t1 - t0)
        return f"{x:.1f},{top + plot_h * (1.0 - (y - lo) / (1.0 - lo)):.1f}"

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'role="img" aria-label="estimated vs realised accuracy over time" class="accuracy">'
    ]
    for k in range(int(round((1.0 - lo) * 10)) + 1):  # a grid line every 10 points
        y = lo + k / 10
        _, py = xy(t0, y).split(",")
        parts.append(
            f'<line x1="{left}" y1="{py}" x2="{left + plot_w}" y2="{py}" stroke="#e0e0e0"/>'
            f'<text x="{left - 6}" y="{float(py) + 4:.1f}" font-size="11" '
            f'text-anchor="end">{y:.0%}</text>'
        )
    short = t1 - t0 < 60  # a minute or less: tenths of a second tell the ends apart
    parts.append(
        f'<text x="{left}" y="{height - 8}" font-size="11">{_clock(t0, short)} UTC</text>'
        f'<text x="{left + plot_w}" y="{height - 8}" font-size="11" '
        f'text-anchor="end">{_clock(t1, short)}</text>'
    )
    for i, v in enumerate(versions):
        colour, name = PALETTE[i % len(PALETTE)], esc(v.get("version", ""))
        hist = [p for p in v.get("history", []) if _finite(p.get("accuracy")) is not None]
        band = [p for p in hist if _finite(p.get("low")) is not None]
        if len(band) >= 2:
            ring = [xy(p["at"], p["high"]) for p in band]
            ring += [xy(p["at"], p["low"]) for p in reversed(band)]
            parts.append(
                f'<polygon class="interval" data-version="{name}" points="{" ".join(ring)}" '
                f'fill="{colour}" fill-opacity="0.15" stroke="none"/>'
            )
        if hist:
            line = " ".join(xy(p["at"], p["accuracy"]) for p in hist)
            last = hist[-1]
            parts.append(
                f'<polyline class="estimated" data-version="{name}" points="{line}" fill="none" '
                f'stroke="{colour}" stroke-width="2"><title>v{name} estimated (no labels): '
                f"{percent(last['accuracy'])} now</title></polyline>"
            )
        real = [p for p in v.get("realised_history", []) if _finite(p.get("accuracy")) is not None]
        if real:
            line = " ".join(xy(p["at"], p["accuracy"]) for p in real)
            parts.append(
                f'<polyline class="realised" data-version="{name}" points="{line}" fill="none" '
                f'stroke="{colour}" stroke-width="1.5" stroke-dasharray="5 3"/>'
            )
            for p in real:
                cx, cy = xy(p["at"], p["accuracy"]).split(",")
                r = min(2.0 + math.log10(max(int(p.get("labels", 1)), 1)), 5.0)
                tip = f"v{name} realised {percent(p['accuracy'])} on {p.get('labels', 0)} labels"
                parts.append(
                    f'<circle class="realised" data-version="{name}" cx="{cx}" cy="{cy}" '
                    f'r="{r:.1f}" fill="{colour}"><title>{esc(tip)}</title></circle>'
                )
        ly = top + 14 + 36 * i  # the legend, right of the plot
        lx = left + plot_w + 12
        parts.append(
            f'<line x1="{lx}" y1="{ly}" x2="{lx + 22}" y2="{ly}" stroke="{colour}" '
            f'stroke-width="2"/><text x="{lx + 27}" y="{ly + 4}" font-size="11">v{name} '
            f'estimated</text><line x1="{lx}" y1="{ly + 16}" x2="{lx + 22}" y2="{ly + 16}" '
            f'stroke="{colour}" stroke-dasharray="5 3"/><text x="{lx + 27}" y="{ly + 20}" '
            f'font-size="11">v{name} realised</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _pct(value: Any) -> str:
    v = _finite(value)
    return "-" if v is None else percent(v)


def accuracy_section(versions: Sequence[Doc] | None, note: str = "") -> str:
    """The section: the plot, then a table of the current estimates beside realised."""
    head = "<h2>Accuracy: estimated before labels vs realised</h2>"
    if not versions:
        return head + f'<p class="meta">{esc(note or "no monitored traffic yet")}</p>'
    rows = []
    for v in versions:
        est, real = v.get("estimated") or {}, v.get("realised") or {}
        low, high = est.get("accuracy_ci") or (None, None)
        rows.append(
            (
                esc(v.get("version")),
                esc(v.get("role") or "-"),
                esc(est.get("rows", 0)),
                _pct(est.get("accuracy")),
                "-" if _finite(low) is None else f"{_pct(low)} – {_pct(high)}",
                "-" if _finite(est.get("roc_auc")) is None else f"{est['roc_auc']:.3f}",
                "-" if _finite(est.get("f1")) is None else f"{est['f1']:.3f}",
                _pct(real.get("accuracy")),
                esc(real.get("labels", 0)),
                f'<span class="meta">{esc(v.get("note", ""))}</span>',
            )
        )
    header = ("version", "role", "window rows", "estimated", "95% interval", "ROC AUC", "F1",
              "realised", "labels", "how estimated")  # fmt: skip
    return (
        head
        + accuracy_svg(versions)
        + '<p class="meta">estimated: label-free (CBPE, calibrated on the labelled reference) '
        "over each monitoring window, shaded: its 95% interval; realised: joined labels, "
        "plotted at the time of their predictions</p>" + table(header, rows)
    )
