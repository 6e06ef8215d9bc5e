"""The ``onnxgate`` command: serve, manage the registry, operate traffic, send requests.

Registry commands (``models ...``) talk to the registry URL directly and need no gateway;
traffic commands go through a gateway's authenticated admin API (``--target``, token from
``ONNXGATE_ADMIN_TOKEN``). Output is a table for people, ``--json`` for scripts. Exit codes:
0 ok, 1 the operation failed (one line on stderr), 2 bad usage.

This module only assembles the parser from the command families and dispatches; each family
module registers its sub-commands with an ``add_commands`` function (governance's is
``install``, as it also extends ``models register`` and ``traffic set``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gateway.cli import audit, explain, governance, governor, inference, models, monitoring, traffic
from gateway.cli.output import EXIT_FAILED, REPORTED_ERRORS, failure_message

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="onnxgate", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    inference.add_commands(sub)  # serve, infer, bench
    models_sub, register = models.add_commands(sub)  # models register|list|show
    shadow, traffic_set = traffic.add_commands(sub)  # traffic, promote, rollback, shadow, history
    monitoring.add_commands(sub, shadow)  # drift, shadow report
    governor.add_commands(sub)  # feedback, governor, policy
    # models search|card|approvals|validate|retire, approve, governance; lineage flags
    governance.install(sub, models=models_sub, register=register, traffic_set=traffic_set)
    audit.add_commands(sub)  # audit, deployment at, retention apply, db
    explain.add_commands(sub)  # explain
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except REPORTED_ERRORS as exc:
        print(failure_message(exc), file=sys.stderr)
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
