"""The governor's gates: each policy threshold evaluated on a candidate's evidence.

A gate reports its value against its threshold and passes, fails, or stays pending when
the evidence is not there yet (too few requests or labels, no monitor): pending neither
passes nor fails. The quality gate is noise-aware: it fails only when the always-valid
confidence sequence of (candidate - champion) lies wholly below ``-max_quality_drop``.

Every gate is one :class:`Gate` in :data:`GATES`: its name, its policy key (a
:class:`~gateway.governor.policy_checks.Param`: bounds and default), any further keys it
reads, the relation that passes and ``measure``. The policy's ``[gates]`` table
(:class:`Gates`, parsed by :mod:`gateway.governor.rollout`) and :func:`evaluate_gates`
both read :data:`GATES`, so a gate over evidence the governor already has is one entry
here. Pure: no grpc, no SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.governor.evidence import Evidence, VersionSnapshot
from gateway.governor.gate_result import GateResult, GateStatus
from gateway.governor.policy_checks import Param, RolloutPolicyError, count
from gateway.governor.sequential import SequentialResult, compare

__all__ = [
    "GATES",
    "GATE_NAMES",
    "Gate",
    "GateInput",
    "GateResult",
    "GateStatus",
    "Gates",
    "PolicyView",
    "disparate_impact",
    "evaluate_gates",
]


@dataclass(frozen=True)
class GateInput:
    """What a gate measures: the candidate's and the champion's evidence, the policy's
    ``[gates]`` values, the task, and the sequential test of their quality (if labels)."""

    version: str
    cand: Evidence
    champ: Evidence
    gates: Gates
    task: str
    test: SequentialResult | None

    def traffic_ok(self, ev: Evidence) -> bool:
        return ev.traffic is not None and ev.traffic.requests >= self.gates.min_requests


# measure(input, threshold) -> (value or None while pending, threshold shown, detail)
Measure = Callable[[GateInput, Any], tuple[float | None, float, str]]


@dataclass(frozen=True)
class Gate:
    """One gate: on while its ``key`` is set (not ``None``/``false``)."""

    name: str
    key: Param
    op: str  # "<=" or ">=": the relation that passes
    measure: Measure
    params: tuple[Param, ...] = ()  # further [gates] keys only this gate reads


def disparate_impact(rates: Mapping[str, float]) -> float | None:
    """min/max of the segments' positive rates (1.0 when every rate is 0)."""
    if len(rates) < 2:
        return None
    top = max(rates.values())
    return 1.0 if top == 0 else min(rates.values()) / top


# -- the gates ---------------------------------------------------------------------------------


def _error_rate(i: GateInput, limit: float) -> tuple[float | None, float, str]:
    t = i.cand.traffic
    rate = t.error_rate if t is not None and i.traffic_ok(i.cand) else None
    return rate, limit, f"{t.requests if t else 0} requests"


def _error_rate_delta(i: GateInput, limit: float) -> tuple[float | None, float, str]:
    t, ht, delta = i.cand.traffic, i.champ.traffic, None
    if t is not None and ht is not None and i.traffic_ok(i.cand) and i.traffic_ok(i.champ):
        delta = (t.error_rate or 0.0) - (ht.error_rate or 0.0)
    return delta, limit, "candidate - champion"


def _p99_ratio(i: GateInput, limit: float) -> tuple[float | None, float, str]:
    t, ht, ratio = i.cand.traffic, i.champ.traffic, None
    if t is not None and ht is not None and i.traffic_ok(i.cand) and i.traffic_ok(i.champ):
        p, hp = t.quantile(0.99), ht.quantile(0.99)
        if p is not None and hp is not None:
            ratio = p / max(hp, 1e-6)
    return ratio, limit, "candidate p99 / champion p99"


def _input_drift(i: GateInput, most: int) -> tuple[float | None, float, str]:
    d = i.cand.drift
    if d is None:
        return None, float(most), ""
    return float(len(d.input_features)), float(most), ",".join(d.input_features[:10])


def _output_drift(i: GateInput, _on: bool) -> tuple[float | None, float, str]:
    d = i.cand.drift
    return (None if d is None else float(d.output_drifted)), 0.0, ""


def _shadow_agreement(i: GateInput, floor: float) -> tuple[float | None, float, str]:
    s = i.cand.shadow
    agree = s.agreement if s is not None and s.compared >= i.gates.min_requests else None
    return agree, floor, ""


def _quality(i: GateInput, drop: float) -> tuple[float | None, float, str]:
    q, hq, test, value = i.cand.quality, i.champ.quality, i.test, None
    if q is not None and hq is not None and test is not None:
        if min(q.labelled, hq.labelled) >= i.gates.min_labels:
            value = test.ci_high
    detail = "" if test is None else f"candidate - champion {test.delta:+.4g}, upper bound"
    return value, -drop, detail


def _segment_ratio(rate: Callable[[Any], float | None], size: Callable[[Any], int]) -> Measure:
    def measure(i: GateInput, floor: float) -> tuple[float | None, float, str]:
        segments = i.cand.quality.segments if i.cand.quality is not None else {}
        rates: dict[str, float] = {}
        for name, c in segments.items():
            r = rate(c)
            if size(c) >= i.gates.min_segment_count and r is not None:
                rates[name] = r
        detail = ", ".join(f"{s}={r:.3f}" for s, r in sorted(rates.items()))
        return disparate_impact(rates), floor, detail

    return measure


def _importance_drift(i: GateInput, floor: float) -> tuple[float | None, float, str]:
    imp, himp = i.cand.importance, i.champ.importance
    rho, detail = None, ""
    if imp is not None and himp is not None:
        if min(imp.rows, himp.rows) >= i.gates.min_importance_rows:
            rho = imp.rank_correlation(himp)
        detail = f"top feature {himp.top} -> {imp.top}"
        if imp.top != himp.top:
            detail += " (changed)"
    return rho, floor, detail


# Label-free (CBPE) gates judge the 95 % interval's upper bound: an estimate fails a
# candidate only when it is clearly below the bar, not by noise.
def _est_accuracy(i: GateInput, floor: float) -> tuple[float | None, float, str]:
    e, value, detail = i.cand.estimated, None, ""
    if e is not None and e.rows >= i.gates.min_requests and e.accuracy is not None:
        value = min(e.accuracy + e.half_width, 1.0)
        detail = f"estimated (no labels) {e.accuracy:.4f} +- {e.half_width:.4f}, upper bound"
    return value, floor, detail


def _est_drop(i: GateInput, drop: float) -> tuple[float | None, float, str]:
    e, he, value, detail = i.cand.estimated, i.champ.estimated, None, ""
    if e is not None and he is not None and min(e.rows, he.rows) >= i.gates.min_requests:
        a, ha = e.accuracy or 0.0, he.accuracy or 0.0
        half = (e.half_width**2 + he.half_width**2) ** 0.5
        value = a - ha + half
        detail = f"estimated (no labels) candidate - champion {a - ha:+.4f}, upper bound"
    return value, -drop, detail


def _contract(i: GateInput, limit: float) -> tuple[float | None, float, str]:
    c = i.cand.contracts
    if c is None or c.rows < i.gates.min_requests:
        return None, limit, ""
    worst = "".join(f", {k} {n}" for k, n in sorted(c.features.items(), key=lambda f: -f[1])[:3])
    return c.violation_rate, limit, f"{c.violating} of {c.rows} rows outside the contract{worst}"


GATES: tuple[Gate, ...] = (
    Gate("error_rate", Param("max_error_rate", 0.02, hi=1.0), "<=", _error_rate),
    Gate("error_rate_delta", Param("max_error_rate_delta", 0.01, hi=1.0), "<=", _error_rate_delta),
    Gate("p99_ratio", Param("max_p99_ratio", 1.5), "<=", _p99_ratio),
    Gate("input_drift", Param("max_drifted_features", 0, "count_or_off"), "<=", _input_drift),
    Gate("output_drift", Param("output_drift", True, "flag"), "<=", _output_drift),
    Gate("shadow_agreement", Param("min_shadow_agreement", None, hi=1.0), ">=", _shadow_agreement),
    Gate("quality", Param("max_quality_drop", 0.02), ">=", _quality),
    Gate(
        "disparate_impact",
        Param("min_disparate_impact", 0.8, hi=1.0),
        ">=",
        _segment_ratio(lambda c: c.positive_rate, lambda c: c.predictions),
    ),
    Gate(
        "tpr_ratio",
        Param("min_tpr_ratio", None, hi=1.0),
        ">=",
        _segment_ratio(lambda c: c.tpr, lambda c: c.actual_positives),
    ),
    Gate(
        "importance_drift",
        # Spearman correlation of candidate vs champion importances (gateway.explain); off.
        Param("min_importance_correlation", None, lo=-1.0, hi=1.0),
        ">=",
        _importance_drift,
        # sampled rows each side before importance is judged
        params=(Param("min_importance_rows", 50, "count"),),
    ),
    # Label-free (CBPE) accuracy estimates (gateway.monitoring.performance); off.
    Gate("estimated_accuracy", Param("min_estimated_accuracy", None, hi=1.0), ">=", _est_accuracy),
    Gate("estimated_drop", Param("max_estimated_drop", None, hi=1.0), ">=", _est_drop),
    # Share of rows outside the data contract since the candidate appeared; off.
    Gate(
        "contract_violation_rate",
        Param("max_contract_violation_rate", None, hi=1.0),
        "<=",
        _contract,
    ),
)
GATE_NAMES = tuple(g.name for g in GATES)

# Keys every gate shares, after the gates' own.
_SHARED = (
    Param("min_requests", 20, "count"),
    Param("min_labels", 30, "count"),
    Param("min_segment_count", 30, "count"),
)
_PARAMS = (*(p for g in GATES for p in (g.key, *g.params)), *_SHARED)
_DEFAULT_HARD = frozenset({"error_rate", "error_rate_delta", "output_drift"})


# -- the policy's [gates] table ----------------------------------------------------------------


@dataclass(frozen=True, init=False, eq=False, repr=False)
class Gates:
    """The policy's ``[gates]`` values: every gate's keys (``None`` switches a gate off),
    the shared minimums, which gates are ``hard`` and ``soft_failures``. Keys read as
    attributes (``gates.max_error_rate``); construct with keywords, unset keys default;
    ``dataclasses.replace(gates, max_error_rate=0.5)`` works as on the other sections."""

    values: Mapping[str, Any]
    hard: frozenset[str]
    soft_failures: int

    def __init__(
        self,
        *,
        values: Mapping[str, Any] | None = None,
        hard: frozenset[str] = _DEFAULT_HARD,
        soft_failures: int = 3,
        **keys: Any,
    ) -> None:
        unknown = sorted(set(keys) - {p.key for p in _PARAMS})
        if unknown:
            raise TypeError(f"Gates: unknown key(s) {unknown}")
        base = {p.key: p.default for p in _PARAMS} if values is None else dict(values)
        object.__setattr__(self, "values", {**base, **keys})
        object.__setattr__(self, "hard", frozenset(hard))
        object.__setattr__(self, "soft_failures", soft_failures)

    def __getattr__(self, key: str) -> Any:
        if key == "values":  # not yet set (copy, pickle): no recursion
            raise AttributeError(key)
        try:
            return self.values[key]
        except KeyError:
            raise AttributeError(key) from None

    @property
    def min_requests(self) -> int:
        return int(self.values["min_requests"])

    @property
    def min_labels(self) -> int:
        return int(self.values["min_labels"])

    @property
    def min_segment_count(self) -> int:
        return int(self.values["min_segment_count"])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Gates):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((tuple(self.values.items()), self.hard, self.soft_failures))

    def __repr__(self) -> str:
        return f"Gates({', '.join(f'{k}={v!r}' for k, v in self.to_dict().items())})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every key in table order, ``hard`` sorted."""
        return {**self.values, "hard": sorted(self.hard), "soft_failures": self.soft_failures}

    @classmethod
    def parse(cls, found: Mapping[str, Any]) -> Gates:
        """The ``[gates]`` table of a policy document (keys already known to be allowed)."""
        hard = found.get("hard", sorted(_DEFAULT_HARD))
        if not isinstance(hard, list) or not all(isinstance(h, str) for h in hard):
            raise RolloutPolicyError("gates.hard: expected a list of gate names")
        unknown = sorted(set(hard) - set(GATE_NAMES))
        if unknown:
            raise RolloutPolicyError(
                f"gates.hard: unknown gate(s) {unknown}; gates: {list(GATE_NAMES)}"
            )
        soft = count("gates.soft_failures", found.get("soft_failures", 3))
        if soft < 1:
            raise RolloutPolicyError("gates.soft_failures: must be >= 1")
        values = {p.key: p.read(found) for p in _PARAMS}
        return cls(values=values, hard=frozenset(hard), soft_failures=soft)

    @staticmethod
    def keys() -> set[str]:
        """Every key the ``[gates]`` table accepts."""
        return {p.key for p in _PARAMS} | {"hard", "soft_failures"}


# -- evaluation --------------------------------------------------------------------------------


class _Feedback(Protocol):
    @property
    def task(self) -> str: ...


class _Challenger(Protocol):
    @property
    def tau(self) -> float: ...

    @property
    def alpha(self) -> float: ...


class PolicyView(Protocol):
    """What evaluation reads of a :class:`~gateway.governor.rollout.RolloutPolicy`."""

    @property
    def gates(self) -> Gates: ...

    @property
    def feedback(self) -> _Feedback: ...

    @property
    def challenger(self) -> _Challenger: ...


def evaluate_gates(
    policy: PolicyView, cand: VersionSnapshot, champ: VersionSnapshot | None
) -> tuple[tuple[GateResult, ...], SequentialResult | None]:
    """Every enabled gate of :data:`GATES` on ``cand`` (against ``champ``), and the
    sequential test of their quality (``None`` without labels on both sides)."""
    g, task = policy.gates, policy.feedback.task
    ev, hev = cand.evidence, champ.evidence if champ is not None else Evidence()
    test = None
    if ev.quality is not None and hev.quality is not None:
        test = compare(
            hev.quality.sample(task),
            ev.quality.sample(task),
            tau=policy.challenger.tau,
            alpha=policy.challenger.alpha,
            proportions=task == "classification",
        )
    inp = GateInput(cand.version, ev, hev, g, task, test)
    out: list[GateResult] = []
    for gate in GATES:
        setting = getattr(g, gate.key.key)
        if setting is None or setting is False:
            continue
        value, threshold, detail = gate.measure(inp, setting)
        if value is None:
            status = GateStatus.PENDING
        elif (value <= threshold) if gate.op == "<=" else (value >= threshold):
            status = GateStatus.PASS
        else:
            status = GateStatus.FAIL
        hard = gate.name in g.hard
        out.append(
            GateResult(gate.name, cand.version, status, value, threshold, gate.op, hard, detail)
        )
    return tuple(out), test
