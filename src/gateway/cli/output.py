"""What the ``onnxgate`` command says: tables for people, ``--json`` for scripts, exit codes.

Exit codes: :data:`EXIT_OK` (0), :data:`EXIT_FAILED` (1, one line on stderr, see
:func:`failure_message`), :data:`EXIT_USAGE` (2, argparse's own). A command raises
:class:`CliError` for a failure it can explain; registry, settings and gRPC errors are
reported the same way, as one line (:data:`REPORTED_ERRORS`); anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from gateway.settings import SettingsError
from registry.errors import RegistryError

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "REPORTED_ERRORS",
    "arm_order",
    "CliError",
    "emit",
    "failure_message",
    "print_table",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A failure to report as one line and exit 1."""


REPORTED_ERRORS = (CliError, RegistryError, SettingsError, grpc.RpcError, KeyboardInterrupt)
"""What :func:`gateway.cli.main` reports as one line and exit 1."""


def arm_order(version: str, role: str) -> tuple[bool, int, str]:
    """Sort key for a deployment's arms wherever they are printed: the champion first, then
    by version (whole numbers as numbers), whatever order a change listed them in."""
    return (role != "champion", int(version) if version.isdigit() else 1 << 62, version)


def print_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> None:
    """Left-aligned columns under a header and a rule of dashes."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def emit(args: argparse.Namespace, payload: Any, table: Callable[[], None]) -> None:
    """``payload`` as JSON with ``--json``, else whatever ``table`` prints."""
    if getattr(args, "json", False):
        print(json.dumps(payload, indent=2, default=str))
    else:
        table()


def failure_message(exc: BaseException) -> str:
    """The one stderr line for one of :data:`REPORTED_ERRORS`."""
    if isinstance(exc, grpc.RpcError):
        status = exc.code().name if hasattr(exc, "code") else "ERROR"
        detail = exc.details() if hasattr(exc, "details") else str(exc)
        return f"onnxgate: {status}: {detail}"
    if isinstance(exc, KeyboardInterrupt):
        return "onnxgate: interrupted"
    return f"onnxgate: {exc}"
