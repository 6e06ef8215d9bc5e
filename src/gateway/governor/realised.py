"""Realised accuracy over time: joined labels counted by when their prediction was made.

The feedback store's per-version counters are cumulative; a plot of "estimated vs realised
accuracy over time" needs the realised side by time. Each joined label is counted in the
bucket of its prediction's wall-clock time (``bucket_s`` wide), so a label that arrives
weeks later still lands beside the estimate made when its request was served. Only the
last ``keep`` buckets per version are kept (oldest dropped first): bounded memory whatever
the traffic. Pure; the feedback store calls :meth:`RealisedHistory.add` under its lock.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["RealisedHistory", "RealisedPoint"]


@dataclass(frozen=True)
class RealisedPoint:
    """Labels joined to the predictions of one time bucket (``at``: its start, seconds)."""

    at: float
    labelled: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.labelled if self.labelled else math.nan


class RealisedHistory:
    """Per (model, version): joined labels and correct ones per prediction-time bucket."""

    def __init__(self, bucket_s: float = 60.0, keep: int = 120) -> None:
        if bucket_s <= 0 or keep < 1:
            raise ValueError("bucket_s must be > 0 and keep >= 1")
        self.bucket_s = bucket_s
        self.keep = keep
        self._buckets: dict[tuple[str, str], OrderedDict[int, list[int]]] = {}

    def add(self, model: str, version: str, at: float, correct: bool) -> None:
        """Count one joined label of a prediction made at wall-clock time ``at``."""
        buckets = self._buckets.setdefault((model, version), OrderedDict())
        index = math.floor(at / self.bucket_s)
        counts = buckets.get(index)
        if counts is None:
            if len(buckets) >= self.keep and index < next(iter(buckets)):
                return  # older than every kept bucket: its time has left the history
            late = bool(buckets) and index < next(reversed(buckets))
            counts = buckets[index] = [0, 0]
            if late:  # a label for an earlier bucket: keep the buckets in time order
                for key in sorted(buckets):
                    buckets.move_to_end(key)
            while len(buckets) > self.keep:
                buckets.popitem(last=False)
        counts[0] += 1
        counts[1] += bool(correct)

    def series(self, model: str) -> dict[str, list[RealisedPoint]]:
        """Each version's buckets of ``model``, oldest first."""
        return {
            version: [RealisedPoint(i * self.bucket_s, n, c) for i, (n, c) in buckets.items()]
            for (m, version), buckets in self._buckets.items()
            if m == model
        }
