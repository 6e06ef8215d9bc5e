"""What every kind of evidence the governor reads must provide (see :mod:`.evidence`).

A part is merged across the fleet (``plus``), windowed (``minus``) and stored as JSON
(``encode``/``decode``). The methods are abstract, so a part that lacks one cannot be
instantiated and the fleet merge cannot be forgotten silently. Pure.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Self

__all__ = ["EvidencePart", "json_bound"]


class EvidencePart(ABC):
    """One kind of evidence about a version: the :class:`Evidence` field named ``key``."""

    key: ClassVar[str]  # the Evidence field and the fleet payload's key
    # Merged from live processes only (a verdict about a current window goes stale when its
    # process stops; cumulative counts do not: what it served was still served).
    live_only: ClassVar[bool] = False

    @abstractmethod
    def plus(self, other: Self) -> Self:
        """Two processes' cumulative parts as one (the fleet merge)."""

    @abstractmethod
    def minus(self, base: Self) -> Self:
        """This cumulative part less a baseline (a window)."""

    @abstractmethod
    def encode(self) -> Any:
        """JSON-ready form, as stored in the fleet's evidence table."""

    @classmethod
    @abstractmethod
    def decode(cls, raw: Any) -> Self:
        """The part back from :meth:`encode`'s form (read back from JSON)."""


def json_bound(b: float) -> float | None:
    """A histogram bound for JSON: infinity as null."""
    return None if math.isinf(b) else b  # JSON (and PostgreSQL's json) has no Infinity
