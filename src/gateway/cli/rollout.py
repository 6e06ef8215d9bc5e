"""``onnxgate rollout status NAME``: the rollout policy's ``[start]`` rule at work — the
version on trial and the queue of versions waiting for their turn.

Reads the registry directly (like ``models ...``); the plan is the one the governor
computes (:func:`gateway.governor.autostart.plan_start`).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from gateway.cli.common import open_registry, registry_opts
from gateway.cli.output import EXIT_OK, CliError, emit

__all__ = ["add_commands", "next_evaluation", "seconds_until"]


def seconds_until(due: datetime | None, now: datetime) -> float | None:
    """Seconds from ``now`` to ``due`` (never negative); None when ``due`` is unknown."""
    if due is None:
        return None
    if due.tzinfo is None:  # SQLite hands back naive datetimes; the registry writes UTC
        due = due.replace(tzinfo=UTC)
    return max(0.0, (due - now).total_seconds())


def next_evaluation(seconds: float | None) -> str:
    """ "the next evaluation (in N s)", as ``governor status`` and ``rollout status`` say it."""
    if seconds is None:
        return "the governor's next evaluation"
    if seconds < 0.5:
        return "the next evaluation (due now)"
    return f"the next evaluation (in {seconds:.0f} s)"


def cmd_rollout_status(args: argparse.Namespace) -> int:
    from gateway.governor.autostart import plan_start
    from gateway.governor.rollout import RolloutPolicyError, parse_rollout_policy
    from registry.errors import NotFoundError

    reg = open_registry(args)
    try:
        dep = reg.get_deployment(args.name)
        versions = [(r.version, r.status) for r in reg.list_versions(args.name)]
        try:
            record = reg.governor.get_policy(args.name)
        except NotFoundError:
            raise CliError(f"model {args.name!r} has no rollout policy") from None
        state = reg.governor.get_state(args.name)
    finally:
        reg.close()
    try:
        policy = parse_rollout_policy(record.toml)
    except RolloutPolicyError as exc:
        raise CliError(f"rollout policy {record.version} of {args.name}: {exc}") from None
    rolled_back = frozenset(state.rolled_back) if state is not None else frozenset()
    plan = plan_start(policy, dep, versions, rolled_back, None)
    champion = dep.champion.version if dep.arms else None
    payload: dict[str, Any] = {
        "model": args.name,
        "policy_version": record.version,
        "champion": champion,
        "rule": plan.rule if plan is not None else None,
        "on_trial": None,
        "queue": [],
        "note": "the policy starts nothing by itself ([start] on is not set)",
    }
    if plan is not None:
        trial = {"version": plan.trial, "role": plan.trial_role} if plan.trial else None
        payload.update(on_trial=trial, queue=list(plan.queue), note=plan.note)
        if plan.start is not None:  # the governor makes this change at its next evaluation
            payload["next"] = plan.start.reason
            due = state.next_evaluation_at if state is not None else None
            wait = seconds_until(due, datetime.now(UTC))
            payload["next_evaluation_in_s"] = wait
            payload["note"] = f"starting at {next_evaluation(wait)}: {plan.start.reason}"

    def lines() -> None:
        trial = payload["on_trial"]
        print(f"{'model':10} {args.name} (rollout policy {record.version})")
        print(f"{'champion':10} {champion or '-'}")
        print(f"{'rule':10} {payload['rule'] or '-'}")
        print(f"{'on trial':10} " + (f"{trial['version']} ({trial['role']})" if trial else "-"))
        print(f"{'queue':10} {', '.join(payload['queue']) or '-'}")
        print(f"{'note':10} {payload['note']}")

    emit(args, payload, lines)
    return EXIT_OK


def add_commands(sub: Any) -> None:
    rollout = sub.add_parser("rollout", help="rollouts the governor starts by policy")
    commands = rollout.add_subparsers(dest="rollout_command", required=True)
    st = commands.add_parser("status", help="version on trial and queue of NAME")
    st.add_argument("name")
    registry_opts(st)
    st.set_defaults(func=cmd_rollout_status)
