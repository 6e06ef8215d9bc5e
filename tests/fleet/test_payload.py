"""The fleet's merge (gateway.fleet.payload): exact sums of cumulative evidence, histograms
bucket by bucket, drift verdicts from live processes only, and a JSON round trip."""

from __future__ import annotations

import json
import math

from gateway.fleet.payload import decode, encode, merge
from gateway.governor.evidence import (
    Drift,
    Evidence,
    Quality,
    SegmentCounts,
    ShadowAgreement,
    Traffic,
)

BOUNDS = (0.001, 0.01, math.inf)


def _ev(requests: int, hist: tuple[int, ...], drift: Drift | None = None) -> Evidence:
    return Evidence(
        traffic=Traffic(requests, 1, BOUNDS, hist),
        quality=Quality(requests, 2, 1, 0.5, 0.25, {"a": SegmentCounts(3, 1, 2, 1, 1, 1)}),
        shadow=ShadowAgreement(4, 3),
        drift=drift,
    )


def test_round_trip_through_json_keeps_every_part() -> None:
    ev = _ev(7, (1, 5, 1), Drift(("x0",), True, ("y",), 100))
    assert decode(json.loads(json.dumps(encode(ev)))) == ev


def test_merge_sums_counts_and_histograms_exactly() -> None:
    total = merge([(_ev(7, (1, 5, 1)), True), (_ev(3, (0, 2, 1)), False)])
    assert total.traffic == Traffic(10, 2, BOUNDS, (1, 7, 2))
    assert total.traffic is not None and total.traffic.quantile(0.5) is not None
    assert total.quality is not None
    assert (total.quality.predictions, total.quality.labelled, total.quality.correct) == (10, 4, 2)
    assert total.quality.segments["a"] == SegmentCounts(6, 2, 4, 2, 2, 2)
    assert total.shadow == ShadowAgreement(8, 6)


def test_drift_is_the_union_of_live_processes_verdicts_only() -> None:
    drifted = Drift(("x1",), True, ("y",), 500)
    quiet = Drift((), False, (), 800)
    stale = Drift(("x9",), False, (), 900)
    total = merge([(_ev(1, (1, 0, 0), quiet), True), (_ev(1, (1, 0, 0), drifted), True),
                   (_ev(1, (1, 0, 0), stale), False)])  # fmt: skip
    assert total.drift == Drift(("x1",), True, ("y",), 800)


def test_one_unstorable_prediction_never_costs_its_batch(registry) -> None:
    """A lone surrogate in an id once failed a whole publish (199 of 199 predictions lost,
    nothing counted): each row that the table cannot store is dropped and counted alone."""
    from gateway.fleet.node import Outbox

    outbox = Outbox(100, registry.fleet.record_predictions)
    for i in range(5):
        outbox.put("m", f"ok-{i}", "1", ["1"], [""])
    outbox.put("m", "bad-\ud800", "1", ["1"], [""])  # text no encoder accepts
    outbox.put("m", "nan", "1", [float("nan")], [""])  # PostgreSQL's JSON refuses NaN
    outbox.put("m", "x" * 300, "1", ["1"], [""])  # longer than the id column
    outbox.put("m", "seg", "1", ["1"], ["\udfff"])
    outbox.publish()
    assert outbox.shared == 5 and outbox.dropped == 4
    kept = registry.fleet.predictions("m", [f"ok-{i}" for i in range(5)] + ["nan", "seg"])
    assert sorted(r.request_id for r in kept) == [f"ok-{i}" for i in range(5)]
