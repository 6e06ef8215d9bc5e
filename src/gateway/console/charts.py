"""Inline SVG charts: the traffic split as one stacked bar.

(Drift histograms are :func:`gateway.monitoring.report.histogram_svg`, shared with the
HTML drift report.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.console.layout import esc, percent

__all__ = ["ROLE_COLOURS", "split_svg"]

ROLE_COLOURS = {"champion": "#1b9e77", "challenger": "#7570b3", "canary": "#d95f02"}
CHAR_PX = 7.5  # width of one character of the labels' 13 px sans-serif, rounded up


def split_svg(arms: Sequence[Mapping[str, Any]], width: int = 640, height: int = 46) -> str:
    """One bar, a segment per arm sized by its share of the weight, labelled with it.

    A label goes inside its segment when it fits there; otherwise under the bar, in the
    role's colour, moved left as far as it must to end inside the picture (a 10 % canary's
    segment is 64 px: its label inside was cut at the bar's end, "v2 canar").
    """
    total = sum(float(a.get("weight", 0.0)) for a in arms)
    if total <= 0:
        return '<p class="meta">no traffic weight</p>'
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="traffic split">'
    ]
    x = 0.0
    for arm in arms:
        share = float(arm.get("weight", 0.0)) / total
        w = share * width
        role = str(arm.get("role", ""))
        colour = ROLE_COLOURS.get(role, "#999")
        label = f"v{arm.get('version', '')} {role} {percent(share)}"
        parts.append(
            f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="{height - 16}" fill="{colour}">'
            f"<title>{esc(label)}</title></rect>"
        )
        needed = CHAR_PX * len(label) + 12
        if w >= needed:
            parts.append(
                f'<text x="{x + 6:.1f}" y="{(height - 16) / 2 + 5:.1f}" fill="#fff" '
                f'font-size="13">{esc(label)}</text>'
            )
        else:
            left = max(0.0, min(x, width - needed + 6))
            parts.append(
                f'<text x="{left:.1f}" y="{height - 3}" fill="{colour}" '
                f'font-size="12">{esc(label)}</text>'
            )
        x += w
    parts.append("</svg>")
    return "".join(parts)
