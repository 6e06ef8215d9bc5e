"""Rows of dead fleet members are folded (registry.fleet_store.FleetStore.fold): one row per
(model, version) holds what every gone process published, so the fleet's totals do not
change and the evidence table does not grow with every restart; a process resumed after
its rows were folded is refused and goes on under a new name, counting nothing twice.

On both backends, with real FleetNodes (their own metrics, real registry tables).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_cluster import BACKENDS, backend_url
from shared import wait_for

from gateway.fleet.node import FOLD_AFTER_LEASES, FleetNode
from gateway.fleet.payload import decode, fold, merge
from gateway.governor.evidence import Evidence
from gateway.governor.feedback import FeedbackStore
from gateway.governor.sources import MetricsEvidence
from gateway.metrics import GatewayMetrics
from gateway.settings import Settings
from registry import FOLDED, Registry

LEASE_S = 0.2


@pytest.fixture(params=BACKENDS)
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from backend_url(request, tmp_path)


def _node(reg: Registry, name: str) -> tuple[FleetNode, GatewayMetrics]:
    metrics = GatewayMetrics()
    node = FleetNode(reg, [MetricsEvidence(metrics)], FeedbackStore(), metrics,
                     process=f"host:{name}:0000", publish_s=0.1, lease_s=LEASE_S,
                     outbox=16, ttl_s=60.0)  # fmt: skip
    return node, metrics


def _serve(metrics: GatewayMetrics, n: int) -> None:
    for _ in range(n):
        metrics.for_version("m", "1").succeeded("champion", 0.002, 1)


def _total(reg: Registry) -> int:
    rows = [(decode(r.payload), r.live) for r in reg.fleet.evidence() if r.model == "m"]
    traffic = merge(rows).traffic
    return 0 if traffic is None else traffic.requests


def _processes(reg: Registry) -> set[str]:
    return {r.process for r in reg.fleet.evidence()}


def _fold_until_gone(reg: Registry, live: list[FleetNode], gone_s: float, *names: str) -> None:
    """Fold (as any member does now and then) until ``names`` are folded; ``live`` members
    keep publishing meanwhile, so their leases hold."""

    def folded() -> bool:
        for node in live:
            node.publish_once()
        reg.fleet.fold(gone_s, fold)
        return not set(names) & _processes(reg)

    wait_for(folded, timeout=15, every=0.1)


def test_gone_members_are_folded_and_totals_do_not_change(registry: Registry) -> None:
    nodes = [_node(registry, str(i)) for i in range(4)]
    for i, (node, metrics) in enumerate(nodes):
        _serve(metrics, 10 * (i + 1))
        node.publish_once()
    assert _total(registry) == 100
    left, silent, *live = (n for n, _ in nodes)
    registry.fleet.leave(left.process)  # stopped cleanly; ``silent`` just stops renewing
    _fold_until_gone(registry, live, 1.0, left.process, silent.process)
    assert _processes(registry) == {FOLDED, *(n.process for n in live)}  # the live stay
    assert _total(registry) == 100  # nothing lost, nothing counted twice
    # Folding again (by another member, or later) changes nothing.
    registry.fleet.fold(1.0, fold)
    assert _total(registry) == 100
    assert len([r for r in registry.fleet.evidence() if r.process == FOLDED]) == 1


def test_a_member_resumed_after_its_rows_were_folded_counts_nothing_twice(
    registry: Registry,
) -> None:
    node, metrics = _node(registry, "paused")
    other, other_metrics = _node(registry, "other")
    _serve(metrics, 7)
    node.publish_once()
    _serve(other_metrics, 5)
    other.publish_once()
    old = node.process
    # "paused" renews nothing for longer than the fold limit; a live member folds it.
    _fold_until_gone(registry, [other], LEASE_S, old)
    assert _total(registry) == 12
    _serve(metrics, 3)  # resumed: its counters still hold the 7 already folded
    node.publish_once()
    assert node.process != old and node.process in registry.fleet.members()
    assert _total(registry) == 15
    _serve(metrics, 2)
    node.publish_once()
    assert _total(registry) == 17
    assert {FOLDED, node.process, other.process} == _processes(registry)
    # Paused and folded a second time: the new baseline is both folds together.
    second = node.process
    _fold_until_gone(registry, [other], LEASE_S, second)
    assert _total(registry) == 17
    _serve(metrics, 4)
    node.publish_once()
    assert node.process not in (old, second)
    assert _total(registry) == 21


def test_the_fold_limit_is_far_beyond_a_lease() -> None:
    # At the default lease a member is folded only after five minutes of silence.
    assert FOLD_AFTER_LEASES * Settings.fleet_lease_s >= 300


def test_folding_nothing_is_no_evidence() -> None:
    assert decode(fold([])) == Evidence()
