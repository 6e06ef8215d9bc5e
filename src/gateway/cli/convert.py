"""Trained models in the CLI: ``models register NAME model.pkl|.joblib|.txt|.json --sample
FILE`` (conversion with parity) and ``models optimize NAME:VERSION`` (a child version).

The work is the registry's (:mod:`registry.convert`, through the registry's face); this
module adds the flags and turns results into lines. ``models register`` calls
:func:`converted_artifact` once, after reading the file, for a trained model's file.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gateway.cli.common import actor, open_registry, registry_opts, version_dict
from gateway.cli.governance import revalidate_if_profile_required
from gateway.cli.monitoring import reference_doc
from gateway.cli.output import EXIT_OK, CliError, emit

__all__ = ["converted_artifact", "install", "is_trained_model"]


def converted_artifact(args: argparse.Namespace, path: Path, lineage: Any) -> tuple[bytes, Any]:
    """A trained model's file → its ONNX bytes and lineage (with parity and source). The
    sample also becomes the version's reference unless ``--reference`` names another."""
    from registry import convert_file

    if args.sample is None:
        raise CliError(
            f"{path.name} is a trained model, not ONNX: give --sample FILE (.npy or .csv "
            "rows of its inputs) to convert it and check the conversion's parity"
        )
    reg = open_registry(args, create=True)  # registering may start a registry
    try:
        conversion = convert_file(
            reg,
            path,
            sample=Path(args.sample),
            trust_pickle=args.trust_pickle,
            opset=args.opset,
            lineage=lineage,
            allow_pickle_modules=tuple(args.allow_pickle_module or ()),
        )
    finally:
        reg.close()
    if not getattr(args, "reference", None):
        args.reference = args.sample
    return conversion.onnx, conversion.lineage


def is_trained_model(path: Path) -> bool:
    from registry import is_native

    return bool(is_native(path))


def cmd_models_optimize(args: argparse.Namespace) -> int:
    from registry import optimize_version, read_sample

    name, _, version = args.ref.partition(":")
    if not version:
        raise CliError(f"{args.ref!r}: expected NAME:VERSION")
    calibration = read_sample(Path(args.calibration)) if args.calibration else None
    sample = read_sample(Path(args.sample)) if args.sample else calibration
    if sample is None:
        raise CliError("optimize needs a reference sample: --sample FILE (or --calibration)")
    reg = open_registry(args)
    try:
        done = optimize_version(
            reg,
            name,
            version,
            sample=sample,
            quantize=args.quantize,
            graph_level=args.graph_level,
            calibration=calibration,
            actor=actor(),
            inherit_reference=not args.reference,
        )
        rec = _with_reference(args, reg, done.record)
    finally:
        reg.close()
    payload = {
        **version_dict(rec),
        "parent": f"{name}:{version}",
        "parity": done.parity.metrics(),
        "latency_p50_ms": {"parent": done.parent_latency_ms, "child": done.latency_ms},
        "size_bytes": {"parent": done.parent_size_bytes, "child": done.size_bytes},
    }

    def lines() -> None:
        print(f"registered {rec.model}:{rec.version} (child of {name}:{version}) [{rec.status}]")
        print(f"  parity   max |Δ| {done.parity.max_abs_diff:.3g} on {done.parity.rows} rows")
        print(f"  latency  {done.parent_latency_ms:.4f} ms -> {done.latency_ms:.4f} ms (p50)")
        print(f"  size     {done.parent_size_bytes} B -> {done.size_bytes} B")

    emit(args, payload, lines)
    return EXIT_OK


def _with_reference(args: argparse.Namespace, reg: Any, rec: Any) -> Any:
    """Store ``--reference`` as the child's profile (else it inherited its parent's), then
    re-validate where the policy requires a profile (registration validated before it)."""
    if args.reference:
        doc, summary = reference_doc(
            Path(args.reference), reg.read_artifact(rec.model, rec.version), {}
        )
        reg.set_profile(
            rec.model, rec.version, doc, source="reference", actor=actor(), summary=summary
        )
    if reg.get_profile(rec.model, rec.version) is None:
        return rec
    return revalidate_if_profile_required(reg, rec, actor())


def install(*, models: Any, register: argparse.ArgumentParser) -> None:
    """Add the conversion flags to ``models register`` and the ``models optimize`` command."""
    register.add_argument(
        "--sample", metavar="FILE",
        help="inputs (.npy, or .csv with a header naming the inputs) to convert a trained "
        "model's file and measure parity on (also its reference unless --reference)",
    )  # fmt: skip
    register.add_argument(
        "--trust-pickle", action="store_true",
        help="load a .pkl/.joblib model: unpickling runs code from the file (its imports "
        "are scanned first and refused outside the converters' libraries)",
    )  # fmt: skip
    register.add_argument(
        "--allow-pickle-module", action="append", metavar="MODULE",
        help="also allow a pickle to import from MODULE (repeatable); os, subprocess, "
        "eval/exec and the like stay refused",
    )  # fmt: skip
    register.add_argument("--opset", type=int, help="target ONNX opset of the conversion")
    op = models.add_parser("optimize", help="quantise/optimise NAME:VERSION into a child version")
    op.add_argument("ref", metavar="NAME:VERSION")
    op.add_argument(
        "--quantize", choices=("dynamic", "static"),
        help="int8 quantisation: dynamic (weights only) or static (needs --calibration)",
    )  # fmt: skip
    op.add_argument("--calibration", metavar="FILE", help="rows for static quantisation")
    op.add_argument(
        "--graph-level", choices=("basic", "extended", "all"),
        help="onnxruntime offline graph optimisation level",
    )  # fmt: skip
    op.add_argument("--sample", metavar="FILE", help="rows to measure parity and latency on")
    op.add_argument(
        "--reference", metavar="FILE",
        help="the child's reference sample (.npy/.npz/.csv); default: inherit the parent's",
    )  # fmt: skip
    registry_opts(op)
    op.set_defaults(func=cmd_models_optimize)
