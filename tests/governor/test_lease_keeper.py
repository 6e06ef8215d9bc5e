"""The leader lease holds while the governor's loop is stalled: the keeper renews it from a
thread of its own (gateway.governor.lease), and never takes a lease another holder has."""

from __future__ import annotations

import time

from shared import wait_for

from gateway.governor.lease import LeaseKeeper
from registry import Registry

# NOTE: the keeper renews every TTL / 4, so a renewal may be starved for up to 3/4 of the
# TTL (2.25 s: a CPU hog, SQLite's write lock) before the lease could lapse. A 1 s TTL and a
# contender polling in a busy loop (which itself held the GIL and the file) failed under a
# CPU hog; the contender now polls as another member would.
TTL = 3.0


def _others_never_get_it(reg: Registry, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:  # a stalled loop: nothing renews but the keeper
        if reg.governor.acquire("other", TTL):
            return False
        time.sleep(0.1)
    return True


def test_the_lease_outlives_its_ttl_while_kept(registry: Registry) -> None:
    assert registry.governor.acquire("leader", TTL)
    keeper = LeaseKeeper(registry.governor, "leader", TTL)
    try:
        assert _others_never_get_it(registry, 3 * TTL)
        assert registry.governor.leader()[0] == "leader"
    finally:
        keeper.stop()
    # Not renewed any more: the lease lapses and another holder takes it.
    wait_for(lambda: registry.governor.acquire("other", TTL), timeout=30)


def test_a_keeper_stops_once_the_lease_is_someone_elses(registry: Registry) -> None:
    assert registry.governor.acquire("leader", TTL)
    registry.governor.release("leader")
    assert registry.governor.acquire("other", 30)
    keeper = LeaseKeeper(registry.governor, "leader", TTL)
    wait_for(lambda: not keeper.alive, timeout=10)
    assert not keeper.held and registry.governor.leader()[0] == "other"
    keeper.stop()
