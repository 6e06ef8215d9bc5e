"""Unit tests for gateway.serving.routing: pinned, sticky and weighted choice; shadows; state
swaps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import chisquare

import gateway
import registry.deployment
from gateway.serving.routing import (
    NoRoute,
    Route,
    RoutingState,
    RoutingTable,
    choose,
    key_unit,
    shadow_targets,
)
from registry.deployment import Arm, Deployment, Role, Shadow

ROLES = (Role.CHAMPION, Role.CHALLENGER, Role.CANARY)


def deployment(
    *weights: float,
    revision: int = 1,
    shadows: tuple[Shadow, ...] = (),
    versions: tuple[str, ...] | None = None,
) -> Deployment:
    names = versions or tuple(f"v{i + 1}" for i in range(len(weights)))
    arms = tuple(
        Arm(v, ROLES[min(i, 2)], w) for i, (v, w) in enumerate(zip(names, weights, strict=True))
    )
    return Deployment(model="m", revision=revision, arms=arms, shadows=shadows)


def table(*weights: float, **kwargs: object) -> RoutingTable:
    return RoutingTable.from_deployment(deployment(*weights, **kwargs))  # type: ignore[arg-type]


def by_key(t: RoutingTable, keys: list[str]) -> list[str]:
    return [choose(t, version=None, routing_key=k, u=0.0).version for k in keys]


def assert_matches_weights(versions: list[str], weights: dict[str, float]) -> None:
    counts = Counter(versions)
    assert set(counts) <= set(weights)
    total = sum(weights.values())
    observed = [counts[v] for v in weights]
    expected = [len(versions) * w / total for w in weights.values()]
    assert chisquare(observed, expected).pvalue > 0.001


KEYS = [f"user-{i}" for i in range(50_000)]


# --- weighted pick -----------------------------------------------------------------------


def test_weighted_split_matches_weights() -> None:
    t = table(70, 20, 10)
    us = np.random.default_rng(7).random(200_000).tolist()
    picks = [choose(t, version=None, routing_key=None, u=u).version for u in us]
    assert_matches_weights(picks, {"v1": 70, "v2": 20, "v3": 10})


def test_weighted_slice_edges() -> None:
    t = table(70, 20, 10)
    assert t.cumulative[-1] == 1.0
    pick = [choose(t, version=None, routing_key=None, u=u).version for u in (0.0, 0.7, 0.9)]
    assert pick == ["v1", "v2", "v3"]
    assert choose(t, version=None, routing_key=None, u=np.nextafter(1.0, 0.0)).version == "v3"


def test_zero_weight_arm_never_chosen() -> None:
    t = table(1, 0, 1)
    assert [a.version for a in t.arms] == ["v1", "v2", "v3"]  # kept for display
    assert [a.version for a in t.routable] == ["v1", "v3"]
    us = np.random.default_rng(1).random(20_000).tolist()
    assert "v2" not in {choose(t, version=None, routing_key=None, u=u).version for u in us}
    assert "v2" not in set(by_key(t, KEYS[:5_000]))


def test_single_arm_always_chosen() -> None:
    t = table(3)
    for u in (0.0, 0.5, float(np.nextafter(1.0, 0.0))):
        assert choose(t, version=None, routing_key=None, u=u) == Route("v1", "champion", False)
    assert set(by_key(t, KEYS[:1_000])) == {"v1"}


def test_no_routable_arm_raises_but_pin_still_works() -> None:
    t = table(0, 0)
    with pytest.raises(NoRoute):
        choose(t, version=None, routing_key=None, u=0.3)
    with pytest.raises(NoRoute):
        choose(t, version=None, routing_key="k", u=0.3)
    assert choose(t, version="v2", routing_key=None, u=0.3) == Route("v2", "challenger", True)


@pytest.mark.parametrize("weight", [-1.0, float("nan"), float("inf")])
def test_bad_weight_rejected(weight: float) -> None:
    with pytest.raises(ValueError, match="weight"):
        table(1, weight)


def test_bad_shadow_fraction_and_duplicate_arm_rejected() -> None:
    with pytest.raises(ValueError, match="fraction"):
        table(1, shadows=(Shadow("s", 1.5),))
    with pytest.raises(ValueError, match="twice"):
        table(1, 1, versions=("v1", "v1"))


# --- sticky routing ----------------------------------------------------------------------


def test_sticky_same_key_same_arm_across_calls_and_equal_tables() -> None:
    first = table(50, 30, 20)
    again = table(50, 30, 20)
    assert first == again and hash(first) == hash(again)
    keys = KEYS[:2_000]
    picks = by_key(first, keys)
    assert by_key(first, keys) == picks
    assert by_key(again, keys) == picks
    assert by_key(table(50, 30, 20, revision=9), keys) == picks  # revision is not an input


def test_sticky_key_distribution_matches_weights() -> None:
    assert_matches_weights(by_key(table(70, 20, 10), KEYS), {"v1": 70, "v2": 20, "v3": 10})


def test_key_unit_is_pinned_to_its_documented_formula() -> None:
    # NOTE: a change here reshuffles every sticky user on deploy; change only on purpose.
    assert key_unit("user-1", "v1") == 0.21328926544218257
    assert key_unit("", "champion-2") == 0.31186686212339604
    assert key_unit("ab", "c") != key_unit("a", "bc")  # the length prefix separates fields


def test_raising_a_weight_moves_keys_only_into_that_arm() -> None:
    keys = KEYS[:20_000]
    before = by_key(table(80, 20), keys)
    after = by_key(table(80, 40), keys)
    moved = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    assert moved and all(b == "v1" and a == "v2" for b, a in moved)
    # v2's share goes from 20/100 to 40/120: 1/3 - 1/5 = 2/15 of all keys move.
    assert abs(len(moved) / len(keys) - 2 / 15) < 0.01


def test_removing_an_arm_moves_only_its_keys() -> None:
    keys = KEYS[:20_000]
    before = by_key(table(50, 30, 20), keys)
    after = by_key(table(50, 20, versions=("v1", "v3")), keys)
    for b, a in zip(before, after, strict=True):
        assert a == b or b == "v2"
    assert "v2" not in after


def test_sticky_choice_is_the_same_in_another_process() -> None:
    keys = KEYS[:100]
    t = table(50, 30, 20)
    here = by_key(t, keys)
    roots = {str(Path(m.__file__).resolve().parents[1]) for m in (gateway, registry.deployment)}
    code = (
        "import json, sys\n"
        "from gateway.serving.routing import RoutingTable, choose\n"
        "from registry.deployment import Arm, Deployment, Role\n"
        "roles = (Role.CHAMPION, Role.CHALLENGER, Role.CANARY)\n"
        "weights = (50, 30, 20)\n"
        "arms = tuple(Arm(f'v{i + 1}', roles[i], w) for i, w in enumerate(weights))\n"
        "t = RoutingTable.from_deployment(Deployment('m', 1, arms))\n"
        "keys = json.load(sys.stdin)\n"
        "print(json.dumps([choose(t, version=None, routing_key=k, u=0.0).version for k in keys]))\n"
    )
    seed = "12345" if os.environ.get("PYTHONHASHSEED") != "12345" else "54321"
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": os.pathsep.join(sorted(roots))}
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(keys),
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    assert json.loads(out.stdout) == here


# --- precedence and roles ----------------------------------------------------------------


def test_pin_beats_key_beats_weight() -> None:
    t = table(50, 50)
    key = next(k for k in KEYS if by_key(t, [k]) == ["v2"])
    for u in (0.0, 0.25, 0.75):
        pinned = choose(t, version="v1", routing_key=key, u=u)
        assert pinned == Route("v1", "champion", True)
        assert choose(t, version=None, routing_key=key, u=u) == Route("v2", "challenger", False)
    assert choose(t, version=None, routing_key=None, u=0.25).version == "v1"
    assert choose(t, version=None, routing_key=None, u=0.75).version == "v2"


def test_pinned_roles() -> None:
    t = table(1, 0, shadows=(Shadow("s1", 0.5),))
    assert choose(t, version="v2", routing_key=None, u=0.0) == Route("v2", "challenger", True)
    assert choose(t, version="s1", routing_key=None, u=0.0) == Route("s1", "shadow", True)
    assert choose(t, version="old", routing_key=None, u=0.0) == Route("old", "pinned", True)


# --- shadows -----------------------------------------------------------------------------


def test_shadow_targets_respect_fractions() -> None:
    t = table(1, shadows=(Shadow("s10", 0.1), Shadow("s50", 0.5), Shadow("s0", 0.0)))
    us = np.random.default_rng(3).random(100_000).tolist()
    seen = Counter(v for u in us for v in shadow_targets(t, u))
    assert abs(seen["s10"] / len(us) - 0.1) < 0.005
    assert abs(seen["s50"] / len(us) - 0.5) < 0.01
    assert seen["s0"] == 0
    full = table(1, shadows=(Shadow("all", 1.0),))
    assert shadow_targets(full, 0.0) == shadow_targets(full, 0.999999) == ("all",)
    assert shadow_targets(table(1), 0.0) == ()


# --- state -------------------------------------------------------------------------------


def test_routing_state_get_models_and_copy_on_replace() -> None:
    state = RoutingState()
    assert state.get("m") is None and state.models() == []
    tables = {"b": table(1), "a": table(2)}
    state.replace(tables)
    old = state.snapshot()
    tables["c"] = table(3)  # the caller's dict is copied, not shared
    assert state.models() == ["a", "b"]
    state.replace({"a": table(5)})
    assert state.models() == ["a"] and state.get("b") is None
    assert sorted(old) == ["a", "b"]  # an old snapshot is never mutated


def test_routing_state_replace_is_atomic_for_readers() -> None:
    models = [f"m{i}" for i in range(20)]

    def generation(rev: int) -> dict[str, RoutingTable]:
        return {
            m: RoutingTable(model=m, revision=rev, arms=(Arm("v", Role.CHAMPION, 1.0),))
            for m in models
        }

    generations = [generation(rev) for rev in range(2)]
    state = RoutingState(generations[0])
    stop = threading.Event()
    errors: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            snap = state.snapshot()
            revisions = {t.revision for t in snap.values()}
            if len(revisions) != 1 or len(snap) != len(models):
                errors.append(f"mixed state: {revisions}, {len(snap)} models")
            if state.get("m7") is None:
                errors.append("a model vanished during a swap")

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # force many thread switches in a short test
    try:
        threads = [threading.Thread(target=reader) for _ in range(3)]
        for th in threads:
            th.start()
        for i in range(5_000):
            state.replace(generations[i % 2])
        stop.set()
        for th in threads:
            th.join()
    finally:
        sys.setswitchinterval(switch)
    assert not errors, errors[:3]
