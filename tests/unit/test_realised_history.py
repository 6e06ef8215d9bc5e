"""Realised accuracy over time (issue 23's plot): labels counted by their prediction's time,
in a bounded number of buckets."""

from __future__ import annotations

import pytest

from gateway.governor.feedback import FeedbackStore
from gateway.governor.realised import RealisedHistory


def test_labels_land_in_their_predictions_bucket_in_time_order_and_bounded() -> None:
    h = RealisedHistory(bucket_s=10.0, keep=3)
    h.add("m", "1", 105.0, True)
    h.add("m", "1", 109.9, False)
    h.add("m", "1", 125.0, True)
    h.add("m", "1", 112.0, True)  # a late label of an earlier bucket: kept in time order
    h.add("m", "2", 100.0, False)
    h.add("other", "1", 100.0, True)
    points = h.series("m")
    assert [(p.at, p.labelled, p.correct) for p in points["1"]] == [
        (100.0, 2, 1),
        (110.0, 1, 1),
        (120.0, 1, 1),
    ]
    assert points["1"][0].accuracy == 0.5 and points["2"][0].accuracy == 0.0
    h.add("m", "1", 131.0, True)  # a fourth bucket: the oldest goes
    assert [p.at for p in h.series("m")["1"]] == [110.0, 120.0, 130.0]
    h.add("m", "1", 95.0, True)  # older than every kept bucket: dropped, not re-added
    assert [p.at for p in h.series("m")["1"]] == [110.0, 120.0, 130.0]
    with pytest.raises(ValueError):
        RealisedHistory(bucket_s=0.0)


def test_a_label_that_arrives_later_counts_at_its_predictions_time() -> None:
    now = {"mono": 1000.0, "wall": 50_000.0}
    store = FeedbackStore(
        clock=lambda: now["mono"],
        wall=lambda: now["wall"],
        history=RealisedHistory(bucket_s=60.0),
    )
    store.record("m", "1", "a", ["1", "0"], ["", ""])
    now["mono"] += 600.0  # ten minutes later, the labels
    now["wall"] += 600.0
    store.add_label("m", "a", row=0, label="1")
    store.add_label("m", "a", row=1, label="1")
    (point,) = store.realised("m")["1"]
    assert (point.at, point.labelled, point.correct) == (49_980.0, 2, 1)  # the bucket of 50_000
