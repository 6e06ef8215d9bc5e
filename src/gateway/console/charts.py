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


def split_svg(arms: Sequence[Mapping[str, Any]], width: int = 640, height: int = 46) -> str:
    """One bar, a segment per arm sized by its share of the weight, labelled with it."""
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
        if w > 60:
            parts.append(
                f'<text x="{x + 6:.1f}" y="{(height - 16) / 2 + 5:.1f}" fill="#fff" '
                f'font-size="13">{esc(label)}</text>'
            )
        x += w
    parts.append("</svg>")
    return "".join(parts)
