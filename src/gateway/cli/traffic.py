"""``onnxgate traffic|promote|rollback|shadow|history``: a model's traffic, via a gateway.

Every command calls the gateway's authenticated ``AdminService`` (``--target``, token from
``ONNXGATE_ADMIN_TOKEN``); the gateway writes the registry and every replica converges.
"""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli.common import call, client_opts
from gateway.cli.output import EXIT_OK, CliError, arm_order, emit, print_table

__all__ = ["add_commands"]


def _admin(args: argparse.Namespace, method: str, request: Any) -> Any:
    from gateway._proto import admin_pb2_grpc

    return call(args, admin_pb2_grpc.AdminServiceStub, method, request)


def _numbered(args: argparse.Namespace, method: str, request: Any, names: list[str]) -> Any:
    """``_admin``, adding to a NOT_FOUND the hint that versions are numbers where one of
    ``names`` is spelt like ``v1`` (the registry numbers versions 1, 2, ...)."""
    import re

    import grpc

    try:
        return _admin(args, method, request)
    except grpc.RpcError as exc:
        spelt = [n for n in names if re.fullmatch(r"[vV]\d+", n)]
        if exc.code() != grpc.StatusCode.NOT_FOUND or not spelt:
            raise
        raise CliError(
            f"NOT_FOUND: {exc.details()}; versions are numbers: write {spelt[0][1:]}, "
            f"not {spelt[0]}"
        ) from None


def _in_order(arms: Any) -> list[Any]:
    """Arms as tables show them: the champion first, then by version (numbers as numbers),
    whatever order the change listed them in."""

    return sorted(arms, key=lambda a: arm_order(a.version, a.role))


def _deployment_out(args: argparse.Namespace, dep: Any) -> None:
    total = sum(a.weight for a in dep.arms) or 1.0
    payload = {
        "model": dep.model,
        "revision": dep.revision,
        "arms": [{"version": a.version, "role": a.role, "weight": a.weight} for a in dep.arms],
        "shadows": [{"version": s.version, "fraction": s.fraction} for s in dep.shadows],
        "loaded_versions": list(dep.loaded_versions),
    }

    def table() -> None:
        print(f"model {dep.model}  revision {dep.revision}")
        rows: list[tuple[Any, ...]] = [
            (a.version, a.role, f"{100 * a.weight / total:.1f}%") for a in _in_order(dep.arms)
        ]
        rows += [(s.version, "shadow", f"{100 * s.fraction:.1f}% mirrored") for s in dep.shadows]
        print_table(rows, ("VERSION", "ROLE", "TRAFFIC"))

    emit(args, payload, table)


def cmd_traffic_show(args: argparse.Namespace) -> int:
    from gateway._proto import admin_pb2 as pb

    resp = _admin(args, "GetDeployment", pb.GetDeploymentRequest(model=args.name))
    _deployment_out(args, resp.deployment)
    return EXIT_OK


def _refuse_idle_champion(
    args: argparse.Namespace, weights: dict[str, float], roles: dict[str, str]
) -> None:
    """Refuse a change that leaves the champion at 0 %.

    The champion is what ``rollback`` and the governor measure challengers and canaries
    against, and what serves when they are removed; one that serves nothing would make
    those comparisons empty. Handing all traffic to another version is a promotion.
    """
    from gateway._proto import admin_pb2 as pb

    named = [v for v, r in roles.items() if r == "champion"]
    if named:
        champion = named[0]
    else:
        dep = _admin(args, "GetDeployment", pb.GetDeploymentRequest(model=args.name)).deployment
        current = [a.version for a in dep.arms if a.role == "champion"]
        if not current or current[0] not in weights:
            return  # the gateway refuses a deployment without a champion, naming the arms
        champion = current[0]
    if weights.get(champion, 1.0) == 0:
        others = [v for v, w in weights.items() if v != champion and w > 0]
        hint = f"`onnxgate promote {args.name} {others[0]}`" if others else "`onnxgate promote`"
        raise CliError(
            f"refused: version {champion} is the champion of {args.name} and would get 0% of "
            f"traffic; the champion must serve (rollback and the governor compare against "
            f"it); to hand its traffic to another version use {hint}"
        )


def cmd_traffic_set(args: argparse.Namespace) -> int:
    from gateway._proto import admin_pb2 as pb
    from registry.deployment import parse_weights
    from registry.errors import InvalidDeployment

    try:
        weights = parse_weights(args.weights)
    except InvalidDeployment as exc:
        raise CliError(str(exc)) from exc
    roles: dict[str, str] = {}
    for item in args.role or []:
        version, sep, role = item.partition("=")
        if not sep:
            raise CliError(f"--role {item!r}: expected VERSION=ROLE")
        roles[version] = role
    _refuse_idle_champion(args, weights, roles)
    resp = _numbered(
        args,
        "SetWeights",
        pb.SetWeightsRequest(
            model=args.name,
            weights=weights,
            roles=roles,
            reason=args.reason or "",
            expected_revision=getattr(args, "expected_revision", 0) or 0,
        ),
        [*weights, *roles],
    )
    _deployment_out(args, resp.deployment)
    return EXIT_OK


def cmd_promote(args: argparse.Namespace) -> int:
    from gateway._proto import admin_pb2 as pb

    req = pb.PromoteRequest(
        model=args.name, version=args.version, keep_old=args.keep_old, reason=args.reason or ""
    )
    _deployment_out(args, _numbered(args, "Promote", req, [args.version]).deployment)
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    from gateway._proto import admin_pb2 as pb

    req = pb.RollbackRequest(model=args.name, reason=args.reason or "")
    _deployment_out(args, _admin(args, "Rollback", req).deployment)
    return EXIT_OK


def cmd_shadow_add(args: argparse.Namespace) -> int:
    from gateway._proto import admin_pb2 as pb

    req = pb.AddShadowRequest(
        model=args.name, version=args.version, fraction=args.fraction, reason=args.reason or ""
    )
    _deployment_out(args, _numbered(args, "AddShadow", req, [args.version]).deployment)
    return EXIT_OK


def cmd_shadow_remove(args: argparse.Namespace) -> int:
    from gateway._proto import admin_pb2 as pb

    req = pb.RemoveShadowRequest(model=args.name, version=args.version, reason=args.reason or "")
    _deployment_out(args, _admin(args, "RemoveShadow", req).deployment)
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    from gateway._proto import admin_pb2 as pb

    resp = _admin(args, "ListHistory", pb.ListHistoryRequest(model=args.name, limit=args.limit))
    payload = [
        {
            "revision": e.deployment.revision,
            "at": e.created_at,
            "actor": e.actor,
            "reason": e.reason,
            "arms": {a.version: [a.role, a.weight] for a in e.deployment.arms},
            "shadows": {s.version: s.fraction for s in e.deployment.shadows},
        }
        for e in resp.entries
    ]

    def table() -> None:
        rows = []
        for e in resp.entries:
            total = sum(a.weight for a in e.deployment.arms) or 1.0
            arms = " ".join(
                f"{a.version}({a.role[:5]})={100 * a.weight / total:.0f}%"
                for a in _in_order(e.deployment.arms)
            )
            shadows = " ".join(f"{s.version}~{s.fraction:g}" for s in e.deployment.shadows)
            rows.append(
                (e.deployment.revision, e.created_at[:19], e.actor, arms, shadows, e.reason)
            )
        print_table(rows, ("REV", "AT (UTC)", "ACTOR", "ARMS", "SHADOWS", "REASON"))

    emit(args, payload, table)
    return EXIT_OK


def add_commands(sub: Any) -> tuple[Any, argparse.ArgumentParser]:
    """Add the traffic commands; return ``shadow``'s sub-commands and ``traffic set``."""
    traffic = sub.add_parser("traffic", help="traffic weights").add_subparsers(
        dest="traffic_command", required=True
    )
    ts = traffic.add_parser("show")
    ts.add_argument("name")
    client_opts(ts)
    ts.set_defaults(func=cmd_traffic_show)
    tset = traffic.add_parser(
        "set",
        help="set the arms exactly as listed, e.g. traffic set fraud 1=90 2=10 --role 2=canary",
        description="Serve exactly the listed versions with these weights (normalised to 100%).\n"
        "The champion must keep a weight above 0: handing it all traffic away is a\n"
        "promotion (onnxgate promote NAME VERSION).",
    )
    tset.add_argument("name")
    tset.add_argument("weights", nargs="+", metavar="VERSION=WEIGHT")
    tset.add_argument(
        "--role",
        action="append",
        metavar="VERSION=ROLE",
        help="champion, challenger or canary (default: a listed version keeps its role; "
        "a new one becomes a challenger)",
    )
    tset.add_argument("--reason", help="why, for the audit log")
    client_opts(tset)
    tset.set_defaults(func=cmd_traffic_set)

    pr = sub.add_parser("promote", help="make VERSION the champion")
    pr.add_argument("name")
    pr.add_argument("version")
    pr.add_argument("--keep-old", action="store_true", help="keep old champion as challenger")
    pr.add_argument("--reason", help="why, for the audit log")
    client_opts(pr)
    pr.set_defaults(func=cmd_promote)

    rb = sub.add_parser("rollback", help="restore the previous deployment revision")
    rb.add_argument("name")
    rb.add_argument("--reason", help="why, for the audit log")
    client_opts(rb)
    rb.set_defaults(func=cmd_rollback)

    shadow = sub.add_parser("shadow", help="mirrored traffic").add_subparsers(
        dest="shadow_command", required=True
    )
    sa = shadow.add_parser("add")
    sa.add_argument("name")
    sa.add_argument("version")
    sa.add_argument(
        "--fraction", type=float, default=1.0, help="share of requests mirrored, 0 to 1"
    )
    sa.add_argument("--reason", help="why, for the audit log")
    client_opts(sa)
    sa.set_defaults(func=cmd_shadow_add)
    sr = shadow.add_parser("remove")
    sr.add_argument("name")
    sr.add_argument("version")
    sr.add_argument("--reason", help="why, for the audit log")
    client_opts(sr)
    sr.set_defaults(func=cmd_shadow_remove)

    hi = sub.add_parser("history", help="deployment history of a model")
    hi.add_argument("name")
    hi.add_argument("--limit", type=int, default=0, help="most recent N revisions (0: all)")
    client_opts(hi)
    hi.set_defaults(func=cmd_history)
    return shadow, tset
