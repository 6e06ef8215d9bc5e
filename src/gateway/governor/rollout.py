"""A model's rollout policy: what the governor may do, when, and on what evidence.

Not to be confused with the registry's *governance* policy
(:class:`registry.governance_policy.GovernancePolicy`: approvals, required metadata,
retention), which is one fleet-wide rulebook for people; a rollout policy is per model and
drives the governor's traffic moves.

Rollout policies are TOML documents stored (versioned, audited) in the registry and parsed here
into frozen dataclasses; :func:`parse_rollout_policy` names every unknown key and out-of-range
value, so a bad policy is refused at ``policy set`` rather than misread later. Pure: no
grpc, no SQLAlchemy.

Example (every key optional; these are the defaults unless noted)::

    mode = "enforce"            # enforce | dry-run | paused
    require_approval = false    # final promotion waits for `onnxgate governor approve`

    [canary]
    steps = [5, 10, 25, 50]     # percent of traffic, ascending; promote after the last
    interval_s = 60.0           # seconds between evaluations of this model
    min_requests = 200          # candidate requests in a step before it may advance
    min_labels = 0              # candidate labels (delayed feedback) per step, 0: none

    [gates]                     # a threshold set to false switches its gate off (gates.GATES)
    max_error_rate = 0.02       # candidate's error rate
    max_error_rate_delta = 0.01 # candidate's error rate minus the champion's
    max_p99_ratio = 1.5         # candidate p99 latency / champion p99 latency
    max_drifted_features = 0    # fail when more than K input features drift
    output_drift = true         # fail on a drift verdict on the candidate's outputs
    min_shadow_agreement = false  # e.g. 0.9: share of shadowed requests agreeing
    max_quality_drop = 0.02     # candidate quality may trail the champion's by this much
    min_disparate_impact = 0.8  # min/max positive-prediction rate across segments
    min_tpr_ratio = false       # min/max true-positive rate across segments (labels)
    min_importance_correlation = false  # e.g. 0.5: rank correlation of feature importances
    min_estimated_accuracy = false  # e.g. 0.8: label-free estimate (its 95% upper bound)
    max_estimated_drop = false  # e.g. 0.03: estimated accuracy may trail the champion's
    max_contract_violation_rate = false  # e.g. 0.01: rows outside the data contract
    min_requests = 20           # requests before rate/latency gates are judged
    min_labels = 30             # labels (each side) before quality gates are judged
    min_segment_count = 30      # predictions (labels for TPR) a segment needs to count
    hard = ["error_rate", "error_rate_delta", "output_drift"]  # fail: roll back at once
    soft_failures = 3           # consecutive failures of soft gates before rolling back

    [challenger]                # champion/challenger: promote on a sequential test
    alpha = 0.05                # false-promotion probability, however often we look
    tau = 0.05                  # mixture std of the quality difference (metric units)
    min_labels = 50             # labels per side before the test is consulted

    [start]                     # the governor starts a rollout itself (off: on = "")
    on = ""                     # validated | approved: the status that starts a version
    strategy = "canary"         # canary | shadow-then-canary | challenger

    [feedback]                  # how predictions are recorded and labels scored
    task = "classification"     # classification (accuracy) | regression (MAE)
    output = ""                 # output tensor to record; "" picks one (see feedback.py)
    positive = "1"              # classification: the positive class (fairness)
    threshold = 0.5             # regression: a prediction >= threshold is "positive"
    segment_param = "segment"   # request parameter naming the caller's segment
    segment_feature = ""        # or an input column, "x:3"; used when the param is absent
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from gateway.governor import policy_checks as check
from gateway.governor.gates import GATE_NAMES, Gates
from gateway.governor.policy_checks import RolloutPolicyError

__all__ = [
    "GATE_NAMES",
    "CanaryPolicy",
    "ChallengerPolicy",
    "ContractPolicy",
    "FeedbackPolicy",
    "Gates",
    "Mode",
    "RolloutPolicy",
    "RolloutPolicyError",
    "StartPolicy",
    "parse_rollout_policy",
    "policy_to_set",
]


class Mode(StrEnum):
    ENFORCE = "enforce"
    DRY_RUN = "dry-run"
    PAUSED = "paused"


@dataclass(frozen=True)
class CanaryPolicy:
    steps: tuple[float, ...] = (5.0, 10.0, 25.0, 50.0)
    interval_s: float = 60.0
    min_requests: int = 200
    min_labels: int = 0


@dataclass(frozen=True)
class ChallengerPolicy:
    alpha: float = 0.05
    tau: float = 0.05
    min_labels: int = 50


@dataclass(frozen=True)
class FeedbackPolicy:
    task: str = "classification"
    output: str = ""
    positive: str = "1"
    threshold: float = 0.5
    segment_param: str = "segment"
    segment_feature: str = ""

    @property
    def segment_column(self) -> tuple[str, int] | None:
        """``segment_feature`` "x:3" as ("x", 3); a bare name means column 0."""
        if not self.segment_feature:
            return None
        name, _, col = self.segment_feature.partition(":")
        return name, int(col or 0)


START_ON = ("", "validated", "approved")
STRATEGIES = ("canary", "shadow-then-canary", "challenger")


@dataclass(frozen=True)
class StartPolicy:
    """When the governor starts a rollout by itself, and how (:mod:`.autostart`)."""

    on: str = ""  # "" (never) | validated | approved
    strategy: str = "canary"

    @property
    def rule(self) -> str:
        """The rule as an audit event names it."""
        return f"[start] on = {self.on!r}, strategy = {self.strategy!r}"


@dataclass(frozen=True)
class ContractPolicy:
    """``[contract]``: what a version's data contract does (gateway.monitoring.contracts)."""

    mode: str = "off"  # off | count | flag | reject
    margin: float = 0.1  # of the reference's range, beyond each extreme


@dataclass(frozen=True)
class RolloutPolicy:
    """One model's rollout policy, as parsed by :func:`parse_rollout_policy`."""

    mode: Mode = Mode.ENFORCE
    require_approval: bool = False
    canary: CanaryPolicy = field(default_factory=CanaryPolicy)
    gates: Gates = field(default_factory=Gates)
    challenger: ChallengerPolicy = field(default_factory=ChallengerPolicy)
    feedback: FeedbackPolicy = field(default_factory=FeedbackPolicy)
    start: StartPolicy = field(default_factory=StartPolicy)
    contract: ContractPolicy = field(default_factory=ContractPolicy)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for audit events and ``policy show --json``)."""
        return {
            "mode": self.mode.value,
            "require_approval": self.require_approval,
            "canary": {**vars(self.canary), "steps": list(self.canary.steps)},
            "gates": self.gates.to_dict(),
            "challenger": dict(vars(self.challenger)),
            "feedback": dict(vars(self.feedback)),
            "start": dict(vars(self.start)),
            "contract": dict(vars(self.contract)),
        }


# -- parsing ---------------------------------------------------------------------------------


def _canary(doc: Mapping[str, Any]) -> CanaryPolicy:
    t = check.table(doc, "canary", {f.name for f in fields(CanaryPolicy)})
    d = CanaryPolicy()
    steps = t.get("steps", list(d.steps))
    if not isinstance(steps, list) or not steps:
        raise RolloutPolicyError("canary.steps: expected a non-empty list of percentages")
    parsed = tuple(check.number("canary.steps", s, lo=0.0, hi=100.0) for s in steps)
    if any(s <= 0 or s >= 100 for s in parsed) or list(parsed) != sorted(set(parsed)):
        raise RolloutPolicyError(
            "canary.steps: percentages must be strictly ascending, in (0, 100)"
        )
    interval = check.number("canary.interval_s", t.get("interval_s", d.interval_s), lo=0.01)
    return CanaryPolicy(
        steps=parsed,
        interval_s=interval,
        min_requests=check.count("canary.min_requests", t.get("min_requests", d.min_requests)),
        min_labels=check.count("canary.min_labels", t.get("min_labels", d.min_labels)),
    )


def _gates(doc: Mapping[str, Any]) -> Gates:
    return Gates.parse(check.table(doc, "gates", Gates.keys()))


def _challenger(doc: Mapping[str, Any]) -> ChallengerPolicy:
    t = check.table(doc, "challenger", {f.name for f in fields(ChallengerPolicy)})
    d = ChallengerPolicy()
    alpha = check.number("challenger.alpha", t.get("alpha", d.alpha), lo=1e-9, hi=0.5)
    return ChallengerPolicy(
        alpha=alpha,
        tau=check.number("challenger.tau", t.get("tau", d.tau), lo=1e-9),
        min_labels=check.count("challenger.min_labels", t.get("min_labels", d.min_labels)),
    )


def _feedback(doc: Mapping[str, Any]) -> FeedbackPolicy:
    t = check.table(doc, "feedback", {f.name for f in fields(FeedbackPolicy)})
    d = FeedbackPolicy()
    task = check.text("feedback.task", t.get("task", d.task))
    if task not in ("classification", "regression"):
        raise RolloutPolicyError(
            f"feedback.task: expected classification or regression, got {task!r}"
        )
    positive = t.get("positive", d.positive)
    if isinstance(positive, int) and not isinstance(positive, bool):
        positive = str(positive)  # `positive = 1` means the class "1"
    policy = FeedbackPolicy(
        task=task,
        output=check.text("feedback.output", t.get("output", d.output)),
        positive=check.text("feedback.positive", positive),
        threshold=check.number("feedback.threshold", t.get("threshold", d.threshold), lo=-math.inf),
        segment_param=check.text("feedback.segment_param", t.get("segment_param", d.segment_param)),
        segment_feature=check.text(
            "feedback.segment_feature", t.get("segment_feature", d.segment_feature)
        ),
    )
    try:
        policy.segment_column  # noqa: B018 - validates "name:column"
    except ValueError:
        raise RolloutPolicyError(
            "feedback.segment_feature: expected INPUT or INPUT:COLUMN, "
            f"got {policy.segment_feature!r}"
        ) from None
    return policy


def _start(doc: Mapping[str, Any]) -> StartPolicy:
    t = check.table(doc, "start", {f.name for f in fields(StartPolicy)})
    on = check.text("start.on", t.get("on", ""))
    strategy = check.text("start.strategy", t.get("strategy", "canary"))
    if on not in START_ON:
        raise RolloutPolicyError(f"start.on: expected validated or approved, got {on!r}")
    if strategy not in STRATEGIES:
        raise RolloutPolicyError(
            f"start.strategy: expected one of {list(STRATEGIES)}, got {strategy!r}"
        )
    return StartPolicy(on=on, strategy=strategy)


def _contract(doc: Mapping[str, Any]) -> ContractPolicy:
    t = check.table(doc, "contract", {f.name for f in fields(ContractPolicy)})
    mode = check.text("contract.mode", t.get("mode", "off"))
    if mode not in ("off", "count", "flag", "reject"):
        raise RolloutPolicyError(
            f"contract.mode: expected off, count, flag or reject, got {mode!r}"
        )
    margin = check.number("contract.margin", t.get("margin", ContractPolicy.margin), lo=0.0)
    return ContractPolicy(mode=mode, margin=margin)


EMPTY_POLICY = (
    "the policy document is empty; it would replace the policy in force with every "
    'default (mode = "enforce", steps 5/10/25/50). Write the keys you mean, e.g. '
    'mode = "enforce"'
)


def policy_to_set(text: str) -> RolloutPolicy:
    """:func:`parse_rollout_policy` for a document an operator sets: an empty one (no
    keys, comments only) is refused rather than read as every default.

    NOTE: stored policies are still read with :func:`parse_rollout_policy`, where empty
    means the defaults, so a policy stored before this rule keeps working.
    """
    policy = parse_rollout_policy(text)
    if not tomllib.loads(text):
        raise RolloutPolicyError(EMPTY_POLICY)
    return policy


def parse_rollout_policy(text: str) -> RolloutPolicy:
    """Parse and validate a TOML policy; raise :class:`RolloutPolicyError` naming what is wrong."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RolloutPolicyError(f"not valid TOML: {exc}") from exc
    top = {"mode", "require_approval", "canary", "gates", "challenger", "feedback", "start"}
    top.add("contract")
    unknown = sorted(set(doc) - top)
    if unknown:
        raise RolloutPolicyError(f"unknown key(s) {', '.join(unknown)}; expected {sorted(top)}")
    mode = check.text("mode", doc.get("mode", Mode.ENFORCE.value))
    try:
        parsed_mode = Mode(mode)
    except ValueError:
        raise RolloutPolicyError(
            f"mode: expected one of {[m.value for m in Mode]}, got {mode!r}"
        ) from None
    return RolloutPolicy(
        mode=parsed_mode,
        require_approval=check.flag("require_approval", doc.get("require_approval", False)),
        canary=_canary(doc),
        gates=_gates(doc),
        challenger=_challenger(doc),
        feedback=_feedback(doc),
        start=_start(doc),
        contract=_contract(doc),
    )
