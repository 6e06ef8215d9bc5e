"""The governor: moves traffic between a model's versions, by its rollout policy.

Pure core: :mod:`~gateway.governor.rollout` (the per-model policy),
:mod:`~gateway.governor.evidence`, :mod:`~gateway.governor.gates`,
:mod:`~gateway.governor.sequential` and :mod:`~gateway.governor.decide` (policy + evidence
-> decision). Around it: :mod:`~gateway.governor.sources` gathers evidence,
:mod:`~gateway.governor.feedback` joins delayed labels, :mod:`~gateway.governor.loop` runs
the leader's periodic evaluation and writes decisions to the registry,
:mod:`~gateway.governor.collector` exports metrics. No grpc.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.lazy import lazy_attributes

if TYPE_CHECKING:
    from gateway.governor.collector import GovernorMetrics
    from gateway.governor.decide import Decision, decide
    from gateway.governor.feedback import FeedbackStore, LabelOutcome
    from gateway.governor.loop import Governor, default_holder
    from gateway.governor.rollout import RolloutPolicy, RolloutPolicyError, parse_rollout_policy
    from gateway.governor.sources import FeedbackEvidence, MetricsEvidence, MonitorEvidence

__all__ = [
    "Decision",
    "FeedbackEvidence",
    "FeedbackStore",
    "Governor",
    "GovernorMetrics",
    "LabelOutcome",
    "MetricsEvidence",
    "MonitorEvidence",
    "RolloutPolicy",
    "RolloutPolicyError",
    "decide",
    "default_holder",
    "parse_rollout_policy",
]

_LAZY = {
    "Decision": "gateway.governor.decide",
    "FeedbackEvidence": "gateway.governor.sources",
    "FeedbackStore": "gateway.governor.feedback",
    "Governor": "gateway.governor.loop",
    "GovernorMetrics": "gateway.governor.collector",
    "LabelOutcome": "gateway.governor.feedback",
    "MetricsEvidence": "gateway.governor.sources",
    "MonitorEvidence": "gateway.governor.sources",
    "RolloutPolicy": "gateway.governor.rollout",
    "RolloutPolicyError": "gateway.governor.rollout",
    "decide": "gateway.governor.decide",
    "default_holder": "gateway.governor.loop",
    "parse_rollout_policy": "gateway.governor.rollout",
}


__getattr__ = lazy_attributes(__name__, _LAZY)
