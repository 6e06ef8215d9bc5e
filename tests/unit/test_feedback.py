"""The prediction record and delayed-label join: bounds, TTL, outcomes, quality, fairness."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.domain import InferRequest
from gateway.governor.feedback import FeedbackStore, LabelOutcome, disparate_impact
from gateway.governor.predictions import normalise_label, predictions_of, segments_of
from gateway.governor.rollout import FeedbackPolicy
from gateway.serving.taps import TapRecord
from registry.signature import Signature

CLS = FeedbackPolicy()
REG = FeedbackPolicy(task="regression", threshold=10.0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_normalised_labels() -> None:
    assert {normalise_label(v) for v in (1, 1.0, "1", " 1.0 ", np.int64(1), b"1")} == {"1"}
    assert normalise_label("cat") == "cat"
    assert normalise_label(0.25) == "0.25"


def test_prediction_extraction() -> None:
    labels = {"label": np.array([1, 0, 2]), "probabilities": np.zeros((3, 3), np.float32)}
    assert predictions_of(CLS, labels) == ["1", "0", "2"]
    scores = {"y": np.array([[0.1, 0.9], [0.8, 0.2]], np.float32)}
    assert predictions_of(CLS, scores) == ["1", "0"]
    single = {"y": np.array([[0.7], [0.2]], np.float32)}
    assert predictions_of(CLS, single) == ["1", "0"]
    assert predictions_of(REG, {"y": np.array([[2.5, 9.0]])}) == [2.5]
    named = FeedbackPolicy(output="probabilities")
    assert predictions_of(named, labels) == ["0", "0", "0"]
    assert predictions_of(FeedbackPolicy(output="missing"), labels) == []
    strings = {"label": np.array(["cat", "dog"], dtype=object)}
    assert predictions_of(CLS, strings) == ["cat", "dog"]


def test_segments_from_parameter_or_feature() -> None:
    x = np.array([[0.0, 3.0], [1.0, 4.0]], np.float32)
    req = InferRequest("m", "", "id", {"x": x}, parameters={"segment": "north"})
    assert segments_of(CLS, req, 2) == ["north", "north"]
    by_feature = FeedbackPolicy(segment_param="", segment_feature="x:1")
    assert segments_of(by_feature, req, 2) == ["3", "4"]
    req.parameters.clear()
    both = FeedbackPolicy(segment_feature="x:0")
    assert segments_of(both, req, 2) == ["0", "1"]
    assert segments_of(CLS, req, 2) == ["", ""]


def test_join_counts_accuracy_and_outcomes() -> None:
    store = FeedbackStore()
    store.configure("m", CLS)
    store.record("m", "1", "a", ["1", "0"], ["north", "south"])
    store.record("m", "2", "b", ["1"], ["north"])
    store.record("m", "1", "", ["1"], ["south"])  # no id: counted, never joinable
    assert store.add_label("m", "a", row=0, label="1") is LabelOutcome.JOINED
    assert store.add_label("m", "a", row=1, value=1.0) is LabelOutcome.JOINED
    assert store.add_label("m", "a", row=1, label="0") is LabelOutcome.DUPLICATE
    assert store.add_label("m", "a", row=5, label="0") is LabelOutcome.INVALID
    assert store.add_label("m", "a", row=0) is LabelOutcome.INVALID
    assert store.add_label("m", "zzz", label="1") is LabelOutcome.UNKNOWN
    assert store.add_label("other", "a", label="1") is LabelOutcome.UNKNOWN
    assert store.add_label("m", "b", label="0") is LabelOutcome.JOINED
    q = store.quality("m")
    assert (q["1"].predictions, q["1"].labelled, q["1"].correct) == (3, 2, 1)
    assert (q["2"].labelled, q["2"].correct) == (1, 0)
    north, south = q["1"].segments["north"], q["1"].segments["south"]
    assert (north.predictions, north.positives, north.correct, north.true_positives) == (1, 1, 1, 1)
    assert (south.predictions, south.positives) == (2, 1)
    assert (south.labelled, south.actual_positives, south.true_positives) == (1, 1, 0)
    assert south.tpr == 0.0 and north.tpr == 1.0
    assert store.outcomes[("m", "joined")] == 3 and store.outcomes[("m", "duplicate")] == 1


def test_regression_errors() -> None:
    store = FeedbackStore()
    store.configure("r", REG)
    store.record("r", "1", "a", [12.0, 3.0], ["", ""])
    assert store.add_label("r", "a", row=0, value=10.0) is LabelOutcome.JOINED
    assert store.add_label("r", "a", row=1, label="7") is LabelOutcome.JOINED
    assert store.add_label("r", "a", row=1, label="x") is LabelOutcome.DUPLICATE
    q = store.quality("r")["1"]
    assert (q.labelled, q.abs_error, q.abs_error_sq) == (2, 6.0, 20.0)
    assert q.score("regression") == -3.0


def test_size_and_ttl_bounds() -> None:
    clock = Clock()
    store = FeedbackStore(max_records=3, ttl_s=10.0, clock=clock)
    store.configure("m", CLS)
    for i in range(5):
        store.record("m", "1", f"r{i}", ["1"], [""])
    assert len(store) == 3 and store.evicted == 2
    assert store.add_label("m", "r0", label="1") is LabelOutcome.UNKNOWN
    clock.now = 11.0
    assert store.add_label("m", "r4", label="1") is LabelOutcome.EXPIRED
    store.record("m", "1", "fresh", ["1"], [""])  # recording purges expired ones
    assert len(store) == 1
    assert store.quality("m")["1"].predictions == 6  # counters survive eviction


def test_observer_records_only_configured_models() -> None:
    store = FeedbackStore()
    x = {"x": np.zeros((1, 2), np.float32)}
    outputs = {"label": np.array([1])}
    record = TapRecord("m", "3", "canary", "id1", {}, x, outputs, Signature((), ()))
    store.observe(record)
    assert store.quality("m") == {}
    store.configure("m", CLS)
    store.observe(record)
    assert store.add_label("m", "id1", label="1") is LabelOutcome.JOINED
    assert store.quality("m")["3"].correct == 1
    store.configure("m", None)
    assert store.configured() == frozenset()


def test_disparate_impact() -> None:
    assert disparate_impact({"a": 0.5, "b": 0.4}) == pytest.approx(0.8)
    assert disparate_impact({"a": 0.0, "b": 0.0}) == 1.0
    assert disparate_impact({"a": 0.5}) is None


def test_records_are_bounded_in_bytes_whatever_the_ids() -> None:
    """A soak with long ids must level off: the oldest records go once the bytes are spent."""
    store = FeedbackStore(max_records=1_000_000, max_bytes=200_000)
    for i in range(5_000):
        store.record("m", "1", f"{i:0256d}", ["1"], [""], CLS)  # 256-byte ids, the limit
        assert store.bytes <= 200_000
    assert 0 < len(store) < 5_000 and store.evicted == 5_000 - len(store)
    newest = f"{4_999:0256d}"
    assert store.add_label("m", newest, label="1") is LabelOutcome.JOINED
    assert store.add_label("m", f"{0:0256d}", label="1") is LabelOutcome.UNKNOWN
    # Every record's bytes are given back when it leaves, whichever way it leaves.
    store.record("m", "1", newest, ["0"], [""], CLS)  # a reused id replaces its record
    assert store.bytes == sum(r.size for r in store._records.values())
