"""A label sent to a member other than the one that served it joins at once, not after a
whole publishing interval: predictions are shared every ``SHARE_S`` whatever
``fleet_publish_s``, and the member the label reaches looks them up for a few sharing
intervals. An id no member served is answered as unknown, with a hint saying where to look.

Two real members with a 30 s publishing interval, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fleettools import Fleet, start_fleet, stop_fleet
from governor.govtools import N_FEATURES, threshold_model
from pg_cluster import BACKENDS, backend_url
from shared import wait_for

PUBLISH_S = 30.0
SLOW = {"ONNXGATE_FLEET_PUBLISH_S": str(PUBLISH_S), "ONNXGATE_FLEET_LEASE_S": "90"}
POLICY = "[canary]\nsteps = [50]\n"  # no candidate: predictions recorded, nothing moves


@pytest.fixture(params=BACKENDS)
def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Fleet]:
    url = next(backend_url(request, tmp_path))
    running = start_fleet(url, tmp_path, n=2, settings=SLOW)
    try:
        yield running
    finally:
        stop_fleet(running)


def _truth(x: np.ndarray) -> str:
    return str(int(x[0, 1] > 0))  # what threshold_model(1) predicts


def test_a_label_elsewhere_joins_well_within_a_publishing_interval(fleet: Fleet) -> None:
    reg, rng, model = fleet.registry, np.random.default_rng(4), "elsewhere"
    reg.register_version(model, threshold_model(1), version="1", actor="t")
    reg.governor.set_policy(model, POLICY, actor="t")
    fleet.serving(model)
    served, labelled = fleet.members

    def recorded() -> bool:  # the member read the policy: it keeps predictions for labels
        x = rng.standard_normal((1, N_FEATURES)).astype(np.float32)
        rid = f"probe-{time.monotonic_ns()}"
        served.infer(model, rid, x)
        return served.feedback(model, [(rid, _truth(x))]).joined == 1

    wait_for(recorded, timeout=30, every=0.1)
    for k in range(3):
        x = rng.standard_normal((1, N_FEATURES)).astype(np.float32)
        served.infer(model, f"r{k}", x)
        started = time.monotonic()
        answer = labelled.feedback(model, [(f"r{k}", _truth(x)), (f"never-{k}", "1")])
        took = time.monotonic() - started
        assert (answer.joined, answer.unknown) == (1, 1), answer
        assert took < 10.0 < PUBLISH_S, took  # generous: the design answers in about a second
        assert "unknown to every member of this fleet" in answer.hint
