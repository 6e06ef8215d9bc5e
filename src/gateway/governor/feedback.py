"""Delayed labels: a bounded record of recent predictions, and the quality they add up to.

For every model with a policy, each successful prediction is recorded under its request
``id`` (model, version, the predicted label or value per row, the caller's segment, the
time). A label that arrives later (the ``Feedback`` RPC, ``onnxgate feedback``) is joined
to it by id and row and scored: correct or not (classification), absolute error
(regression). Ids that are unknown (never seen, or already evicted) or expired (older than
the TTL) are counted, never an error for the caller.

The record is an insertion-ordered LRU bounded by count, by age and by bytes (an estimate
of each record's memory: its id, predictions and segments, plus the journal's kept inputs;
``max_bytes``, the gateway's ``feedback_max_bytes``), so memory stays bounded whatever the
traffic and whatever the size of what clients send; the per-version counters it feeds are
cumulative and survive eviction. Per segment it counts predictions, positive predictions
and, with labels, correct ones and true positives: enough for disparate impact (ratio of positive-
prediction rates) and equal opportunity (ratio of true-positive rates).

What a prediction, a label and a segment are is :mod:`gateway.governor.predictions`; what
a label's join comes to, :mod:`gateway.governor.label_outcomes`.

With ``keep_inputs`` (the gateway's ``explain_keep_inputs``), every request with an id is
also written to a :class:`gateway.governor.journal.RequestJournal` (``FeedbackStore.journal``:
the serving version and a copy of small requests' inputs, for the ``Explain`` RPC), models
with a policy or not. The journal shares this record's byte bound: ``bytes`` is the total
of both, and kept inputs give way first, so they never crowd out predictions.

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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from gateway.domain import Tensors
from gateway.governor.evidence import Quality, SegmentCounts
from gateway.governor.gates import disparate_impact
from gateway.governor.journal import RequestJournal
from gateway.governor.label_outcomes import LabelOutcome, unknown_hint
from gateway.governor.predictions import (
    Prediction,
    is_positive,
    normalise_label,
    predictions_of,
    segments_of,
)
from gateway.governor.realised import RealisedHistory, RealisedPoint
from gateway.governor.rollout import FeedbackPolicy

if TYPE_CHECKING:
    from gateway.serving.taps import TapRecord

__all__ = ["FeedbackStore", "LabelOutcome", "disparate_impact", "unknown_hint"]

MAX_ROWS_KEPT = 1024  # rows per request whose predictions are kept for joining labels


@dataclass(slots=True)
class _Record:
    model: str
    version: str
    predictions: tuple[Prediction, ...]
    segments: tuple[str, ...]
    at: float
    policy: FeedbackPolicy
    labelled: set[int] = field(default_factory=set)
    size: int = 0  # estimated bytes, counted in FeedbackStore.bytes


_RECORD_BYTES = 600  # a record's fixed cost: the object, its key tuple, the dict slot
_ITEM_BYTES = 120  # one kept prediction and its segment (Python objects and tuple slots)


def _size(request_id: str, rec: _Record) -> int:
    items = len(rec.predictions) + len(rec.segments)
    text = len(request_id) + sum(len(s) for s in rec.segments)
    return _RECORD_BYTES + _ITEM_BYTES * items + text


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
        max_bytes: int = 256 * 1024 * 1024,
        settle: Callable[[], Awaitable[object]] | None = None,
        history: RealisedHistory | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if max_records < 1 or ttl_s <= 0 or max_bytes < 1:
            raise ValueError("max_records and max_bytes must be >= 1 and ttl_s > 0")
        self._max = max_records
        self.max_bytes = max_bytes
        self._bytes = 0  # estimated bytes of the kept predictions (the journal counts its own)
        self._ttl = ttl_s
        self._clock = clock
        self._wall = wall
        # Realised accuracy by prediction time (classification), for plots over time.
        self.history = history or RealisedHistory()
        # The request journal (kept inputs by id), under this record's byte bound.
        self.journal: RequestJournal | None = (
            RequestJournal(
                max_records=max_records,
                ttl_s=ttl_s,
                max_bytes=max_bytes,
                clock=clock,
                others=lambda: self._bytes,
                settle=settle,  # the journal's lookup waits for the tap queue first
            )
            if keep_inputs
            else None
        )
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

    @property
    def bytes(self) -> int:
        """Estimated bytes of every kept record and kept input (Prometheus reads it)."""
        return self._bytes + (0 if self.journal is None else self.journal.bytes)

    # -- tap ----------------------------------------------------------------------------------

    def observe(self, record: TapRecord) -> None:
        """The tap: record one served request's predictions (models with a policy only), and
        its inputs in the journal (with ``keep_inputs``)."""
        policy = self._policies.get(record.model)
        predictions = [] if policy is None else predictions_of(policy, record.outputs)
        if predictions and policy is not None:
            segments = segments_of(policy, record, len(predictions))
            self.record(
                record.model, record.version, record.request_id, predictions, segments, policy
            )
        if self.journal is not None:
            self.journal.observe(record)

    def inputs_of(self, model: str, request_id: str) -> tuple[str, Tensors] | None:
        """The version that served ``request_id`` and its inputs, if the journal still
        keeps them (the ``Explain`` RPC's join, under the same bounds and TTL as labels)."""
        return None if self.journal is None else self.journal.inputs_of(model, request_id)

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
            self._drop(key)  # a reused id refers to its latest request
            kept = list(predictions[:MAX_ROWS_KEPT])
            kept_segments = list(segments[:MAX_ROWS_KEPT])
            self._put(key, _Record(model, version, tuple(kept), tuple(kept_segments), now, policy))
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
            self._put(key, _Record(model, version, tuple(predictions), tuple(segments), at, policy))
            self._records.move_to_end(key, last=False)  # eviction order follows age roughly
            self._evict(self._clock())

    def _put(self, key: tuple[str, str], rec: _Record) -> None:
        rec.size = _size(key[1], rec)
        self._records[key] = rec
        self._bytes += rec.size

    def _drop(self, key: tuple[str, str]) -> None:
        rec = self._records.pop(key, None)
        if rec is not None:
            self._bytes -= rec.size

    def _evict(self, now: float) -> None:
        if self.journal is not None and self.bytes > self.max_bytes:
            self.journal.evict()  # kept inputs give way to predictions first
        records = self._records
        while records and (len(records) > self._max or self.bytes > self.max_bytes):
            _, rec = records.popitem(last=False)
            self._bytes -= rec.size
            self.evicted += 1
        while records:
            oldest = next(iter(records.values()))
            if now - oldest.at <= self._ttl:
                break
            _, rec = records.popitem(last=False)
            self._bytes -= rec.size
            self.evicted += 1

    # -- labels -----------------------------------------------------------------------------

    def joinable(
        self, model: str, request_id: str, *, row: int, label: str | None, value: float | None
    ) -> bool:
        """Whether :meth:`add_label` would join this label now (a fleet claims it first)."""
        with self._lock:
            rec = self._records.get((model, request_id))
            return (
                rec is not None
                and self._clock() - rec.at <= self._ttl
                and 0 <= row < len(rec.predictions)
                and not (label in (None, "") and value is None)
                and row not in rec.labelled
            )

    def add_label(
        self,
        model: str,
        request_id: str,
        *,
        row: int = 0,
        label: str | None = None,
        value: float | None = None,
        elsewhere: bool = False,
    ) -> LabelOutcome:
        """Join one row's true label (classification) or value (regression);
        ``elsewhere``: another fleet member joined it already (a duplicate, counted)."""
        with self._lock:
            if elsewhere:
                outcome = LabelOutcome.DUPLICATE
            else:
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
            self._drop((model, request_id))
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
            made_at = self._wall() - (self._clock() - rec.at)  # the prediction's wall time
            self.history.add(model, rec.version, made_at, correct)
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

    def realised(self, model: str) -> dict[str, list[RealisedPoint]]:
        """Each version's realised accuracy by prediction time (:mod:`.realised`)."""
        with self._lock:
            return self.history.series(model)

    def quality(self, model: str) -> dict[str, Quality]:
        """Cumulative quality of each version of ``model`` seen so far."""
        with self._lock:
            return {v: c.frozen() for (m, v), c in self._counts.items() if m == model}
