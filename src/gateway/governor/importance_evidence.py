"""Per-version feature importance as an evidence part (see :mod:`.evidence`). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from gateway.governor.evidence_part import EvidencePart

__all__ = ["Importance"]


@dataclass(frozen=True)
class Importance(EvidencePart):
    """A version's global feature importance: mean |attribution| per feature over ``rows``
    sampled rows of live traffic (see :mod:`gateway.explain.importance`).

    NOTE: the governor judges importance on this process's own sample, fleet or not (the
    fleet's local sources do not produce it); its merge is still defined, rows-weighted.
    """

    features: tuple[str, ...] = ()
    mean_abs: tuple[float, ...] = ()
    rows: int = 0

    key: ClassVar[str] = "importance"

    def plus(self, other: Importance) -> Importance:
        if self.features != other.features or not other.rows:
            return self if self.rows >= other.rows else other
        n = self.rows + other.rows
        mean = tuple(
            (a * self.rows + b * other.rows) / n
            for a, b in zip(self.mean_abs, other.mean_abs, strict=True)
        )
        return Importance(self.features, mean, n)

    def minus(self, base: Importance) -> Importance:
        return self  # a sample's mean, not a count

    def encode(self) -> Any:
        return [list(self.features), list(self.mean_abs), self.rows]

    @classmethod
    def decode(cls, raw: Any) -> Importance:
        features, mean_abs, rows = raw
        return cls(tuple(features), tuple(float(v) for v in mean_abs), int(rows))

    @property
    def top(self) -> str | None:
        if not self.mean_abs:
            return None
        return self.features[max(range(len(self.mean_abs)), key=self.mean_abs.__getitem__)]

    def rank_correlation(self, other: Importance) -> float | None:
        """Spearman's rank correlation of the two importance vectors (average ranks for
        ties); None when the features differ or fewer than two are known."""
        if self.features != other.features or len(self.features) < 2:
            return None
        a, b = _ranks(self.mean_abs), _ranks(other.mean_abs)
        n = len(a)
        ma, mb = sum(a) / n, sum(b) / n
        cov = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True))
        va = sum((x - ma) ** 2 for x in a)
        vb = sum((y - mb) ** 2 for y in b)
        if va == 0 or vb == 0:
            return 1.0 if va == vb else 0.0
        return float(cov / (va * vb) ** 0.5)


def _ranks(values: tuple[float, ...]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0
        i = j + 1
    return ranks
