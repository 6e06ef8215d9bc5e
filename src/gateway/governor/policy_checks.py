"""Checks of one value of a rollout policy document, each naming the key it read.

The section parsers of :mod:`gateway.governor.rollout` build on these: a wrong type, an
out-of-range number or an unknown key raises :class:`RolloutPolicyError` with a message
that says where. Pure: no grpc, no SQLAlchemy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["RolloutPolicyError", "count", "flag", "number", "optional", "table", "text"]


class RolloutPolicyError(ValueError):
    """A policy document is malformed; the message names the key."""


def number(where: str, value: Any, *, lo: float, hi: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RolloutPolicyError(f"{where}: expected a number, got {value!r}")
    if not (math.isfinite(value) and lo <= value <= hi):
        raise RolloutPolicyError(f"{where}: {value!r} is outside [{lo:g}, {hi:g}]")
    return float(value)


def count(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RolloutPolicyError(f"{where}: expected a whole number >= 0, got {value!r}")
    return value


def flag(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise RolloutPolicyError(f"{where}: expected true or false, got {value!r}")
    return value


def text(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise RolloutPolicyError(f"{where}: expected a string, got {value!r}")
    return value


def table(doc: Mapping[str, Any], name: str, allowed: set[str]) -> dict[str, Any]:
    found = doc.get(name, {})
    if not isinstance(found, dict):
        raise RolloutPolicyError(f"[{name}] must be a table")
    unknown = sorted(set(found) - allowed)
    if unknown:
        raise RolloutPolicyError(f"[{name}]: unknown key(s) {', '.join(unknown)}")
    return found


def optional(where: str, value: Any, *, lo: float, hi: float = math.inf) -> float | None:
    # `false` switches a gate off; `true` is not a threshold.
    if value is False:
        return None
    return number(where, value, lo=lo, hi=hi)
