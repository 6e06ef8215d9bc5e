"""Evidence the governor reads about each version, and one model's snapshot of it.

Produced by evidence sources (the gateway's request counters, the feedback store, the
drift/shadow monitor) and windowed by the governor loop; read by
:func:`gateway.governor.decide.decide`.
Counts are cumulative so that windows are differences (``minus`` on each part).

Every part is an :class:`EvidencePart`: it owns its ``plus`` (the fleet's merge of two
processes' cumulative parts), ``minus`` (a window), ``encode`` and ``decode`` (its JSON in
a fleet payload, :mod:`gateway.fleet.payload`), and is listed in :data:`PARTS`, whose
order is :class:`Evidence`'s fields'. Evidence for a new gate is one more part here: the
fleet merge and the codec iterate :data:`PARTS`, and a part that lacks a method cannot be
instantiated (``tests/unit/test_evidence_parts.py`` round-trips and merges every part).
Pure: no grpc, no SQLAlchemy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from gateway.governor.contract_evidence import ContractCounts
from gateway.governor.estimated import Estimated
from gateway.governor.evidence_part import EvidencePart, json_bound
from gateway.governor.importance_evidence import Importance
from gateway.governor.sequential import ArmSample

__all__ = [
    "CANARY",
    "CHALLENGER",
    "CHAMPION",
    "PARTS",
    "ContractCounts",
    "Drift",
    "Estimated",
    "Evidence",
    "EvidencePart",
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
class Traffic(EvidencePart):
    """Requests, server-side errors and a latency histogram (``counts`` per bucket whose
    upper bounds, in seconds, are ``bounds``; the last bound may be infinite)."""

    requests: int = 0
    errors: int = 0
    bounds: tuple[float, ...] = ()
    counts: tuple[int, ...] = ()

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    key: ClassVar[str] = "traffic"

    def minus(self, base: Traffic) -> Traffic:
        counts = self.counts
        if base.counts and base.bounds == self.bounds:
            counts = tuple(a - b for a, b in zip(self.counts, base.counts, strict=True))
        return Traffic(
            self.requests - base.requests, self.errors - base.errors, self.bounds, counts
        )

    def plus(self, other: Traffic) -> Traffic:
        # Histograms on other buckets do not add up: keep the first one that has counts.
        if not self.counts or not other.counts or self.bounds != other.bounds:
            hist = (self.bounds, self.counts) if self.counts else (other.bounds, other.counts)
        else:
            hist = (
                self.bounds,
                tuple(x + y for x, y in zip(self.counts, other.counts, strict=True)),
            )
        return Traffic(self.requests + other.requests, self.errors + other.errors, *hist)

    def encode(self) -> Any:
        return [self.requests, self.errors, [json_bound(b) for b in self.bounds], list(self.counts)]

    @classmethod
    def decode(cls, raw: Any) -> Traffic:
        req, err, bounds, counts = raw
        bounds = tuple(math.inf if b is None else float(b) for b in bounds)
        return cls(int(req), int(err), bounds, tuple(int(c) for c in counts))

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
class Drift(EvidencePart):
    """Corrected drift verdicts of one version's current window (from a DriftReport).

    The fleet merges verdicts, not the binned counts behind them: traffic that drifts on
    one process alone is then still seen, not diluted by the others' undrifted rows.
    """

    input_features: tuple[str, ...] = ()
    output_drifted: bool = False
    output_features: tuple[str, ...] = ()
    window_rows: int = 0

    key: ClassVar[str] = "drift"
    live_only: ClassVar[bool] = True

    def plus(self, other: Drift) -> Drift:
        return Drift(
            tuple(sorted(set(self.input_features) | set(other.input_features))),
            self.output_drifted or other.output_drifted,
            tuple(sorted(set(self.output_features) | set(other.output_features))),
            max(self.window_rows, other.window_rows),
        )

    def minus(self, base: Drift) -> Drift:
        return self  # a verdict on the current window, not a count

    def encode(self) -> Any:
        return [list(self.input_features), self.output_drifted, list(self.output_features),
                self.window_rows]  # fmt: skip

    @classmethod
    def decode(cls, raw: Any) -> Drift:
        inputs, output_drifted, outputs, rows = raw
        return cls(tuple(inputs), bool(output_drifted), tuple(outputs), int(rows))


@dataclass(frozen=True)
class ShadowAgreement(EvidencePart):
    """How often a version's outputs agreed with the served ones while it shadowed."""

    compared: int = 0
    agreed: int = 0

    key: ClassVar[str] = "shadow"

    def plus(self, other: ShadowAgreement) -> ShadowAgreement:
        return ShadowAgreement(self.compared + other.compared, self.agreed + other.agreed)

    def minus(self, base: ShadowAgreement) -> ShadowAgreement:
        return ShadowAgreement(self.compared - base.compared, self.agreed - base.agreed)

    def encode(self) -> Any:
        return [self.compared, self.agreed]

    @classmethod
    def decode(cls, raw: Any) -> ShadowAgreement:
        return cls(*(int(x) for x in raw))

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

    def plus(self, other: SegmentCounts) -> SegmentCounts:
        return SegmentCounts(
            *(a + b for a, b in zip(vars(self).values(), vars(other).values(), strict=True))
        )

    @property
    def positive_rate(self) -> float | None:
        return self.positives / self.predictions if self.predictions else None

    @property
    def tpr(self) -> float | None:
        return self.true_positives / self.actual_positives if self.actual_positives else None


@dataclass(frozen=True)
class Quality(EvidencePart):
    """Outcome quality from delayed labels: accuracy counts (classification) or absolute
    error sums (regression), and per-segment counts for fairness."""

    predictions: int = 0
    labelled: int = 0
    correct: int = 0
    abs_error: float = 0.0
    abs_error_sq: float = 0.0
    segments: Mapping[str, SegmentCounts] = field(default_factory=dict)

    key: ClassVar[str] = "quality"

    def plus(self, other: Quality) -> Quality:
        segments = dict(self.segments)
        for name, seg in other.segments.items():
            segments[name] = segments.get(name, SegmentCounts()).plus(seg)
        return Quality(self.predictions + other.predictions, self.labelled + other.labelled,
                       self.correct + other.correct, self.abs_error + other.abs_error,
                       self.abs_error_sq + other.abs_error_sq, segments)  # fmt: skip

    def encode(self) -> Any:
        segments = {name: list(vars(s).values()) for name, s in self.segments.items()}
        return [self.predictions, self.labelled, self.correct, self.abs_error,
                self.abs_error_sq, segments]  # fmt: skip

    @classmethod
    def decode(cls, raw: Any) -> Quality:
        n, labelled, correct, abs_err, abs_sq, segments = raw
        segs = {name: SegmentCounts(*(int(x) for x in c)) for name, c in segments.items()}
        return cls(int(n), int(labelled), int(correct), float(abs_err), float(abs_sq), segs)

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
class Evidence:
    """What the evidence sources know about one version; a part is None when unknown."""

    traffic: Traffic | None = None
    drift: Drift | None = None
    shadow: ShadowAgreement | None = None
    quality: Quality | None = None
    importance: Importance | None = None
    estimated: Estimated | None = None
    contracts: ContractCounts | None = None

    def merged(self, other: Evidence) -> Evidence:
        """These parts overlaid with ``other``'s known ones."""
        return Evidence.of({k: other.part(k) or self.part(k) for k in _KEYS})

    @classmethod
    def of(cls, parts: Mapping[str, EvidencePart | None]) -> Evidence:
        """Evidence from parts by key (the keys of :data:`PARTS`)."""
        return cls(**parts)  # type: ignore[arg-type]  # each key's part is its field's type

    def part(self, key: str) -> EvidencePart | None:
        """The part of :data:`PARTS` whose ``key`` is ``key``."""
        found: EvidencePart | None = getattr(self, key)
        return found


PARTS: tuple[type[EvidencePart], ...] = (
    Traffic,
    Drift,
    ShadowAgreement,
    Quality,
    Importance,
    Estimated,
    ContractCounts,
)
_KEYS = tuple(p.key for p in PARTS)


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
