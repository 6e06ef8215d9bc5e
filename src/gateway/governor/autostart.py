"""Rollout by policy: which version the governor starts by itself, and which wait.

A rollout policy's ``[start]`` section (:class:`~gateway.governor.rollout.StartPolicy`)
names the status that starts a version (``validated``, or ``approved`` when governance asks
for approvals: four eyes still apply, as the registry gives ``approved`` only after them)
and the strategy:

=====================  =============================================================
canary                 the version becomes a canary at the policy's first step
challenger             the version becomes a challenger with that share of traffic
shadow-then-canary     the version first shadows all traffic; once it has been compared
                       on ``canary.min_requests`` requests and agrees at least
                       ``gates.min_shadow_agreement`` of the time (when set), it becomes
                       a canary at the first step
=====================  =============================================================

From there the governor ramps, promotes or rolls back as for any candidate. One candidate
at a time per model: while a canary or challenger has traffic (or a shadow is on trial),
other eligible versions wait in a queue, oldest first. Eligible means: registered after
the current champion (older versions went back to a resting status when they stopped
serving, and must not come back by themselves), in the configured status, and never rolled
back by the governor.

Pure: the plan is computed from values; :class:`gateway.governor.loop.Governor` applies it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gateway.governor.evidence import ShadowAgreement
from gateway.governor.rollout import RolloutPolicy
from registry.deployment import Arm, Deployment, Role, Shadow

__all__ = ["Start", "StartPlan", "eligible", "plan_start"]

_STATUSES = {"validated": ("validated", "approved"), "approved": ("approved",)}


@dataclass(frozen=True)
class Start:
    """A deployment change that starts (or advances from shadow) a rollout."""

    version: str
    arms: tuple[Arm, ...]
    shadows: tuple[Shadow, ...]
    reason: str


@dataclass(frozen=True)
class StartPlan:
    """What ``[start]`` says about a model now."""

    rule: str
    trial: str | None = None  # the version under trial (canary, challenger or shadow)
    trial_role: str = ""
    start: Start | None = None  # the change to make now, if any
    queue: tuple[str, ...] = ()  # eligible versions waiting, oldest first
    note: str = ""


def _newer(versions: Sequence[tuple[str, str]], champion: str | None) -> list[tuple[str, str]]:
    names = [v for v, _ in versions]
    return list(versions[names.index(champion) + 1 :] if champion in names else versions)


def eligible(
    versions: Sequence[tuple[str, str]], champion: str | None, on: str, excluded: frozenset[str]
) -> list[str]:
    """Versions (``(version, status)`` in registration order) the rule may start."""
    statuses = _STATUSES.get(on, ())
    newer = _newer(versions, champion)
    return [v for v, status in newer if status in statuses and v not in excluded]


def _with_arm(dep: Deployment, version: str, role: Role, percent: float) -> tuple[Arm, ...]:
    share = percent / 100.0
    total = sum(a.weight for a in dep.arms) or 1.0
    arms = [Arm(a.version, a.role, a.weight / total * (1.0 - share)) for a in dep.arms]
    return (*arms, Arm(version, role, share))


def plan_start(
    policy: RolloutPolicy,
    dep: Deployment,
    versions: Sequence[tuple[str, str]],
    rolled_back: frozenset[str],
    shadows: Mapping[str, ShadowAgreement] | None,
) -> StartPlan | None:
    """The plan for one model, or None when its policy starts nothing (``on = ""``).

    ``shadows`` is the shadow agreement evidence per version; None where it is not at hand
    (the CLI reads the registry only): a shadow on trial then never advances.
    """
    start = policy.start
    if not start.on:
        return None
    champion = dep.champion.version if dep.arms else None
    waiting = eligible(versions, champion, start.on, rolled_back)
    first = policy.canary.steps[0]
    rule = start.rule
    live = sorted(a.version for a in dep.arms if a.role is not Role.CHAMPION and a.weight > 0)
    if live:
        arm = dep.arm(live[0])
        role = arm.role.value if arm is not None else ""
        queue = tuple(v for v in waiting if v not in dep.versions())
        return StartPlan(rule, live[0], role, None, queue, f"{live[0]} is the {role} on trial")
    if start.strategy == "shadow-then-canary":
        newer = {v for v, _ in _newer(versions, champion)} - rolled_back
        trial = next((s for s in dep.shadows if s.version in newer), None)
        if trial is not None:
            queue = tuple(waiting)
            if shadows is None:
                return StartPlan(rule, trial.version, "shadow", None, queue, "shadowing")
            seen = shadows.get(trial.version, ShadowAgreement())
            need = policy.canary.min_requests
            floor = policy.gates.min_shadow_agreement
            agreement = seen.agreement
            if seen.compared < need or agreement is None:
                note = f"shadowing: {seen.compared}/{need} requests compared"
                return StartPlan(rule, trial.version, "shadow", None, queue, note)
            if floor is not None and agreement < floor:
                note = f"shadow agreement {agreement:.1%} < {floor:.1%}: held for an operator"
                return StartPlan(rule, trial.version, "shadow", None, queue, note)
            arms = _with_arm(dep, trial.version, Role.CANARY, first)
            rest = tuple(s for s in dep.shadows if s.version != trial.version)
            reason = (
                f"rollout policy {rule}: {trial.version} agreed on {agreement:.1%} of "
                f"{seen.compared} shadowed requests; canary at {first:g}%"
            )
            change = Start(trial.version, arms, rest, reason)
            return StartPlan(rule, trial.version, "shadow", change, queue, reason)
    if not waiting:
        return StartPlan(rule, note=f"no version is {start.on} and newer than the champion")
    version, queue = waiting[0], tuple(waiting[1:])
    if start.strategy == "shadow-then-canary":
        shadows_now = (*dep.shadows, Shadow(version, 1.0))
        reason = f"rollout policy {rule}: {version} is {start.on}; shadows all traffic"
        change = Start(version, dep.arms, shadows_now, reason)
    else:
        role = Role.CHALLENGER if start.strategy == "challenger" else Role.CANARY
        reason = f"rollout policy {rule}: {version} is {start.on}; {role.value} at {first:g}%"
        change = Start(version, _with_arm(dep, version, role, first), dep.shadows, reason)
    return StartPlan(rule, None, "", change, queue, reason)
