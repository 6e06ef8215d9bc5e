"""Checks of one value of a rollout policy document, each naming the key it read.

The section parsers of :mod:`gateway.governor.rollout` build on these: a wrong type, an
out-of-range number or an unknown key raises :class:`RolloutPolicyError` with a message
that says where. Pure: no grpc, no SQLAlchemy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "Param",
    "RolloutPolicyError",
    "count",
    "flag",
    "number",
    "optional",
    "table",
    "text",
]


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


@dataclass(frozen=True)
class Param:
    """One key of the policy's ``[gates]`` table: its bounds, default and how it reads.

    ``kind``: ``threshold`` (a number in [lo, hi]; ``false`` switches its gate off),
    ``count`` (a whole number >= 0), ``count_or_off`` (a count; ``false``: off) or
    ``flag`` (true or false).
    """

    key: str
    default: Any
    kind: Literal["threshold", "count", "count_or_off", "flag"] = "threshold"
    lo: float = 0.0
    hi: float = math.inf

    def read(self, found: Mapping[str, Any]) -> Any:
        """This key's value in a ``[gates]`` table (the default when absent), checked."""
        if self.key not in found:
            return self.default
        where, value = f"gates.{self.key}", found[self.key]
        if self.kind == "threshold":
            return optional(where, value, lo=self.lo, hi=self.hi)
        if self.kind == "flag":
            return flag(where, value)
        if self.kind == "count_or_off" and value is False:
            return None
        return count(where, value)
