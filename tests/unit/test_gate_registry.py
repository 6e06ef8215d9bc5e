"""The gate registry: policy parsing and evaluation both read governor.gates.GATES."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from gateway.governor.evidence import Evidence, Traffic, VersionSnapshot
from gateway.governor.gates import GATE_NAMES, GATES, Gates, evaluate_gates
from gateway.governor.rollout import RolloutPolicy, RolloutPolicyError, parse_rollout_policy


def test_every_gate_has_its_key_in_the_policy_table() -> None:
    assert GATE_NAMES == tuple(g.name for g in GATES)
    assert len(set(GATE_NAMES)) == len(GATE_NAMES)
    keys = [p.key for g in GATES for p in (g.key, *g.params)]
    assert len(set(keys)) == len(keys)
    assert set(keys) <= Gates.keys()
    assert list(Gates().to_dict())[: len(keys)] == keys


@pytest.mark.parametrize("gate", GATES, ids=lambda g: g.name)
def test_each_gate_reads_its_key_within_bounds_and_false_switches_it_off(gate: object) -> None:
    from gateway.governor.gates import Gate

    assert isinstance(gate, Gate)
    key = gate.key
    off = parse_rollout_policy(f"[gates]\n{key.key} = false\nhard = []\n")
    cand = VersionSnapshot("2", "canary", 10.0, Evidence(traffic=Traffic(100, 0)))
    champ = VersionSnapshot("1", "champion", 90.0, Evidence(traffic=Traffic(100, 0)))
    assert gate.name not in [r.name for r in evaluate_gates(off, cand, champ)[0]]
    if key.kind == "threshold":
        if not math.isinf(key.hi):
            with pytest.raises(RolloutPolicyError, match=f"gates.{key.key}"):
                parse_rollout_policy(f"[gates]\n{key.key} = {key.hi + 1}\n")
        on = parse_rollout_policy(f"[gates]\n{key.key} = {key.lo}\nhard = []\n")
        assert getattr(on.gates, key.key) == key.lo
        names = [r.name for r in evaluate_gates(on, cand, champ)[0]]
        assert gate.name in names


def test_gates_replace_and_equality_work_like_a_dataclass() -> None:
    g = Gates(min_requests=5)
    assert replace(g, max_error_rate=0.5).max_error_rate == 0.5
    assert replace(g, max_error_rate=0.5).min_requests == 5
    assert replace(g, hard=frozenset()).hard == frozenset()
    assert Gates() == RolloutPolicy().gates and hash(Gates()) == hash(Gates())
    with pytest.raises(TypeError):
        Gates(no_such_key=1)
