"""The ``[start]`` rule's plan, pure: who starts, who waits, how each strategy begins."""

from __future__ import annotations

import pytest

from gateway.governor.autostart import eligible, plan_start
from gateway.governor.evidence import ShadowAgreement
from gateway.governor.rollout import RolloutPolicyError, parse_rollout_policy
from registry.deployment import Arm, Deployment, Role, Shadow


def _policy(on: str = "approved", strategy: str = "canary", extra: str = "") -> object:
    text = f'[start]\non = "{on}"\nstrategy = "{strategy}"\n[canary]\nsteps = [10, 50]\n'
    return parse_rollout_policy(text + "min_requests = 20\n" + extra)


CHAMPION_ONLY = Deployment("m", 3, (Arm("2", Role.CHAMPION, 1.0),))
VERSIONS = [("1", "approved"), ("2", "champion"), ("3", "approved"), ("4", "approved")]


def test_off_by_default_and_validated_on_parse():
    assert plan_start(parse_rollout_policy(""), CHAMPION_ONLY, VERSIONS, frozenset(), {}) is None
    with pytest.raises(RolloutPolicyError, match="start.on"):
        parse_rollout_policy('[start]\non = "registered"\n')
    with pytest.raises(RolloutPolicyError, match="start.strategy"):
        parse_rollout_policy('[start]\non = "approved"\nstrategy = "big-bang"\n')
    with pytest.raises(RolloutPolicyError, match=r"\[start\]: unknown key"):
        parse_rollout_policy('[start]\nwhen = "approved"\n')


def test_oldest_eligible_starts_as_canary_at_the_first_step_and_the_rest_queue():
    plan = plan_start(_policy(), CHAMPION_ONLY, VERSIONS, frozenset(), {})
    assert plan is not None and plan.start is not None
    assert plan.start.version == "3"
    assert {(a.version, a.role, round(a.weight, 6)) for a in plan.start.arms} == {
        ("2", Role.CHAMPION, 0.9),
        ("3", Role.CANARY, 0.1),
    }
    assert plan.queue == ("4",)
    assert "[start] on = 'approved', strategy = 'canary'" in plan.start.reason


def test_one_candidate_at_a_time():
    dep = Deployment("m", 4, (Arm("2", Role.CHAMPION, 0.9), Arm("3", Role.CANARY, 0.1)))
    versions = [("2", "champion"), ("3", "canary"), ("4", "approved"), ("5", "approved")]
    plan = plan_start(_policy(), dep, versions, frozenset(), {})
    assert plan is not None and plan.start is None
    assert (plan.trial, plan.trial_role, plan.queue) == ("3", "canary", ("4", "5"))


def test_older_than_champion_rolled_back_and_unapproved_never_start():
    versions = [("1", "approved"), ("2", "champion"), ("3", "approved"), ("4", "validated")]
    assert eligible(versions, "2", "approved", frozenset({"3"})) == []
    assert eligible(versions, "2", "validated", frozenset({"3"})) == ["4"]
    assert eligible(versions, "2", "validated", frozenset()) == ["3", "4"]


def test_challenger_strategy():
    plan = plan_start(_policy(strategy="challenger"), CHAMPION_ONLY, VERSIONS, frozenset(), {})
    assert plan is not None and plan.start is not None
    assert plan.start.arms[-1] == Arm("3", Role.CHALLENGER, 0.1)


def test_shadow_then_canary_shadows_first_then_advances_on_enough_agreement():
    policy = _policy(strategy="shadow-then-canary", extra="[gates]\nmin_shadow_agreement = 0.9\n")
    first = plan_start(policy, CHAMPION_ONLY, VERSIONS, frozenset(), {})
    assert first is not None and first.start is not None
    assert first.start.shadows == (Shadow("3", 1.0),) and first.start.arms == CHAMPION_ONLY.arms

    shadowing = Deployment("m", 4, CHAMPION_ONLY.arms, (Shadow("3", 1.0),))
    versions = [("2", "champion"), ("3", "shadow"), ("4", "approved")]
    few = plan_start(policy, shadowing, versions, frozenset(), {"3": ShadowAgreement(5, 5)})
    assert few is not None and few.start is None and few.note == "shadowing: 5/20 requests compared"
    assert few.queue == ("4",)
    poor = plan_start(policy, shadowing, versions, frozenset(), {"3": ShadowAgreement(40, 20)})
    assert poor is not None and poor.start is None and "held for an operator" in poor.note
    good = plan_start(policy, shadowing, versions, frozenset(), {"3": ShadowAgreement(40, 39)})
    assert good is not None and good.start is not None
    assert good.start.shadows == () and good.start.arms[-1] == Arm("3", Role.CANARY, 0.1)
