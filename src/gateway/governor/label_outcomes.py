"""What joining one label can come to, counted per model and outcome by
:class:`gateway.governor.feedback.FeedbackStore`, and the hint a caller gets for unknown ids.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["LabelOutcome", "unknown_hint"]


class LabelOutcome(StrEnum):
    JOINED = "joined"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    DUPLICATE = "duplicate"
    INVALID = "invalid"


def unknown_hint(unknown: int, *, fleet: bool) -> str:
    """Where to look for the predictions of ``unknown`` ids a label named ("" for none)."""
    if not unknown:
        return ""
    if not fleet:
        return (
            "unknown ids were never served by this gateway, which is not in a fleet: send "
            "labels to the gateway that served them, or run the gateways as a fleet "
            "(fleet = true, one shared registry) so any member joins them"
        )
    return (
        "unknown ids are unknown to every member of this fleet: evicted "
        "(feedback_records), served more than feedback_ttl_s ago, never served with that id, "
        "or served by a gateway on another registry"
    )
