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
from typing import Any

from gateway.cli import (
    audit,
    contracts,
    convert,
    explain,
    governance,
    governor,
    inference,
    log,
    models,
    monitoring,
    performance,
    rollout,
    traffic,
)
from gateway.cli.output import EXIT_FAILED, EXIT_OK, REPORTED_ERRORS, failure_message

__all__ = ["HelpFormatter", "Parser", "build_parser", "main"]


DESCRIPTION = """\
Serve ONNX models over gRPC (KServe / Open Inference Protocol v2), manage their registry,
and move their traffic.

Registry commands (models ...) open the registry directly and need no gateway; the others
call a running gateway (--target, default localhost:8001 or ONNXGATE_TARGET). Output is a
table for people, --json for scripts. Exit codes: 0 ok, 1 the operation was refused or
failed (one line on stderr), 2 bad usage. onnxgate COMMAND --help tells more."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written; every option's help ends with its default (or "none")."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or not action.option_strings or action.nargs == 0:
            return text
        if action.required or action.default == argparse.SUPPRESS:
            return text
        if action.default is None or action.default == []:
            return text + " (default: none)"
        return text + " (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose sub-parsers (made through add_parser) share the formatter."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("onnxgate")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="onnxgate", description=DESCRIPTION)
    p.add_argument("--version", action="version", version=f"onnxgate {_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    inference.add_commands(sub)  # serve, infer, bench
    models_sub, register = models.add_commands(sub)  # models register|list|show
    shadow, traffic_set = traffic.add_commands(sub)  # traffic, promote, rollback, shadow, history
    monitoring.add_commands(sub, shadow)  # drift, shadow report
    governor.add_commands(sub)  # feedback, governor, policy
    # models search|card|approvals|validate|retire, approve, governance; lineage flags
    governance.install(sub, models=models_sub, register=register, traffic_set=traffic_set)
    audit.add_commands(sub)  # audit, deployment at, retention apply, db
    convert.install(models=models_sub, register=register)  # register model.pkl, models optimize
    rollout.add_commands(sub)  # rollout status
    explain.add_commands(sub)  # explain
    log.add_commands(sub)  # log verify|query|show
    performance.add_commands(sub)  # performance
    contracts.add_commands(sub)  # contracts show|set
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit (see _stdout_closed)
        return code
    except REPORTED_ERRORS as exc:
        print(failure_message(exc), file=sys.stderr)
    except BrokenPipeError:
        return _stdout_closed()
    return EXIT_FAILED


def _stdout_closed() -> int:
    """The reader of our output went away (``onnxgate infer ... | head -1``): it has what it
    wanted, so exit quietly. stdout is pointed at /dev/null first, or the interpreter's own
    flush at exit would fail again and print "Exception ignored ... BrokenPipeError"."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
