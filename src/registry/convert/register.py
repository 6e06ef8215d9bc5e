"""Convert a trained model, check its parity, and register it as an ONNX version.

:func:`convert_model` is the pure step (model + sample → ONNX bytes, parity, lineage);
:func:`register_model` is the Python API that also writes the version; the CLI's
``models register NAME model.pkl|.joblib|.txt|.json --sample FILE`` uses
:func:`convert_file` and then registers the bytes the ordinary way.

The lineage records where the version came from: the original artifact's sha256 and file
name (tags ``source.sha256``, ``source.file``), the converter and its version (tags
``converter``, ``converter.version``), the opset asked for (``converter.opset``), and the
parity figures (metrics ``parity.*``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from registry.convert.converters import Converted, to_onnx
from registry.convert.native import (
    ConversionError,
    Sample,
    as_sample,
    load_scanned,
    read_sample,
    require,
)
from registry.convert.parity import Parity, compare, native_answers, onnx_answers
from registry.lineage import Lineage

if TYPE_CHECKING:
    from registry.records import VersionRecord
    from registry.registry import Registry

__all__ = ["Conversion", "convert_file", "convert_model", "register_model", "run_onnx"]


@dataclass(frozen=True)
class Conversion:
    """A converted model ready to register: its bytes, parity and lineage."""

    onnx: bytes
    parity: Parity
    lineage: Lineage
    converted: Converted


def run_onnx(onnx: bytes, sample: Sample) -> tuple[list[Any], list[str]]:
    """Run ONNX bytes on a sample (fed per column when the model takes one input each)."""
    ort = require("onnxruntime", "running the converted model")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    if len(names) == 1:
        feeds = {names[0]: sample.values}
    else:
        columns = sample.columns or ()
        feeds = {n: sample.values[:, [columns.index(n)]] for n in names}
    return session.run(None, feeds), [o.name for o in session.get_outputs()]


def convert_model(
    model: Any,
    sample: Any,
    *,
    tolerance: float,
    opset: int | None = None,
    lineage: Lineage | None = None,
    source_sha256: str = "",
    source_file: str = "",
) -> Conversion:
    """Convert ``model``, compare it with the original on ``sample``; refuse
    (:class:`ConversionError`, figures in the message) beyond ``tolerance``."""
    rows = sample if isinstance(sample, Sample) else as_sample(sample, where="sample")
    converted = to_onnx(model, rows, opset=opset)
    original = native_answers(model, rows.values)
    outputs, names = run_onnx(converted.onnx, rows)
    try:
        parity = compare(original, onnx_answers(outputs, names, original.labels is not None))
    except ValueError as exc:
        raise ConversionError(
            f"cannot compare {type(model).__name__} with its ONNX: {exc}"
        ) from None
    if not np.isfinite(parity.max_abs_diff) or not parity.within(tolerance):
        raise ConversionError(
            f"{type(model).__name__} converted with {converted.converter} answers differently: "
            f"{parity.describe(tolerance)}; refusing to register it"
        )
    base = lineage or Lineage()
    tags = {
        **base.tags,
        "converter": converted.converter,
        "converter.version": converted.converter_version,
        "source.family": converted.family,
    }
    if opset is not None:
        tags["converter.opset"] = str(opset)
    if source_sha256:
        tags["source.sha256"] = source_sha256
    if source_file:
        tags["source.file"] = source_file
    merged = replace(base, tags=tags, metrics={**base.metrics, **parity.metrics()})
    return Conversion(converted.onnx, parity, merged.validated(), converted)


def convert_file(
    registry: Registry,
    path: Path,
    *,
    sample: Path,
    trust_pickle: bool = False,
    opset: int | None = None,
    lineage: Lineage | None = None,
    allow_pickle_modules: tuple[str, ...] = (),
) -> Conversion:
    """Load a model file (pickles only if trusted here or by policy, and scanned first:
    ``allow_pickle_modules`` extends the scan's allow-list) and convert it with the registry
    policy's tolerance. What the scan found is the lineage tag ``source.scan``."""
    policy = registry.governance.policy()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConversionError(f"cannot read {path}: {exc.strerror or exc}") from None
    model, scan = load_scanned(
        path, trust_pickle=trust_pickle or policy.trust_pickle, allow_modules=allow_pickle_modules
    )
    if scan:
        base = lineage or Lineage()
        lineage = replace(base, tags={**base.tags, "source.scan": scan})
    return convert_model(
        model,
        read_sample(sample),
        tolerance=policy.conversion_tolerance,
        opset=opset,
        lineage=lineage,
        source_sha256=hashlib.sha256(raw).hexdigest(),
        source_file=path.name,
    )


def register_model(
    registry: Registry,
    name: str,
    model: Any,
    *,
    sample: Any,
    opset: int | None = None,
    lineage: Lineage | None = None,
    actor: str = "api",
    **options: Any,
) -> VersionRecord:
    """Convert a trained model in memory and register it as a new version of ``name``.

    ``sample`` is an array or DataFrame of inputs (a DataFrame's columns name the inputs);
    ``options`` are :meth:`registry.Registry.register_version`'s (version, description...).
    The source sha256 is that of the model's pickle, computed here, never loaded back.
    """
    import pickle

    try:
        source = hashlib.sha256(pickle.dumps(model)).hexdigest()
    except Exception:  # noqa: BLE001 - an unpicklable model simply has no source hash
        source = ""
    conversion = convert_model(
        model,
        sample,
        tolerance=registry.governance.policy().conversion_tolerance,
        opset=opset,
        lineage=lineage,
        source_sha256=source,
    )
    return registry.register_version(
        name, conversion.onnx, actor=actor, lineage=conversion.lineage, **options
    )
