"""Delayed labels: a bounded record of recent predictions, and the quality they add up to.

For every model with a policy, each successful prediction is recorded under its request
``id`` (model, version, the predicted label or value per row, the caller's segment, the
time). A label that arrives later (the ``Feedback`` RPC, ``onnxgate feedback``) is joined
to it by id and row and scored: correct or not (classification), absolute error
(regression). Ids that are unknown (never seen, or already evicted) or expired (older than
the TTL) are counted, never an error for the caller.

The record is an insertion-ordered LRU bounded both by size and by age, so memory stays
bounded whatever the traffic; the per-version counters it feeds are cumulative and survive
eviction. Per segment it counts predictions, positive predictions and, with labels,
correct ones and true positives: enough for disparate impact (ratio of positive-
prediction rates) and equal opportunity (ratio of true-positive rates).

What a prediction, a label and a segment are is :mod:`gateway.governor.predictions`.

With ``keep_inputs`` (the gateway's ``explain_keep_inputs``), the record of every request
with an id also keeps a copy of its inputs (requests of at most 64 KiB of inputs), so that
the ``Explain`` RPC can explain a prediction served earlier by the same id join
(:meth:`FeedbackStore.inputs_of`); a model without a policy then gets a bare record (no
predictions, nothing counted), under the same size and age bounds.

NOTE: :meth:`FeedbackStore.observe` is a tap: it runs on the data plane's tap thread, off
the request path, and does a few small numpy operations and dict updates (nothing for
models without a policy). A lock guards the state because labels arrive on the event
loop. A label sent right after its prediction still finds it: the Feedback RPC waits for
the tap queue to settle first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np

from gateway.domain import Tensors
from gateway.governor.evidence import Quality, SegmentCounts
from gateway.governor.predictions import (
    Prediction,
    is_positive,
    normalise_label,
    predictions_of,
    segments_of,
)
from gateway.governor.rollout import FeedbackPolicy

if TYPE_CHECKING:
    from gateway.serving.taps import TapRecord

__all__ = ["FeedbackStore", "LabelOutcome", "disparate_impact", "unknown_hint"]

MAX_ROWS_KEPT = 1024  # rows per request whose predictions are kept for joining labels
MAX_INPUT_BYTES = 64 * 1024  # a request's inputs kept for explaining it later (copied)


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


def disparate_impact(rates: Mapping[str, float]) -> float | None:
    """min/max of the segments' positive rates (1.0 when every rate is 0)."""
    if len(rates) < 2:
        return None
    top = max(rates.values())
    return 1.0 if top == 0 else min(rates.values()) / top


@dataclass(slots=True)
class _Record:
    model: str
    version: str
    predictions: tuple[Prediction, ...]
    segments: tuple[str, ...]
    at: float
    policy: FeedbackPolicy
    labelled: set[int] = field(default_factory=set)
    inputs: Tensors | None = None  # kept with keep_inputs, for explaining the request later


@dataclass(slots=True)
class _Counts:
    """Mutable cumulative counters of one version; :meth:`frozen` hands out a copy."""

    predictions: int = 0
    labelled: int = 0
    correct: int = 0
    abs_error: float = 0.0
    abs_error_sq: float = 0.0
    # segment -> [predictions, positives, labelled, correct, actual_pos, true_pos]
    segments: dict[str, list[int]] = field(default_factory=dict)

    def segment(self, name: str) -> list[int]:
        counts = self.segments.get(name)
        if counts is None:
            counts = self.segments[name] = [0, 0, 0, 0, 0, 0]
        return counts

    def frozen(self) -> Quality:
        return Quality(
            self.predictions,
            self.labelled,
            self.correct,
            self.abs_error,
            self.abs_error_sq,
            {s: SegmentCounts(*c) for s, c in self.segments.items()},
        )


class FeedbackStore:
    """Recent predictions by request id, joined with labels into per-version quality."""

    def __init__(
        self,
        *,
        max_records: int = 100_000,
        ttl_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        keep_inputs: bool = False,
    ) -> None:
        if max_records < 1 or ttl_s <= 0:
            raise ValueError("max_records must be >= 1 and ttl_s > 0")
        self._max = max_records
        self._ttl = ttl_s
        self._clock = clock
        self._keep_inputs = keep_inputs
        self._lock = threading.Lock()
        self._policies: dict[str, FeedbackPolicy] = {}
        self._records: OrderedDict[tuple[str, str], _Record] = OrderedDict()
        self._counts: dict[tuple[str, str], _Counts] = {}
        self.outcomes: dict[tuple[str, str], int] = {}  # (model, outcome) -> labels
        self.evicted = 0
        # Set by gateway.fleet: each kept prediction is also handed here (a bounded queue
        # that shares it with the other processes), off the request path like the rest.
        self.outbox: Callable[[str, str, str, list[Prediction], list[str]], None] | None = None

    def configure(self, model: str, policy: FeedbackPolicy | None) -> None:
        """Record predictions of ``model`` as ``policy`` says; None stops recording."""
        with self._lock:
            if policy is None:
                self._policies.pop(model, None)
            else:
                self._policies[model] = policy

    def configured(self) -> frozenset[str]:
        return frozenset(self._policies)

    def __len__(self) -> int:
        return len(self._records)

    # -- tap ----------------------------------------------------------------------------------

    def observe(self, record: TapRecord) -> None:
        """The tap: record one served request's predictions (models with a policy only)."""
        policy = self._policies.get(record.model)
        inputs = _kept_inputs(record.inputs) if self._keep_inputs and record.request_id else None
        predictions = [] if policy is None else predictions_of(policy, record.outputs)
        if predictions and policy is not None:
            segments = segments_of(policy, record, len(predictions))
            self.record(
                record.model, record.version, record.request_id, predictions, segments, policy
            )
        elif inputs is None:
            return
        if inputs is not None:
            self._remember_inputs(record.model, record.version, record.request_id, inputs)

    def _remember_inputs(self, model: str, version: str, request_id: str, inputs: Tensors) -> None:
        """Attach a request's inputs to its record (a bare record when nothing else is kept:
        no predictions, so labels for it are INVALID and nothing is counted)."""
        now = self._clock()
        with self._lock:
            key = (model, request_id)
            rec = self._records.get(key)
            if rec is None or rec.version != version:
                self._records.pop(key, None)
                rec = self._records[key] = _Record(model, version, (), (), now, FeedbackPolicy())
            rec.inputs = inputs
            self._evict(now)

    def inputs_of(self, model: str, request_id: str) -> tuple[str, Tensors] | None:
        """The version that served ``request_id`` and its inputs, if still kept (the
        ``Explain`` RPC's join, under the same bounds and TTL as labels)."""
        with self._lock:
            rec = self._records.get((model, request_id))
            if rec is None or rec.inputs is None or self._clock() - rec.at > self._ttl:
                return None
            return rec.version, rec.inputs

    def record(
        self,
        model: str,
        version: str,
        request_id: str,
        predictions: Sequence[Prediction],
        segments: Sequence[str],
        policy: FeedbackPolicy | None = None,
    ) -> None:
        """Count one request's predictions; keep them for joining if it has an id."""
        policy = policy or self._policies.get(model) or FeedbackPolicy()
        now = self._clock()
        with self._lock:
            counts = self._counts.setdefault((model, version), _Counts())
            counts.predictions += len(predictions)
            for pred, seg in zip(predictions, segments, strict=True):
                if seg:
                    c = counts.segment(seg)
                    c[0] += 1
                    c[1] += is_positive(policy, pred)
            if not request_id:
                return
            key = (model, request_id)
            self._records.pop(key, None)  # a reused id refers to its latest request
            kept = list(predictions[:MAX_ROWS_KEPT])
            kept_segments = list(segments[:MAX_ROWS_KEPT])
            self._records[key] = _Record(
                model, version, tuple(kept), tuple(kept_segments), now, policy
            )
            self._evict(now)
        if self.outbox is not None:
            self.outbox(model, request_id, version, kept, kept_segments)

    def missing(self, model: str, request_ids: Sequence[str]) -> list[str]:
        """The ids among ``request_ids`` with no prediction kept here."""
        with self._lock:
            return [i for i in dict.fromkeys(request_ids) if (model, i) not in self._records]

    def adopt(
        self,
        model: str,
        request_id: str,
        version: str,
        predictions: Sequence[Prediction],
        segments: Sequence[str],
        age_s: float,
    ) -> None:
        """Keep a prediction another process made (and counted) so a label joins it here."""
        policy = self._policies.get(model) or FeedbackPolicy()
        with self._lock:
            key = (model, request_id)
            if key in self._records:
                return
            at = self._clock() - max(0.0, age_s)
            self._records[key] = _Record(
                model, version, tuple(predictions), tuple(segments), at, policy
            )
            self._records.move_to_end(key, last=False)  # eviction order follows age roughly
            self._evict(self._clock())

    def _evict(self, now: float) -> None:
        records = self._records
        while len(records) > self._max:
            records.popitem(last=False)
            self.evicted += 1
        while records:
            oldest = next(iter(records.values()))
            if now - oldest.at <= self._ttl:
                break
            records.popitem(last=False)
            self.evicted += 1

    # -- labels -----------------------------------------------------------------------------

    def add_label(
        self,
        model: str,
        request_id: str,
        *,
        row: int = 0,
        label: str | None = None,
        value: float | None = None,
    ) -> LabelOutcome:
        """Join one row's true label (classification) or value (regression)."""
        with self._lock:
            outcome = self._join(model, request_id, row, label, value)
            key = (model, outcome.value)
            self.outcomes[key] = self.outcomes.get(key, 0) + 1
            return outcome

    def _join(
        self, model: str, request_id: str, row: int, label: str | None, value: float | None
    ) -> LabelOutcome:
        rec = self._records.get((model, request_id))
        if rec is None:
            return LabelOutcome.UNKNOWN
        if self._clock() - rec.at > self._ttl:
            del self._records[(model, request_id)]
            self.evicted += 1
            return LabelOutcome.EXPIRED
        if not 0 <= row < len(rec.predictions) or (label in (None, "") and value is None):
            return LabelOutcome.INVALID
        if row in rec.labelled:
            return LabelOutcome.DUPLICATE
        policy, pred, seg = rec.policy, rec.predictions[row], rec.segments[row]
        counts = self._counts.setdefault((model, rec.version), _Counts())
        if policy.task == "regression":
            try:
                truth = float(value if value is not None else str(label))
            except ValueError:
                return LabelOutcome.INVALID
            if not np.isfinite(truth):
                return LabelOutcome.INVALID
            err = abs(float(pred) - truth)
            counts.abs_error += err
            counts.abs_error_sq += err * err
            correct = False
            actual_positive = truth >= policy.threshold
        else:
            truth_label = normalise_label(label if label not in (None, "") else value)
            correct = truth_label == pred
            actual_positive = truth_label == normalise_label(policy.positive)
        rec.labelled.add(row)
        counts.labelled += 1
        counts.correct += correct
        if seg:
            c = counts.segment(seg)
            c[2] += 1
            c[3] += correct
            c[4] += actual_positive
            c[5] += actual_positive and is_positive(policy, pred)
        return LabelOutcome.JOINED

    # -- reading ----------------------------------------------------------------------------

    def quality(self, model: str) -> dict[str, Quality]:
        """Cumulative quality of each version of ``model`` seen so far."""
        with self._lock:
            return {v: c.frozen() for (m, v), c in self._counts.items() if m == model}


def _kept_inputs(inputs: Tensors) -> Tensors | None:
    """A copy (so the request's buffer is not kept alive) of small requests' inputs only."""
    if sum(a.nbytes for a in inputs.values()) > MAX_INPUT_BYTES:
        return None
    return {name: np.array(a) for name, a in inputs.items()}
