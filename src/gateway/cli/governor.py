"""``onnxgate`` subcommands for the governor: ``feedback``, ``governor ...``, ``policy ...``.

All talk to a gateway's ``GovernorService`` (``--target``). Control commands need an admin
token (``ONNXGATE_ADMIN_TOKEN``); ``feedback`` sends ``ONNXGATE_PREDICT_TOKEN`` when set
(a gateway without predict tokens takes labels from anyone, like predictions).

``feedback NAME --file labels.csv`` reads ``id,label`` rows (an optional header; a third
column ``row`` addresses one row of a batched request) and sends them in batches.
Registered by :func:`gateway.cli.parser.build_parser`.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.cli.common import PREDICT_TOKEN_ENV, call, client_opts, token_metadata
from gateway.cli.output import EXIT_OK, CliError, emit, print_table
from gateway.cli.rollout import next_evaluation, seconds_until

__all__ = ["add_commands", "read_labels"]


def _call(args: argparse.Namespace, method: str, request: Any, *, predict: bool = False) -> Any:
    """A GovernorService call: admin token, or for ``predict`` the predict token if any."""
    from gateway._proto import governor_pb2_grpc

    metadata = token_metadata(PREDICT_TOKEN_ENV, required=False, args=args) if predict else None
    return call(args, governor_pb2_grpc.GovernorServiceStub, method, request, metadata=metadata)


def read_labels(path: Path) -> Iterator[tuple[str, str, int]]:
    """(id, label, row) from a CSV of ``id,label[,row]``; a header line is skipped."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            for n, rec in enumerate(csv.reader(fh), start=1):
                if not rec or not "".join(rec).strip():
                    continue
                if n == 1 and rec[0].strip().lower() in ("id", "request_id"):
                    continue
                if len(rec) not in (2, 3):
                    raise CliError(f"{path}:{n}: expected id,label[,row], got {len(rec)} fields")
                row = rec[2].strip() if len(rec) == 3 else "0"
                if not row.isdigit():
                    raise CliError(f"{path}:{n}: row {row!r} is not a whole number")
                yield rec[0].strip(), rec[1].strip(), int(row)
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from exc


def cmd_feedback(args: argparse.Namespace) -> int:
    from gateway._proto import governor_pb2 as pb

    totals = {"joined": 0, "unknown": 0, "expired": 0, "duplicate": 0, "invalid": 0}
    batch: list[Any] = []
    hints: list[str] = []

    def send() -> None:
        resp = _call(
            args, "Feedback", pb.FeedbackRequest(model=args.name, items=batch), predict=True
        )
        for key in totals:
            totals[key] += getattr(resp, key)
        if resp.hint:
            hints.append(resp.hint)
        batch.clear()

    for request_id, label, row in read_labels(Path(args.file)):
        batch.append(pb.FeedbackItem(id=request_id, label=label, row=row))
        if len(batch) >= args.batch:
            send()
    if batch:
        send()
    emit(args, totals, lambda: print(", ".join(f"{k} {v}" for k, v in totals.items())))
    if hints:
        print(f"onnxgate: {hints[-1]}", file=sys.stderr)
    lost = totals["unknown"] + totals["expired"] + totals["invalid"]
    if totals["joined"] or not lost:
        return EXIT_OK
    if _has_policy(args) is False:
        raise CliError(
            f"no label joined: model {args.name!r} has no rollout policy, and a gateway keeps "
            f"predictions to join labels to only under one (onnxgate policy set {args.name} "
            "FILE.toml)"
        )
    raise CliError(
        f"no label joined a prediction ({lost} of {sum(totals.values())}): the gateway keeps "
        "a request's predictions only when the request carried an id (onnxgate infer --id), "
        "for feedback_ttl_s, on the gateway that served it"
    )


def _has_policy(args: argparse.Namespace) -> bool | None:
    """Whether ``args.name`` has a rollout policy; None when that cannot be asked (no
    admin token where the gateway needs one)."""
    import grpc

    from gateway._proto import governor_pb2 as pb

    try:
        token = token_metadata(required=False, args=None)
        _call_with(args, "GetPolicy", pb.GetPolicyRequest(model=args.name), token)
    except grpc.RpcError as exc:
        return False if exc.code() == grpc.StatusCode.NOT_FOUND else None
    except CliError:
        return None
    return True


def _call_with(args: argparse.Namespace, method: str, request: Any, metadata: Any) -> Any:
    from gateway._proto import governor_pb2_grpc

    return call(args, governor_pb2_grpc.GovernorServiceStub, method, request, metadata=metadata)


def _status_payload(resp: Any) -> dict[str, Any]:
    return {
        "model": resp.model,
        "mode": "paused" if resp.paused else resp.mode,
        "policy_version": resp.policy_version,
        "leader": resp.leader,
        "candidate": resp.candidate,
        "step": resp.step,
        "steps": list(resp.steps),
        "consecutive_failures": resp.consecutive_failures,
        "rolled_back": list(resp.rolled_back),
        "approved": list(resp.approved),
        "last_decision": resp.last_decision,
        "reasons": list(resp.reasons),
        "p_value": resp.p_value,
        "last_evaluated_at": resp.last_evaluated_at,
        "next_evaluation_in_s": resp.next_evaluation_in_s,
        "gates": [
            {
                "name": g.name,
                "version": g.version,
                "status": g.status,
                "value": g.value if g.has_value else None,
                "op": g.op,
                "threshold": g.threshold,
                "hard": g.hard,
                "detail": g.detail,
            }
            for g in resp.gates
        ],
        "figures": json.loads(resp.figures_json or "{}"),
    }


def _status_out(args: argparse.Namespace, resp: Any, starting: dict[str, Any] | None = None) -> int:
    payload = _status_payload(resp)
    if starting is not None:
        payload["starting"] = starting

    def table() -> None:
        if not resp.policy_version:
            print(f"model {resp.model}: no governor policy (set one with `onnxgate policy set`)")
            return
        steps = "/".join(f"{s:g}%" for s in resp.steps)
        print(f"model {resp.model}  mode {payload['mode']}  policy v{resp.policy_version}")
        if resp.candidate:
            print(f"candidate {resp.candidate}  step {resp.step}/{len(resp.steps)} of {steps}")
        elif starting is not None:
            print(
                f"candidate {starting['version']} ({starting['role']} at "
                f"{starting['percent']:g}%), starting at "
                f"{next_evaluation(starting['next_evaluation_in_s'])}"
            )
        else:
            print("candidate none")
        print(f"last decision {resp.last_decision or '-'} at {resp.last_evaluated_at or '-'}")
        for reason in resp.reasons:
            print(f"  {reason}")
        print(
            f"next evaluation in {resp.next_evaluation_in_s:.1f}s  "
            f"soft failures {resp.consecutive_failures}  p-value {resp.p_value:.3g}  "
            f"leader {resp.leader or '-'}"
        )
        if resp.rolled_back:
            print(f"rolled back (not promoted again): {', '.join(resp.rolled_back)}")
        rows = [
            (
                g["name"],
                g["version"],
                "n/a" if g["value"] is None else f"{g['value']:.4g}",
                f"{g['op']} {g['threshold']:.4g}",
                g["status"],
                "hard" if g["hard"] else "soft",
                g["detail"],
            )
            for g in payload["gates"]
        ]
        if rows:
            print_table(rows, ("GATE", "VERSION", "VALUE", "PASSES IF", "STATUS", "KIND", "DETAIL"))

    emit(args, payload, table)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from gateway._proto import governor_pb2 as pb

    resp = _call(args, "GetStatus", pb.GetStatusRequest(model=args.name))
    starting = None
    if resp.policy_version and not resp.candidate and not resp.paused:
        starting = _started_not_evaluated(args, resp)
    return _status_out(args, resp, starting)


def _started_not_evaluated(args: argparse.Namespace, resp: Any) -> dict[str, Any] | None:
    """A canary or challenger with traffic that the governor's state does not name yet.

    A start by policy ends that evaluation early; the governor takes the new candidate on
    at the next one, ``canary.interval_s`` after the start. Until then the status said
    "candidate none" while the history showed the canary: this says what is happening.
    """
    import grpc

    from gateway._proto import admin_pb2, admin_pb2_grpc
    from gateway._proto import governor_pb2 as pb

    try:
        history = call(
            args,
            admin_pb2_grpc.AdminServiceStub,
            "ListHistory",
            admin_pb2.ListHistoryRequest(model=args.name, limit=1),
        ).entries
    except grpc.RpcError:
        return None  # a status without the note rather than no status at all
    if not history:
        return None
    entry = max(history, key=lambda e: e.deployment.revision)
    arms = entry.deployment.arms
    total = sum(a.weight for a in arms) or 1.0
    live = sorted(
        (a for a in arms if a.role != "champion" and a.weight > 0), key=lambda a: a.version
    )
    if not live:
        return None
    wait: float | None = resp.next_evaluation_in_s
    if entry.actor == "governor":
        try:
            policy = _call(args, "GetPolicy", pb.GetPolicyRequest(model=args.name))
        except grpc.RpcError:
            return None
        interval = float(json.loads(policy.effective_json)["canary"]["interval_s"])
        changed = datetime.fromisoformat(entry.created_at) + timedelta(seconds=interval)
        wait = seconds_until(changed, datetime.now(UTC))
    return {
        "version": live[0].version,
        "role": live[0].role,
        "percent": 100.0 * live[0].weight / total,
        "next_evaluation_in_s": wait,
    }


def _require_policy(args: argparse.Namespace, what: str) -> None:
    """Refuse, as ``policy show`` does, to pause or resume a model the governor does not
    govern: it would record a pause that means nothing and exit 0."""
    from gateway._proto import governor_pb2 as pb

    if not _call(args, "GetStatus", pb.GetStatusRequest(model=args.name)).policy_version:
        raise CliError(
            f"model {args.name!r} has no governor policy: nothing to {what} "
            f"(set one with `onnxgate policy set {args.name} FILE.toml`)"
        )


def cmd_pause(args: argparse.Namespace) -> int:
    from gateway._proto import governor_pb2 as pb

    _require_policy(args, "pause")
    req = pb.PauseRequest(model=args.name, reason=args.reason or "")
    return _status_out(args, _call(args, "Pause", req))


def cmd_resume(args: argparse.Namespace) -> int:
    from gateway._proto import governor_pb2 as pb

    _require_policy(args, "resume")
    req = pb.ResumeRequest(
        model=args.name, reason=args.reason or "", clear_rolled_back=args.clear_rolled_back or []
    )
    return _status_out(args, _call(args, "Resume", req))


def cmd_approve(args: argparse.Namespace) -> int:
    from gateway._proto import governor_pb2 as pb

    req = pb.ApproveRequest(model=args.name, version=args.version, reason=args.reason or "")
    return _status_out(args, _call(args, "Approve", req))


def _policy_out(args: argparse.Namespace, resp: Any) -> int:
    payload = {
        "model": resp.model,
        "version": resp.version,
        "created_at": resp.created_at,
        "actor": resp.actor,
        "toml": resp.toml,
        "effective": json.loads(resp.effective_json or "{}"),
    }

    def table() -> None:
        print(f"# policy v{resp.version} of {resp.model}, set {resp.created_at} by {resp.actor}")
        print(resp.toml.rstrip())

    emit(args, payload, table)
    return EXIT_OK


def cmd_policy_set(args: argparse.Namespace) -> int:
    from gateway._proto import governor_pb2 as pb
    from gateway.governor.rollout import RolloutPolicyError, policy_to_set

    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        policy_to_set(text)  # a clear local message before the round trip
    except RolloutPolicyError as exc:
        raise CliError(f"{path}: {exc}") from exc
    req = pb.SetPolicyRequest(model=args.name, toml=text, reason=args.reason or "")
    return _policy_out(args, _call(args, "SetPolicy", req))


def cmd_policy_show(args: argparse.Namespace) -> int:
    from gateway._proto import governor_pb2 as pb

    req = pb.GetPolicyRequest(model=args.name, version=args.version or 0)
    return _policy_out(args, _call(args, "GetPolicy", req))


def add_commands(sub: Any) -> None:
    """Add ``feedback``, ``governor`` and ``policy`` to the top-level subcommands."""
    fb = sub.add_parser("feedback", help="send delayed labels (id,label CSV) to a gateway")
    fb.add_argument("name")
    fb.add_argument(
        "--file",
        required=True,
        metavar="LABELS.csv",
        help="id,label[,row] rows; a header is skipped",
    )
    fb.add_argument("--batch", type=int, default=1000, help="labels per call")
    client_opts(fb)
    fb.set_defaults(func=cmd_feedback)

    gov = sub.add_parser("governor", help="the governor: status, pause, resume, approve")
    gsub = gov.add_subparsers(dest="governor_command", required=True)
    st = gsub.add_parser("status", help="step, gates (value vs threshold), next evaluation")
    st.add_argument("name")
    client_opts(st)
    st.set_defaults(func=cmd_status)
    pa = gsub.add_parser("pause", help="stop evaluating a model (traffic stays as it is)")
    pa.add_argument("name")
    pa.add_argument("--reason", help="why, for the audit log")
    client_opts(pa)
    pa.set_defaults(func=cmd_pause)
    re = gsub.add_parser("resume", help="evaluate a model again")
    re.add_argument("name")
    re.add_argument("--reason", help="why, for the audit log")
    re.add_argument(
        "--clear-rolled-back",
        action="append",
        metavar="VERSION",
        help="let the governor promote VERSION again after a rollback (repeatable)",
    )
    client_opts(re)
    re.set_defaults(func=cmd_resume)
    ap = gsub.add_parser("approve", help="approve a version's final promotion")
    ap.add_argument("name")
    ap.add_argument("version")
    ap.add_argument("--reason", help="why, for the audit log")
    client_opts(ap)
    ap.set_defaults(func=cmd_approve)

    pol = sub.add_parser("policy", help="a model's governor rollout policy (TOML)")
    psub = pol.add_subparsers(dest="policy_command", required=True)
    ps = psub.add_parser("set", help="validate and store a new policy version")
    ps.add_argument("name")
    ps.add_argument("file", metavar="FILE.toml")
    ps.add_argument("--reason", help="why, for the audit log")
    client_opts(ps)
    ps.set_defaults(func=cmd_policy_set)
    sh = psub.add_parser("show", help="the policy in force (or --version N)")
    sh.add_argument("name")
    sh.add_argument("--version", type=int, help="policy version (default: the one in force)")
    client_opts(sh)
    sh.set_defaults(func=cmd_policy_show)
