"""``onnxgate contracts show|set NAME VERSION``: a version's data contract, and edits to it.

Calls the gateway's ``GovernanceService.GetContract``/``SetContract`` (``--target``, token
from ``ONNXGATE_ADMIN_TOKEN``; ``set`` needs the operator or admin role). ``show`` prints the
contract in force: the newest edited revision (with who, when, why), else the one derived
from the version's reference profile (revision 0). ``set`` stores ``FILE.json`` (the
document ``show --json`` prints under ``contract``) as the next revision, audited with
``--reason``; gateways apply it off the request path within a governor tick or so.
Registered from :func:`gateway.cli.parser.build_parser`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from gateway.cli.common import call, client_opts
from gateway.cli.output import EXIT_OK, CliError, emit, print_table

__all__ = ["add_commands"]


def _payload(resp: Any) -> dict[str, Any]:
    return {
        "model": resp.model,
        "version": resp.version,
        "revision": resp.revision,
        "source": resp.source,
        "created_by": resp.created_by or None,
        "created_at": resp.created_at or None,
        "reason": resp.reason or None,
        "contract": json.loads(resp.contract_json),
    }


def _table(doc: dict[str, Any]) -> None:
    c = doc["contract"]
    edited = f" by {doc['created_by']} at {doc['created_at']}: {doc['reason']}"
    print(
        f"{doc['model']}:{doc['version']}  revision {doc['revision']} "
        f"({doc['source']}{edited if doc['revision'] else ''})"
    )

    def bound(v: float | None) -> str:
        return "-" if v is None else f"{v:.6g}"

    rows = [
        (name, bound(lo), bound(hi), "yes" if nan else "no",
         "-" if cats is None else ",".join(f"{x:g}" for x in cats))
        for name, lo, hi, nan, cats in zip(
            c["features"], c["low"], c["high"], c["nan_allowed"], c["categories"], strict=True
        )
    ]  # fmt: skip
    print_table(rows, ("FEATURE", "LOW", "HIGH", "MISSING_OK", "CATEGORIES"))


def cmd_contracts(args: argparse.Namespace) -> int:
    from gateway._proto import governance_pb2 as pb
    from gateway._proto import governance_pb2_grpc

    stub = governance_pb2_grpc.GovernanceServiceStub
    if args.contracts_command == "set":
        try:
            text = Path(args.file).read_text(encoding="utf-8")
            doc = json.loads(text)
        except OSError as exc:
            raise CliError(f"cannot read {args.file}: {exc.strerror}") from exc
        except ValueError as exc:
            raise CliError(f"{args.file}: not JSON ({exc})") from exc
        if isinstance(doc, dict) and isinstance(doc.get("contract"), dict):
            doc = doc["contract"]  # what `show --json` printed, edited
        edit = pb.SetContractRequest(
            model=args.name, version=args.version, contract_json=json.dumps(doc),
            reason=args.reason,
        )  # fmt: skip
        resp = call(args, stub, "SetContract", edit)
    else:
        show = pb.GetContractRequest(model=args.name, version=args.version)
        resp = call(args, stub, "GetContract", show)
    payload = _payload(resp)
    emit(args, payload, lambda: _table(payload))
    return EXIT_OK


def add_commands(sub: Any) -> None:
    p = sub.add_parser("contracts", help="a version's data contract: show, set (edit)")
    csub = p.add_subparsers(dest="contracts_command", required=True)
    show = csub.add_parser("show", help="the contract in force (edited revision or derived)")
    show.add_argument("name")
    show.add_argument("version")
    client_opts(show)
    show.set_defaults(func=cmd_contracts)
    st = csub.add_parser("set", help="store FILE.json as the next revision (operator role)")
    st.add_argument("name")
    st.add_argument("version")
    st.add_argument("file", metavar="FILE.json")
    st.add_argument("--reason", required=True, help="why, kept with the revision and audited")
    client_opts(st)
    st.set_defaults(func=cmd_contracts)
