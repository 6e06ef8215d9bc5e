"""Evidence the governor reads about each version, and one model's snapshot of it.

Produced by evidence sources (the gateway's request counters, the feedback store, the
drift/shadow monitor) and windowed by the governor loop; read by
:func:`gateway.governor.decide.decide`.
Counts are cumulative so that windows are differences (:meth:`Evidence.minus` on each
part). Pure: no grpc, no SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.governor.sequential import ArmSample

__all__ = [
    "CANARY",
    "CHALLENGER",
    "CHAMPION",
    "Drift",
    "Estimated",
    "Evidence",
    "Importance",
    "Quality",
    "SegmentCounts",
    "ShadowAgreement",
    "Snapshot",
    "Traffic",
    "VersionSnapshot",
    "candidate_of",
]

CANARY, CHALLENGER, CHAMPION = "canary", "challenger", "champion"


@dataclass(frozen=True)
class Traffic:
    """Requests, server-side errors and a latency histogram (``counts`` per bucket whose
    upper bounds, in seconds, are ``bounds``; the last bound may be infinite)."""

    requests: int = 0
    errors: int = 0
    bounds: tuple[float, ...] = ()
    counts: tuple[int, ...] = ()

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def minus(self, base: Traffic) -> Traffic:
        counts = self.counts
        if base.counts and base.bounds == self.bounds:
            counts = tuple(a - b for a, b in zip(self.counts, base.counts, strict=True))
        return Traffic(
            self.requests - base.requests, self.errors - base.errors, self.bounds, counts
        )

    def quantile(self, q: float) -> float | None:
        """Linear interpolation within the bucket holding rank ``q`` (as Prometheus'
        ``histogram_quantile``); in the open last bucket, its lower bound."""
        total = sum(self.counts)
        if total <= 0:
            return None
        rank, seen, lower = q * total, 0, 0.0
        for bound, count in zip(self.bounds, self.counts, strict=True):
            if count > 0 and seen + count >= rank:
                if bound == float("inf"):
                    return lower
                return lower + (bound - lower) * (rank - seen) / count
            seen += count
            lower = bound if bound != float("inf") else lower
        return lower


@dataclass(frozen=True)
class Drift:
    """Corrected drift verdicts of one version's current window (from a DriftReport)."""

    input_features: tuple[str, ...] = ()
    output_drifted: bool = False
    output_features: tuple[str, ...] = ()
    window_rows: int = 0


@dataclass(frozen=True)
class ShadowAgreement:
    """How often a version's outputs agreed with the served ones while it shadowed."""

    compared: int = 0
    agreed: int = 0

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.compared if self.compared else None


@dataclass(frozen=True)
class SegmentCounts:
    predictions: int = 0
    positives: int = 0
    labelled: int = 0
    correct: int = 0
    actual_positives: int = 0
    true_positives: int = 0

    def minus(self, base: SegmentCounts) -> SegmentCounts:
        return SegmentCounts(
            *(a - b for a, b in zip(vars(self).values(), vars(base).values(), strict=True))
        )

    @property
    def positive_rate(self) -> float | None:
        return self.positives / self.predictions if self.predictions else None

    @property
    def tpr(self) -> float | None:
        return self.true_positives / self.actual_positives if self.actual_positives else None


@dataclass(frozen=True)
class Quality:
    """Outcome quality from delayed labels: accuracy counts (classification) or absolute
    error sums (regression), and per-segment counts for fairness."""

    predictions: int = 0
    labelled: int = 0
    correct: int = 0
    abs_error: float = 0.0
    abs_error_sq: float = 0.0
    segments: Mapping[str, SegmentCounts] = field(default_factory=dict)

    def minus(self, base: Quality) -> Quality:
        segments = {
            name: seg.minus(base.segments.get(name, SegmentCounts()))
            for name, seg in self.segments.items()
        }
        return Quality(
            self.predictions - base.predictions,
            self.labelled - base.labelled,
            self.correct - base.correct,
            self.abs_error - base.abs_error,
            self.abs_error_sq - base.abs_error_sq,
            segments,
        )

    def sample(self, task: str) -> ArmSample:
        """The per-label observations as a sample whose larger mean is better: 0/1
        correctness, or the negated absolute error."""
        if task == "regression":
            return ArmSample.moments(self.labelled, -self.abs_error, self.abs_error_sq)
        return ArmSample.proportion(self.correct, self.labelled)

    def score(self, task: str) -> float | None:
        return self.sample(task).mean if self.labelled else None


@dataclass(frozen=True)
class Importance:
    """A version's global feature importance: mean |attribution| per feature over ``rows``
    sampled rows of live traffic (see :mod:`gateway.explain.importance`)."""

    features: tuple[str, ...] = ()
    mean_abs: tuple[float, ...] = ()
    rows: int = 0

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


@dataclass(frozen=True)
class Estimated:
    """A label-free (CBPE) estimate of a version's accuracy over its current monitoring
    window (:mod:`gateway.monitoring.performance`): expected correct rows and their
    variance, so processes merge by addition."""

    rows: int = 0
    correct: float = 0.0
    correct_var: float = 0.0

    def plus(self, other: Estimated) -> Estimated:
        return Estimated(
            self.rows + other.rows,
            self.correct + other.correct,
            self.correct_var + other.correct_var,
        )

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.rows if self.rows else None

    @property
    def half_width(self) -> float:
        """Half the 95 % confidence interval of :attr:`accuracy`."""
        return 1.959963984540054 * self.correct_var**0.5 / self.rows if self.rows else 0.0


@dataclass(frozen=True)
class Evidence:
    """What the evidence sources know about one version; a part is None when unknown."""

    traffic: Traffic | None = None
    drift: Drift | None = None
    shadow: ShadowAgreement | None = None
    quality: Quality | None = None
    importance: Importance | None = None
    estimated: Estimated | None = None

    def merged(self, other: Evidence) -> Evidence:
        """These parts overlaid with ``other``'s known ones."""
        return Evidence(
            other.traffic or self.traffic,
            other.drift or self.drift,
            other.shadow or self.shadow,
            other.quality or self.quality,
            other.importance or self.importance,
            other.estimated or self.estimated,
        )


@dataclass(frozen=True)
class VersionSnapshot:
    version: str
    role: str  # champion | challenger | canary | shadow
    weight: float  # percent of the model's traffic
    evidence: Evidence = field(default_factory=Evidence)


@dataclass(frozen=True)
class Snapshot:
    """One model's deployment and windowed evidence at one evaluation."""

    model: str
    revision: int
    versions: Mapping[str, VersionSnapshot]
    approved: frozenset[str] = frozenset()

    @property
    def champion(self) -> VersionSnapshot | None:
        return next((v for v in self.versions.values() if v.role == CHAMPION), None)


def candidate_of(snapshot: Snapshot) -> str | None:
    """The version the governor acts on: a canary with traffic, else such a challenger
    (lowest version name first, so the choice is stable)."""
    for role in (CANARY, CHALLENGER):
        found = sorted(
            v.version for v in snapshot.versions.values() if v.role == role and v.weight > 0
        )
        if found:
            return found[0]
    return None
