"""The label-free accuracy estimate as an evidence part (see :mod:`.evidence`).

Pure: the sums come from :mod:`gateway.monitoring.performance` through the sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from gateway.governor.evidence_part import EvidencePart

__all__ = ["Estimated"]


@dataclass(frozen=True)
class Estimated(EvidencePart):
    """A label-free (CBPE) estimate of a version's accuracy over its current monitoring
    window (:mod:`gateway.monitoring.performance`): expected correct rows and their
    variance, so processes merge by addition."""

    rows: int = 0
    correct: float = 0.0
    correct_var: float = 0.0

    key: ClassVar[str] = "estimated"
    live_only: ClassVar[bool] = True  # like drift: about current windows

    def plus(self, other: Estimated) -> Estimated:
        return Estimated(
            self.rows + other.rows,
            self.correct + other.correct,
            self.correct_var + other.correct_var,
        )

    def minus(self, base: Estimated) -> Estimated:
        return self  # an estimate over the current window, not a cumulative count

    def encode(self) -> Any:
        return [self.rows, self.correct, self.correct_var]

    @classmethod
    def decode(cls, raw: Any) -> Estimated:
        rows, correct, var = raw
        return cls(int(rows), float(correct), float(var))

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.rows if self.rows else None

    @property
    def half_width(self) -> float:
        """Half the 95 % confidence interval of :attr:`accuracy`."""
        return 1.959963984540054 * self.correct_var**0.5 / self.rows if self.rows else 0.0
