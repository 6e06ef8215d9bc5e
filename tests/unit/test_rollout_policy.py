"""RolloutPolicy TOML: defaults, every section parsed, and refusals that name the bad key."""

from __future__ import annotations

import pytest

from gateway.governor.rollout import Mode, RolloutPolicy, RolloutPolicyError, parse_rollout_policy

FULL = """
mode = "dry-run"
require_approval = true

[canary]
steps = [1, 20, 60]
interval_s = 0.5
min_requests = 10
min_labels = 5

[gates]
max_error_rate = 0.1
max_error_rate_delta = false
max_p99_ratio = 2
max_drifted_features = 3
output_drift = false
min_shadow_agreement = 0.9
max_quality_drop = 0.05
min_disparate_impact = 0.8
min_tpr_ratio = 0.7
min_requests = 5
min_labels = 7
min_segment_count = 9
hard = ["error_rate", "quality"]
soft_failures = 2

[challenger]
alpha = 0.01
tau = 0.1
min_labels = 40

[feedback]
task = "regression"
output = "y"
positive = 1
threshold = 0.25
segment_param = "group"
segment_feature = "x:2"
"""


def test_empty_policy_is_the_defaults() -> None:
    assert parse_rollout_policy("") == RolloutPolicy()


def test_every_key_is_read() -> None:
    p = parse_rollout_policy(FULL)
    assert p.mode is Mode.DRY_RUN and p.require_approval
    assert p.canary.steps == (1.0, 20.0, 60.0)
    assert (p.canary.interval_s, p.canary.min_requests, p.canary.min_labels) == (0.5, 10, 5)
    g = p.gates
    assert g.max_error_rate == 0.1 and g.max_error_rate_delta is None
    assert g.max_p99_ratio == 2.0 and g.max_drifted_features == 3 and not g.output_drift
    assert g.min_shadow_agreement == 0.9 and g.max_quality_drop == 0.05
    assert g.min_disparate_impact == 0.8 and g.min_tpr_ratio == 0.7
    assert (g.min_requests, g.min_labels, g.min_segment_count) == (5, 7, 9)
    assert g.hard == {"error_rate", "quality"} and g.soft_failures == 2
    assert (p.challenger.alpha, p.challenger.tau, p.challenger.min_labels) == (0.01, 0.1, 40)
    f = p.feedback
    assert (f.task, f.output, f.positive, f.threshold) == ("regression", "y", "1", 0.25)
    assert f.segment_param == "group" and f.segment_column == ("x", 2)
    assert p.to_dict()["gates"]["hard"] == ["error_rate", "quality"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("mode = 'yolo'", "mode"),
        ("colour = 1", "colour"),
        ("[canary]\nsteps = [10, 5]", "canary.steps"),
        ("[canary]\nsteps = [0, 5]", "canary.steps"),
        ("[canary]\nsteps = [5, 100]", "canary.steps"),
        ("[canary]\nspeed = 1", "speed"),
        ("[gates]\nmax_error_rate = 2", "gates.max_error_rate"),
        ("[gates]\nmax_error_rate = true", "gates.max_error_rate"),
        ("[gates]\nhard = ['nope']", "gates.hard"),
        ("[gates]\nsoft_failures = 0", "soft_failures"),
        ("[gates]\nmin_requests = -1", "gates.min_requests"),
        ("[challenger]\nalpha = 0.9", "challenger.alpha"),
        ("[feedback]\ntask = 'ranking'", "feedback.task"),
        ("[feedback]\nsegment_feature = 'x:y'", "segment_feature"),
        ("mode = ", "TOML"),
        ("canary = 3", "[canary]"),
    ],
)
def test_bad_policies_are_refused_by_name(text: str, needle: str) -> None:
    with pytest.raises(RolloutPolicyError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        parse_rollout_policy(text)
