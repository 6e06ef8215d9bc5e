"""The governor's gates: each policy threshold evaluated on a candidate's evidence.

A gate reports its value against its threshold and passes, fails, or stays pending when
the evidence is not there yet (too few requests or labels, no monitor): pending neither
passes nor fails. The quality gate is noise-aware: it fails only when the always-valid
confidence sequence of (candidate - champion) lies wholly below ``-max_quality_drop``.
Pure: no grpc, no SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from gateway.governor.evidence import Evidence, VersionSnapshot
from gateway.governor.feedback import disparate_impact
from gateway.governor.rollout import Gates, RolloutPolicy
from gateway.governor.sequential import SequentialResult, compare

__all__ = ["GateResult", "GateStatus", "evaluate_gates"]


class GateStatus(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    PENDING = "pending"


@dataclass(frozen=True)
class GateResult:
    name: str
    version: str
    status: GateStatus
    value: float | None
    threshold: float
    op: str  # "<=" or ">=": the relation that passes
    hard: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**vars(self), "status": self.status.value}

    def describe(self) -> str:
        shown = "n/a" if self.value is None else f"{self.value:.4g}"
        bad = {"<=": ">", ">=": "<"}[self.op] if self.status is GateStatus.FAIL else self.op
        kind = "hard" if self.hard else "soft"
        return f"{self.name} {shown} {bad} {self.threshold:.4g} ({kind}, {self.status.value})"


def evaluate_gates(
    policy: RolloutPolicy, cand: VersionSnapshot, champ: VersionSnapshot | None
) -> tuple[tuple[GateResult, ...], SequentialResult | None]:
    g, task = policy.gates, policy.feedback.task
    out: list[GateResult] = []

    def add(name: str, value: float | None, threshold: float, op: str, detail: str = "") -> None:
        if value is None:
            status = GateStatus.PENDING
        elif (value <= threshold) if op == "<=" else (value >= threshold):
            status = GateStatus.PASS
        else:
            status = GateStatus.FAIL
        out.append(
            GateResult(name, cand.version, status, value, threshold, op, name in g.hard, detail)
        )

    ev, hev = cand.evidence, champ.evidence if champ is not None else Evidence()
    t, ht = ev.traffic, hev.traffic
    t_ok = t is not None and t.requests >= g.min_requests
    ht_ok = ht is not None and ht.requests >= g.min_requests
    if g.max_error_rate is not None:
        rate = t.error_rate if t is not None and t_ok else None
        add("error_rate", rate, g.max_error_rate, "<=", f"{t.requests if t else 0} requests")
    if g.max_error_rate_delta is not None:
        delta = None
        if t is not None and ht is not None and t_ok and ht_ok:
            delta = (t.error_rate or 0.0) - (ht.error_rate or 0.0)
        add("error_rate_delta", delta, g.max_error_rate_delta, "<=", "candidate - champion")
    if g.max_p99_ratio is not None:
        ratio = None
        if t is not None and ht is not None and t_ok and ht_ok:
            p, hp = t.quantile(0.99), ht.quantile(0.99)
            if p is not None and hp is not None:
                ratio = p / max(hp, 1e-6)
        add("p99_ratio", ratio, g.max_p99_ratio, "<=", "candidate p99 / champion p99")
    if g.max_drifted_features is not None:
        d = ev.drift
        add(
            "input_drift",
            None if d is None else float(len(d.input_features)),
            float(g.max_drifted_features),
            "<=",
            "" if d is None else ",".join(d.input_features[:10]),
        )
    if g.output_drift:
        d = ev.drift
        add("output_drift", None if d is None else float(d.output_drifted), 0.0, "<=")
    if g.min_shadow_agreement is not None:
        s = ev.shadow
        agree = s.agreement if s is not None and s.compared >= g.min_requests else None
        add("shadow_agreement", agree, g.min_shadow_agreement, ">=")
    test = None
    q, hq = ev.quality, hev.quality
    if q is not None and hq is not None:
        test = compare(
            hq.sample(task),
            q.sample(task),
            tau=policy.challenger.tau,
            alpha=policy.challenger.alpha,
            proportions=task == "classification",
        )
    if g.max_quality_drop is not None:
        value = None
        if q is not None and hq is not None and test is not None:
            if min(q.labelled, hq.labelled) >= g.min_labels:
                value = test.ci_high
        detail = "" if test is None else f"candidate - champion {test.delta:+.4g}, upper bound"
        add("quality", value, -g.max_quality_drop, ">=", detail)
    segments = q.segments if q is not None else {}
    if g.min_disparate_impact is not None:
        rates: dict[str, float] = {}
        for name, c in segments.items():
            if c.predictions >= g.min_segment_count and c.positive_rate is not None:
                rates[name] = c.positive_rate
        detail = ", ".join(f"{s}={r:.3f}" for s, r in sorted(rates.items()))
        add("disparate_impact", disparate_impact(rates), g.min_disparate_impact, ">=", detail)
    if g.min_tpr_ratio is not None:
        tprs: dict[str, float] = {}
        for name, c in segments.items():
            if c.actual_positives >= g.min_segment_count and c.tpr is not None:
                tprs[name] = c.tpr
        detail = ", ".join(f"{s}={r:.3f}" for s, r in sorted(tprs.items()))
        add("tpr_ratio", disparate_impact(tprs), g.min_tpr_ratio, ">=", detail)
    if g.min_importance_correlation is not None:
        imp, himp = ev.importance, hev.importance
        rho, detail = None, ""
        if imp is not None and himp is not None:
            if min(imp.rows, himp.rows) >= g.min_importance_rows:
                rho = imp.rank_correlation(himp)
            detail = f"top feature {himp.top} -> {imp.top}"
            if imp.top != himp.top:
                detail += " (changed)"
        add("importance_drift", rho, g.min_importance_correlation, ">=", detail)
    _estimate_gates(g, ev, hev, add)
    return tuple(out), test


def _estimate_gates(
    g: Gates, ev: Evidence, hev: Evidence, add: Callable[[str, float | None, float, str, str], None]
) -> None:
    """Label-free accuracy gates (CBPE): judged on the 95 % interval's upper bound, so an
    estimate fails a candidate only when it is clearly below the bar, not by noise."""
    e, he = ev.estimated, hev.estimated
    e_ok = e is not None and e.rows >= g.min_requests
    if g.min_estimated_accuracy is not None:
        value, detail = None, ""
        if e is not None and e_ok and e.accuracy is not None:
            value = min(e.accuracy + e.half_width, 1.0)
            detail = f"estimated (no labels) {e.accuracy:.4f} +- {e.half_width:.4f}, upper bound"
        add("estimated_accuracy", value, g.min_estimated_accuracy, ">=", detail)
    if g.max_estimated_drop is not None:
        value, detail = None, ""
        ok = he is not None and he.rows >= g.min_requests
        if e is not None and he is not None and e_ok and ok:
            a, ha = e.accuracy or 0.0, he.accuracy or 0.0
            half = (e.half_width**2 + he.half_width**2) ** 0.5
            value = a - ha + half
            detail = f"estimated (no labels) candidate - champion {a - ha:+.4f}, upper bound"
        add("estimated_drop", value, -g.max_estimated_drop, ">=", detail)
