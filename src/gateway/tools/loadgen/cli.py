"""The load flags (``onnxgate bench`` and ``benchmarks/loadgen.py``) and the command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from gateway.tools.loadgen.report import format_summary
from gateway.tools.loadgen.runner import run
from gateway.tools.loadgen.spec import LoadSpec

__all__ = ["add_arguments", "main", "run_from_args", "spec_from_args"]

_DESCRIPTION = "Load generator for the Open Inference Protocol."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The load flags, shared by ``onnxgate bench`` and ``benchmarks/loadgen.py``."""
    target = os.environ.get("ONNXGATE_TARGET", "127.0.0.1:8001")
    p.add_argument("--target", default=target, help="HOST:PORT (env ONNXGATE_TARGET)")
    p.add_argument("--model", required=True, help="model to call")
    p.add_argument("--model-version", default="", help="pin a version (default: routed)")
    p.add_argument("--concurrency", type=int, default=64, help="callers (open loop: cap in flight)")
    p.add_argument("--rate", type=float, help="open loop: target requests/s")
    p.add_argument(
        "--arrival",
        choices=("poisson", "uniform"),
        default="poisson",
        help="open loop: inter-arrival times",
    )
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds not measured")
    p.add_argument("--rows", type=int, default=1, help="batch rows per request")
    p.add_argument(
        "--samples", type=int, default=16,
        help="distinct prebuilt random inputs (--input sends every row of its file instead)",
    )  # fmt: skip
    p.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="[NAME=]FILE.npy",
        help="input rows from a .npy file, all of them (default: random rows from the model's "
        "metadata)",
    )
    p.add_argument("--keys", type=int, default=0, help="routing keys in the pool (0: none)")
    p.add_argument("--ids", action="store_true", help="request ids (predictions kept)")
    p.add_argument("--unique-ids", action="store_true", help="a new id on every request")
    p.add_argument(
        "--contents",
        choices=("raw", "typed"),
        default="raw",
        help="send raw_input_contents or typed contents",
    )
    p.add_argument(
        "--stream",
        action="store_true",
        help="send over ModelStreamInfer, one stream per connection (closed loop)",
    )
    p.add_argument("--procs", type=int, default=1, help="client processes")
    p.add_argument("--connections", type=int, default=0, help="per process (0: min(c, 8))")
    p.add_argument("--timeout", type=float, default=30.0, help="per-call deadline, seconds")
    p.add_argument("--seed", type=int, default=0, help="random seed for inputs and arrivals")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--json", metavar="PATH", help="write the summary as JSON")


def spec_from_args(args: argparse.Namespace) -> LoadSpec:
    inputs = tuple((name, path) for name, _, path in (i.rpartition("=") for i in args.input))
    return LoadSpec(
        target=args.target,
        model=args.model,
        version=args.model_version,
        concurrency=args.concurrency,
        rate=args.rate,
        arrival=args.arrival,
        duration_s=args.duration,
        warmup_s=args.warmup,
        rows=args.rows,
        samples=args.samples,
        inputs=inputs,
        keys=args.keys,
        ids=args.ids,
        unique_ids=args.unique_ids,
        contents=args.contents,
        procs=args.procs,
        connections=args.connections,
        timeout_s=args.timeout,
        seed=args.seed,
        progress=not args.quiet,
        stream=args.stream,
    )


def run_from_args(
    args: argparse.Namespace,
    *,
    metadata: tuple[tuple[str, str], ...] = (),
    tls: tuple[bytes | None, bytes | None, bytes | None] | None = None,
) -> int:
    """Run, print the summary, write ``--json``; exit 0, 1 if no request succeeded, 2 on
    bad arguments. ``metadata`` goes with every call (``onnxgate bench`` puts the predict
    token there); ``tls`` is (CA, certificate, key) PEM for a TLS channel."""
    try:
        spec = replace(spec_from_args(args), metadata=metadata, tls=tls)
    except ValueError as exc:
        print(f"loadgen: {exc}", file=sys.stderr)
        return 2
    result = run(spec)
    print(format_summary(result))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["ok"] else 1


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="loadgen", description=_DESCRIPTION)
    add_arguments(p)
    return run_from_args(p.parse_args(argv))
