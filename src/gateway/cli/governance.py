"""Governance commands of the ``onnxgate`` CLI (registered by :func:`install`).

Reads and maintenance go straight to the registry (``--registry``), like ``models list``:
``models search|card|approvals|validate|retire`` here (``audit``, ``deployment at``,
``retention apply`` and ``db`` are :mod:`gateway.cli.audit`).
Changes that must carry an authenticated identity go through a gateway's GovernanceService
(``--target``, token from ``ONNXGATE_ADMIN_TOKEN``): ``approve`` (four-eyes compares the
token's principal with the registrant) and ``governance policy set|show``, ``whoami``.

Exit codes as everywhere in the CLI: 0 ok, 1 failed (one line on stderr; ``audit verify``
prints the problems it found), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gateway.cli.common import (
    actor,
    call,
    client_opts,
    open_registry,
    registry_opts,
    version_dict,
)
from gateway.cli.output import EXIT_FAILED, EXIT_OK, CliError, emit, print_table

__all__ = ["install", "lineage_from_args", "revalidate_if_profile_required"]


def _ref(ref: str) -> tuple[str, str]:
    name, sep, version = ref.partition(":")
    if not sep or not name or not version:
        raise CliError(f"{ref!r}: expected NAME:VERSION")
    return name, version


def _scalar(text: str) -> Any:
    # Hyperparameters keep their JSON type (3 -> int, 0.1 -> float, true -> bool).
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, str | int | float | bool) or value is None else text


def lineage_from_args(args: argparse.Namespace) -> Any:
    """The :class:`registry.lineage.Lineage` the register flags describe."""
    from registry import Lineage, parse_key_value
    from registry.errors import InvalidLineage

    try:
        metrics: dict[str, float] = {}
        for spec in getattr(args, "metric", None) or []:
            key, raw = parse_key_value("--metric", spec)
            try:
                metrics[key] = float(raw)
            except ValueError:
                raise CliError(f"--metric {spec!r}: {raw!r} is not a number") from None
        tags = dict(parse_key_value("--tag", s) for s in getattr(args, "tag", None) or [])
        params = {
            k: _scalar(v)
            for k, v in (parse_key_value("--param", s) for s in getattr(args, "param", None) or [])
        }
    except InvalidLineage as exc:
        raise CliError(str(exc)) from exc
    return Lineage(
        training_data=getattr(args, "training_data", None) or "",
        training_data_sha256=getattr(args, "training_data_sha256", None) or "",
        code_ref=getattr(args, "code_ref", None) or "",
        parent=getattr(args, "parent", None) or "",
        license=getattr(args, "license", None) or "",
        hyperparameters=params,
        metrics=metrics,
        tags=tags,
    )


def revalidate_if_profile_required(reg: Any, rec: Any, actor: str) -> Any:
    """After ``--reference`` stored a profile: re-validate when the policy requires one
    (registration validated before the profile existed)."""
    if not reg.governance.policy().require_profile:
        return rec
    reg.governance.validate(rec.model, rec.version, actor=actor)
    return reg.get_version(rec.model, rec.version)


# -- registry-side commands ---------------------------------------------------------------


def cmd_search(args: argparse.Namespace) -> int:
    from registry import MetricFilter, parse_key_value, user_tags
    from registry.errors import InvalidLineage

    try:
        tags = [parse_key_value("--tag", t) for t in args.tag or []]
        metrics = [MetricFilter.parse(m) for m in args.metric or []]
    except InvalidLineage as exc:
        raise CliError(str(exc)) from exc
    reg = open_registry(args)
    try:
        found = reg.governance.search(
            model=args.model, tags=tags, metrics=metrics, status=args.status, license=args.license
        )
    finally:
        reg.close()
    payload = [
        {"model": v.model, "version": v.version, "status": v.status, **v.lineage.to_dict()}
        for v in found
    ]

    def table() -> None:
        rows = [
            (
                v.model,
                v.version,
                v.status,
                v.lineage.license or "-",
                " ".join(f"{k}={m:g}" for k, m in sorted(v.lineage.metrics.items())) or "-",
                # The registry's own tags (scan, signatures) are in `models show`.
                " ".join(f"{k}={t}" for k, t in sorted(user_tags(v.lineage.tags).items())) or "-",
            )
            for v in found
        ]
        print_table(rows, ("MODEL", "VERSION", "STATUS", "LICENSE", "METRICS", "TAGS"))

    emit(args, payload, table)
    return EXIT_OK


def cmd_card(args: argparse.Namespace) -> int:
    from registry import build_card

    name, _, version = args.ref.partition(":")
    reg = open_registry(args)
    try:
        card = build_card(reg, name, version or None)
    finally:
        reg.close()
    if args.html:
        try:
            Path(args.html).write_text(card.html(), encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot write {args.html}: {exc.strerror}") from exc
    sys.stdout.write(card.markdown())
    return EXIT_OK


def cmd_approvals(args: argparse.Namespace) -> int:
    name, _, version = args.ref.partition(":")
    reg = open_registry(args)
    try:
        found = reg.governance.approvals(name, version or None)
    finally:
        reg.close()
    payload = [
        {"model": a.model, "version": a.version, "approver": a.approver, "comment": a.comment,
         "at": a.created_at.isoformat()}
        for a in found
    ]  # fmt: skip
    rows = [(a.version, a.approver, a.created_at.isoformat()[:19], a.comment) for a in found]
    emit(args, payload, lambda: print_table(rows, ("VERSION", "APPROVER", "AT", "COMMENT")))
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    name, version = _ref(args.ref)
    reg = open_registry(args)
    try:
        report = reg.governance.validate(name, version, actor=actor())
    finally:
        reg.close()

    def table() -> None:
        print(f"{name}:{version} validation {'passed' if report.passed else 'FAILED'}")
        rows = [(c.name, "pass" if c.passed else "FAIL", c.detail) for c in report.checks]
        print_table(rows, ("CHECK", "RESULT", "DETAIL"))

    emit(args, report.to_dict(), table)
    return EXIT_OK if report.passed else EXIT_FAILED


def cmd_retire(args: argparse.Namespace) -> int:
    name, version = _ref(args.ref)
    reg = open_registry(args)
    try:
        rec = reg.governance.retire(name, version, actor=actor(), reason=args.reason or "")
    finally:
        reg.close()
    emit(args, version_dict(rec), lambda: print(f"retired {name}:{version}"))
    return EXIT_OK


# -- gateway client commands ----------------------------------------------------------------


def _governance_call(args: argparse.Namespace, method: str, request: Any) -> Any:
    from gateway._proto import governance_pb2_grpc

    return call(args, governance_pb2_grpc.GovernanceServiceStub, method, request)


def cmd_approve(args: argparse.Namespace) -> int:
    from gateway._proto import governance_pb2 as pb

    name, version = _ref(args.ref)
    a = _governance_call(
        args, "Approve", pb.ApproveRequest(model=name, version=version, comment=args.comment or "")
    )
    payload = {"model": a.model, "version": a.version, "approver": a.approver,
               "comment": a.comment, "at": a.created_at}  # fmt: skip
    emit(args, payload, lambda: print(f"{a.approver} approved {a.model}:{a.version}"))
    return EXIT_OK


def cmd_policy(args: argparse.Namespace) -> int:
    from gateway._proto import governance_pb2 as pb
    from registry import GovernancePolicy

    if args.policy_command == "set":
        try:
            policy = GovernancePolicy.from_toml(Path(args.file).read_text(encoding="utf-8"))
        except OSError as exc:
            raise CliError(f"cannot read {args.file}: {exc.strerror}") from exc
        except ValueError as exc:
            raise CliError(f"{args.file}: {exc}") from exc
        request = pb.SetPolicyRequest(
            policy_json=json.dumps(policy.to_dict()), reason=args.reason or ""
        )
        resp = _governance_call(args, "SetPolicy", request)
    else:
        resp = _governance_call(args, "GetPolicy", pb.GetPolicyRequest())
    doc = json.loads(resp.policy_json)

    def table() -> None:
        for key, value in sorted(doc.items()):
            print(f"{key:22} {json.dumps(value)}")

    emit(args, doc, table)
    return EXIT_OK


def cmd_whoami(args: argparse.Namespace) -> int:
    from gateway._proto import governance_pb2 as pb

    resp = _governance_call(args, "WhoAmI", pb.WhoAmIRequest())
    payload = {"principal": resp.principal, "role": resp.role}
    emit(args, payload, lambda: print(f"{resp.principal} ({resp.role})"))
    return EXIT_OK


# -- parser -----------------------------------------------------------------------------------


def _register_flags(r: argparse.ArgumentParser) -> None:
    r.add_argument("--parent", help="VERSION or MODEL:VERSION this one derives from")
    r.add_argument("--license", help="licence (SPDX id), checked against the policy")
    r.add_argument("--metric", action="append", metavar="NAME=VALUE", help="evaluation metric")
    r.add_argument("--tag", action="append", metavar="KEY=VALUE", help="a tag (repeatable)")
    r.add_argument("--param", action="append", metavar="KEY=VALUE", help="hyperparameter")
    r.add_argument("--training-data", metavar="REF", help="training data URI or path")
    r.add_argument("--training-data-sha256", metavar="HEX", help="its content hash")
    r.add_argument("--code-ref", metavar="COMMIT", help="code that trained it")


def install(
    sub: Any,
    *,
    models: Any,
    register: argparse.ArgumentParser,
    traffic_set: argparse.ArgumentParser,
) -> None:
    """Add the governance commands to the ``onnxgate`` parser."""
    _register_flags(register)
    traffic_set.add_argument(
        "--expected-revision", type=int, default=0, metavar="REVISION",
        help="refuse (FAILED_PRECONDITION) unless the deployment is still at this revision "
        "(default: none, any revision)",
    )  # fmt: skip

    se = models.add_parser("search", help="versions by tag, metric, status, licence")
    se.add_argument("--tag", action="append", metavar="KEY=VALUE", help="has this tag")
    se.add_argument("--metric", action="append", metavar="NAME>VALUE", help="> >= < <= =")
    se.add_argument("--model", help="only this model (default: all)")
    se.add_argument("--status", help="only versions in this status")
    se.add_argument("--license", help="only versions with this licence")
    registry_opts(se)
    se.set_defaults(func=cmd_search)
    ca = models.add_parser("card", help="model card (Markdown; --html FILE too)")
    ca.add_argument("ref", metavar="NAME[:VERSION]")
    ca.add_argument("--html", metavar="FILE", help="also write the card as HTML")
    registry_opts(ca)
    ca.set_defaults(func=cmd_card)
    for name, func, helptext in (
        ("approvals", cmd_approvals, "approvals of NAME or NAME:VERSION"),
        ("validate", cmd_validate, "re-run validation of NAME:VERSION (exit 1 if it fails)"),
        ("retire", cmd_retire, "retire NAME:VERSION, which serves nowhere"),
    ):
        p = models.add_parser(name, help=helptext)
        p.add_argument("ref")
        if name == "retire":
            p.add_argument("--reason", help="why, for the audit log")
        registry_opts(p)
        p.set_defaults(func=func)

    ap = sub.add_parser("approve", help="approve NAME:VERSION (as your token's principal)")
    ap.add_argument("ref", metavar="NAME:VERSION")
    ap.add_argument(
        "--reason", "--comment", dest="comment",
        help="why, kept with the approval and as its audit event's reason (--comment is the "
        "same option)",
    )  # fmt: skip
    client_opts(ap)
    ap.set_defaults(func=cmd_approve)

    gov = sub.add_parser("governance", help="registry governance policy, your role")
    gsub = gov.add_subparsers(dest="governance_command", required=True)
    pol = gsub.add_parser("policy", help="the registry's governance policy")
    psub = pol.add_subparsers(dest="policy_command", required=True)
    ps = psub.add_parser("set", help="replace it with a TOML file (admin role)")
    ps.add_argument("file")
    ps.add_argument("--reason", help="why, for the audit log")
    client_opts(ps)
    ps.set_defaults(func=cmd_policy)
    pshow = psub.add_parser("show")
    client_opts(pshow)
    pshow.set_defaults(func=cmd_policy)
    who = gsub.add_parser("whoami", help="your principal and role")
    client_opts(who)
    who.set_defaults(func=cmd_whoami)
