"""The governor's pure core: evidence snapshots, its state, and ``decide``.

``decide(policy, snapshot, state) -> Decision`` looks at one model at one moment and says
what to do with its candidate (the canary, else the challenger, that has traffic):

* every enabled gate is evaluated on the candidate (against the champion where the gate
  is relative) and reported as value vs threshold: pass, fail, or pending (not enough
  evidence yet, which neither passes nor fails);
* a failed **hard** gate rolls back at once; failed **soft** gates roll back after
  ``soft_failures`` consecutive failing evaluations and hold before that;
* a **canary** whose gates pass and whose step has enough requests (and labels) advances
  to the next step of the schedule; after the last step it is promoted;
* a **challenger** is promoted when the always-valid sequential test
  (:mod:`gateway.governor.sequential`) finds it better than the champion on delayed labels at the
  policy's error level; an equal one is held for ever;
* with ``require_approval`` the final promotion waits (``await_approval``) until the
  version is approved; a version once rolled back is never advanced or promoted again by
  the governor; ``paused`` evaluates nothing.

The state carries what decisions depend on across evaluations (step, consecutive soft
failures, the running always-valid p-value, versions rolled back). In ``dry-run`` mode the
step advances in the state only, so a dry run records the decisions enforcement would
have made; a final decision is recorded once (``decided``) and then held.

Evidence counts (requests, labels, ...) are cumulative; the loop subtracts a baseline to
window them (:meth:`Evidence.minus`). Pure: no grpc, no SQLAlchemy, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from gateway.governor.evidence import (
    CANARY,
    Drift,
    Evidence,
    Quality,
    SegmentCounts,
    ShadowAgreement,
    Snapshot,
    Traffic,
    VersionSnapshot,
    candidate_of,
)
from gateway.governor.gates import GateResult, GateStatus, evaluate_gates
from gateway.governor.rollout import Mode, RolloutPolicy
from gateway.governor.sequential import SequentialResult, always_valid_p

__all__ = [
    "Decision",
    "DecisionKind",
    "Drift",
    "Evidence",
    "GateResult",
    "GateStatus",
    "GovernorState",
    "Quality",
    "SegmentCounts",
    "ShadowAgreement",
    "Snapshot",
    "Traffic",
    "VersionSnapshot",
    "candidate_of",
    "decide",
]


_WEIGHT_SLACK = 0.5  # percentage points: a weight this close to a step is on that step


class DecisionKind(StrEnum):
    HOLD = "hold"
    ADVANCE = "advance"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    AWAIT_APPROVAL = "await_approval"


# -- state and decision ----------------------------------------------------------------------


@dataclass(frozen=True)
class GovernorState:
    """What decisions remember between evaluations of one model."""

    candidate: str | None = None
    step: int = -1  # index into the canary steps; -1: below the first step
    consecutive_failures: int = 0
    rolled_back: frozenset[str] = frozenset()
    decided: str | None = None  # dry-run: candidate whose final decision was recorded
    p_value: float = 1.0  # running always-valid p-value, candidate better than champion
    last_decision: str = ""
    evaluations: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = dict(vars(self))
        d["rolled_back"] = sorted(self.rolled_back)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GovernorState:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        known["rolled_back"] = frozenset(known.get("rolled_back", ()))
        return cls(**known)


@dataclass(frozen=True)
class Decision:
    kind: DecisionKind
    model: str
    revision: int
    mode: Mode
    candidate: str | None
    state: GovernorState
    weights: Mapping[str, float] | None = None  # ADVANCE: every arm's new weight (percent)
    gates: tuple[GateResult, ...] = ()
    reasons: tuple[str, ...] = ()
    figures: Mapping[str, Any] = field(default_factory=dict)
    test: SequentialResult | None = None

    def summary(self) -> str:
        who = f" {self.candidate}" if self.candidate else ""
        return f"governor {self.kind.value}{who}: " + "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: what the audit event records."""
        return {
            "kind": self.kind.value,
            "model": self.model,
            "revision": self.revision,
            "mode": self.mode.value,
            "candidate": self.candidate,
            "weights": None if self.weights is None else dict(self.weights),
            "gates": [g.to_dict() for g in self.gates],
            "reasons": list(self.reasons),
            "figures": dict(self.figures),
            "test": None if self.test is None else self.test.to_dict(),
            "state": self.state.to_dict(),
            # Whether a label-free estimate (CBPE) was judged: such a decision says so.
            "used_estimate": any(
                g.name.startswith("estimated_") and g.status is not GateStatus.PENDING
                for g in self.gates
            ),
        }


def _figures(snapshot: Snapshot, task: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for v in snapshot.versions.values():
        e = v.evidence
        f: dict[str, Any] = {"role": v.role, "weight": round(v.weight, 4)}
        if e.traffic is not None:
            f.update(requests=e.traffic.requests, errors=e.traffic.errors)
            f["p99_s"] = e.traffic.quantile(0.99)
        if e.quality is not None:
            f.update(labelled=e.quality.labelled, quality=e.quality.score(task))
            f["segments"] = {
                s: {"predictions": c.predictions, "positive_rate": c.positive_rate}
                for s, c in sorted(e.quality.segments.items())
            }
        if e.drift is not None:
            f["drifted_inputs"] = list(e.drift.input_features)
            f["output_drifted"] = e.drift.output_drifted
        if e.shadow is not None:
            f["shadow_agreement"] = e.shadow.agreement
        if e.estimated is not None:  # beside the realised quality once labels joined
            f["estimated_accuracy"] = e.estimated.accuracy
            f["estimated_half_width"] = e.estimated.half_width
        out[v.version] = f
    return out


# -- decide ----------------------------------------------------------------------------------


def _step_for(steps: tuple[float, ...], weight: float) -> int:
    """The highest step the weight has reached; -1 below the first."""
    return max((i for i, s in enumerate(steps) if weight + _WEIGHT_SLACK >= s), default=-1)


def _advanced_weights(snapshot: Snapshot, cand: str, percent: float) -> dict[str, float]:
    """``cand`` at ``percent``; every other arm shares the rest as its weights did."""
    others = {v.version: v.weight for v in snapshot.versions.values() if v.role != "shadow"}
    others.pop(cand, None)
    total = sum(others.values())
    rest = 100.0 - percent
    if total <= 0:
        champion = snapshot.champion
        others = {champion.version: 1.0} if champion is not None else {}
        total = 1.0
    weights = {v: round(rest * w / total, 6) for v, w in others.items()}
    weights[cand] = percent
    return weights


def decide(policy: RolloutPolicy, snapshot: Snapshot, state: GovernorState) -> Decision:
    """What to do with the model's candidate now (see the module docstring)."""
    mode, task = policy.mode, policy.feedback.task

    def made(kind: DecisionKind, new: GovernorState, *reasons: str, **kw: Any) -> Decision:
        new = replace(new, last_decision=kind.value)
        figures = _figures(snapshot, task)
        return Decision(
            kind,
            snapshot.model,
            snapshot.revision,
            mode,
            cand,
            new,
            reasons=reasons,
            figures=figures,
            **kw,
        )

    cand = candidate_of(snapshot) if mode is not Mode.PAUSED else state.candidate
    if mode is Mode.PAUSED:
        return made(DecisionKind.HOLD, state, "paused: nothing is evaluated")
    if cand is None:
        fresh = GovernorState(rolled_back=state.rolled_back, evaluations=state.evaluations + 1)
        return made(DecisionKind.HOLD, fresh, "no canary or challenger with traffic")
    cv = snapshot.versions[cand]
    steps = policy.canary.steps
    if cand != state.candidate:
        step = _step_for(steps, cv.weight) if cv.role == CANARY else -1
        state = GovernorState(
            candidate=cand, step=step, rolled_back=state.rolled_back, evaluations=state.evaluations
        )
    elif mode is Mode.ENFORCE and cv.role == CANARY:
        # An operator moved the weight: continue from the step it is on now.
        on_step = (
            state.step >= 0
            and abs(cv.weight - steps[min(state.step, len(steps) - 1)]) <= _WEIGHT_SLACK
        )
        if not on_step and _step_for(steps, cv.weight) != state.step:
            state = replace(state, step=_step_for(steps, cv.weight), consecutive_failures=0)
    state = replace(state, evaluations=state.evaluations + 1)
    if cand in state.rolled_back:
        return made(
            DecisionKind.HOLD,
            state,
            f"{cand} was rolled back; the governor will not promote it again",
        )
    if state.decided == cand:
        return made(
            DecisionKind.HOLD, state, f"dry-run: the final decision on {cand} is already recorded"
        )

    gates, test = evaluate_gates(policy, cv, snapshot.champion)
    q = cv.evidence.quality
    labels = q.labelled if q is not None else 0
    champ = snapshot.champion
    champ_q = champ.evidence.quality if champ is not None else None
    champ_labels = champ_q.labelled if champ_q is not None else 0
    ch = policy.challenger
    # One-sided: only looks where the candidate is ahead count towards "better" (a subset
    # of the two-sided rejections, so still at most alpha); tiny samples are skipped
    # because the plug-in variance is unreliable there.
    if test is not None and test.delta > 0 and min(labels, champ_labels) >= ch.min_labels:
        state = replace(state, p_value=always_valid_p(state.p_value, test))
    p = state.p_value
    kw: dict[str, Any] = {"gates": gates, "test": test}
    hard = [g for g in gates if g.status is GateStatus.FAIL and g.hard]
    soft = [g for g in gates if g.status is GateStatus.FAIL and not g.hard]

    def rollback(*reasons: str) -> Decision:
        new = replace(state, consecutive_failures=0)
        if mode is Mode.ENFORCE:
            new = replace(new, rolled_back=new.rolled_back | {cand})
        else:
            new = replace(new, decided=cand)
        return made(DecisionKind.ROLLBACK, new, *reasons, **kw)

    if hard:
        return rollback(*(f"hard gate failed: {g.describe()}" for g in hard))
    if soft:
        failures = state.consecutive_failures + 1
        reasons = [f"soft gate failed: {g.describe()}" for g in soft]
        limit = policy.gates.soft_failures
        if failures >= limit:
            return rollback(*reasons, f"{failures} consecutive failing evaluations (limit {limit})")
        state = replace(state, consecutive_failures=failures)
        return made(DecisionKind.HOLD, state, *reasons, f"failure {failures} of {limit}", **kw)
    state = replace(state, consecutive_failures=0)

    def final(*reasons: str) -> Decision:
        if policy.require_approval and cand not in snapshot.approved:
            return made(
                DecisionKind.AWAIT_APPROVAL,
                state,
                *reasons,
                f"waiting for approval of {cand}",
                **kw,
            )
        new = replace(state, decided=cand) if mode is not Mode.ENFORCE else state
        return made(DecisionKind.PROMOTE, new, *reasons, **kw)

    if cv.role == CANARY:
        t = cv.evidence.traffic
        requests = t.requests if t is not None else 0
        c = policy.canary
        at = "below the first step" if state.step < 0 else f"step {state.step + 1}/{len(steps)}"
        if requests < c.min_requests or labels < c.min_labels:
            need = f"{requests}/{c.min_requests} requests"
            if c.min_labels:  # "0/0 labels" said nothing when the policy asks for none
                need += f", {labels}/{c.min_labels} labels"
            return made(DecisionKind.HOLD, state, f"{at}: collecting evidence ({need})", **kw)
        if state.step + 1 < len(steps):
            nxt = state.step + 1
            weights = _advanced_weights(snapshot, cand, steps[nxt])
            reason = f"gates pass at {at} ({requests} requests); advance to {steps[nxt]:g}%"
            return made(
                DecisionKind.ADVANCE, replace(state, step=nxt), reason, weights=weights, **kw
            )
        return final(f"gates pass at the last step ({requests} requests): promote")
    if test is None or min(labels, champ_labels) < ch.min_labels:
        need = f"{ch.min_labels} each; challenger has {labels}, champion {champ_labels}"
        return made(DecisionKind.HOLD, state, f"challenger test waits for labels ({need})", **kw)
    if p <= ch.alpha:  # p only ever falls on looks where the challenger was ahead
        return final(
            f"challenger better: {test.delta:+.4g}, always-valid p {p:.3g} <= {ch.alpha:g}"
        )
    return made(
        DecisionKind.HOLD,
        state,
        f"challenger not shown better: {test.delta:+.4g}, p {p:.3g} > {ch.alpha:g}",
        **kw,
    )
