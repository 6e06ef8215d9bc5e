"""``models optimize``: a quantised or graph-optimised child of a registered version.

onnxruntime's tools do the work — dynamic quantisation (weights to int8, activations at run
time), static quantisation (both, calibrated on a sample) and offline graph optimisation
(``--graph-level basic|extended|all``, the optimised graph saved by a session). The result
is registered as a NEW version whose lineage parent is the source, which is never changed:
it is a candidate like any other, for approval and rollout.

Its lineage records, side by side with the parent's figures: parity against the parent on
the reference sample (``parity.*``), median single-row latency (``latency.p50_ms``,
``latency.parent_p50_ms``) and size (``size.bytes``, ``size.parent_bytes``); the method in
tags ``optimize.method``, ``optimize.quantize``, ``optimize.graph_level``. The validation
report's ``parity`` check holds it to the policy's ``optimization_tolerance``.

Before quantising, the opset imports are normalised (one per domain, the default domain
present: converters write it twice or not at all), recorded in tag
``optimize.opset_normalised``; a model with nothing the quantiser rewrites (tree ensembles)
is refused ("nothing to quantise") rather than registered as a no-op child. The child
inherits its parent's reference profile (tag ``reference.inherited_from``) unless the caller
gives one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from registry.convert.native import ConversionError, Sample, require
from registry.convert.parity import Answers, Parity, compare
from registry.convert.register import run_onnx
from registry.lineage import Lineage
from registry.registration import Trust

if TYPE_CHECKING:
    from registry.records import VersionRecord
    from registry.registry import Registry

__all__ = ["QUANTIZE", "Optimization", "optimize_bytes", "optimize_version"]

QUANTIZE = ("dynamic", "static")
GRAPH_LEVELS = ("basic", "extended", "all")
LATENCY_RUNS = 200
DEFAULT_OPSET = 13  # per-channel QuantizeLinear/DequantizeLinear need at least 13


@dataclass(frozen=True)
class Optimization:
    """The child version and the figures recorded with it."""

    record: VersionRecord
    parity: Parity
    latency_ms: float
    parent_latency_ms: float
    size_bytes: int
    parent_size_bytes: int


def optimize_bytes(
    onnx: bytes,
    *,
    quantize: str | None,
    graph_level: str | None,
    calibration: Sample | None,
) -> tuple[bytes, str]:
    """The optimised model's bytes (the input is not modified) and what was done to its
    opset imports first ("" when nothing: see :func:`normalise_opsets`)."""
    if quantize is None and graph_level is None:
        raise ConversionError("optimize: give --quantize dynamic|static and/or --graph-level")
    if quantize is not None and quantize not in QUANTIZE:
        raise ConversionError(f"--quantize {quantize!r}: expected dynamic or static")
    if graph_level is not None and graph_level not in GRAPH_LEVELS:
        raise ConversionError(f"--graph-level {graph_level!r}: expected basic, extended or all")
    if quantize == "static" and calibration is None:
        raise ConversionError("--quantize static needs --calibration FILE (rows of inputs)")
    with tempfile.TemporaryDirectory(prefix="onnxgate-optimize-") as tmp:
        work = Path(tmp)
        current = work / "source.onnx"
        current.write_bytes(onnx)
        normalised = ""
        try:
            if quantize is not None:
                fixed, normalised = normalise_opsets(onnx)
                if not _quantisable(fixed, quantize):
                    raise _nothing_to_quantise(quantize)
                current.write_bytes(fixed)
                current = _quantize(current, work, quantize, calibration)
                if not _quantised_anything(current.read_bytes()):
                    raise _nothing_to_quantise(quantize)
            if graph_level is not None:
                current = _graph_optimise(current, work, graph_level)
        except ConversionError:
            raise
        except Exception as exc:  # noqa: BLE001 - quantisation raises many types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConversionError(f"optimize failed: {first[:200]}") from None
        return current.read_bytes(), normalised


def normalise_opsets(onnx: bytes) -> tuple[bytes, str]:
    """The model with exactly one import per opset domain, and what changed ("" if nothing).

    onnxruntime's quantiser needs exactly one default-domain ("ai.onnx") import. skl2onnx
    writes that import twice on pipelines; onnxmltools' XGBoost conversion writes none, its
    graph being ai.onnx.ml operators only. A duplicate keeps its highest version; a missing
    default domain is added at the opset the quantiser's own operators need.
    """
    import onnx as onnx_lib

    model = onnx_lib.load_from_string(onnx)
    versions: dict[str, list[int]] = {}
    for imp in model.opset_import:
        versions.setdefault("" if imp.domain == "ai.onnx" else imp.domain, []).append(imp.version)
    notes = [
        f"{_domain(d)} imported {len(v)} times (kept opset {max(v)})"
        for d, v in versions.items()
        if len(v) > 1
    ]
    if "" not in versions:
        versions[""] = [DEFAULT_OPSET]
        notes.append(f"no {_domain('')} import (added opset {DEFAULT_OPSET})")
    if not notes:
        return onnx, ""
    del model.opset_import[:]
    for domain, found in versions.items():
        model.opset_import.append(onnx_lib.helper.make_opsetid(domain, max(found)))
    return model.SerializeToString(), "; ".join(notes)


def _domain(domain: str) -> str:
    return "the default domain (ai.onnx)" if domain == "" else f"domain {domain}"


def _nothing_to_quantise(mode: str) -> ConversionError:
    return ConversionError(
        f"nothing to quantise: the model has no operator that {mode} quantisation rewrites "
        "(tree ensembles and scikit-learn's linear models convert to ai.onnx.ml operators, "
        "which keep their float weights); no child registered"
    )


def _quantisable(onnx: bytes, mode: str) -> bool:
    """Whether any default-domain operator is one the quantiser of ``mode`` rewrites."""
    import onnx as onnx_lib

    registries = require("onnxruntime.quantization.registry", "quantisation")
    ops = registries.IntegerOpsRegistry if mode == "dynamic" else registries.QDQRegistry
    graph = onnx_lib.load_from_string(onnx).graph
    return any(n.domain in ("", "ai.onnx") and n.op_type in ops for n in graph.node)


def _quantised_anything(onnx: bytes) -> bool:
    import onnx as onnx_lib

    graph = onnx_lib.load_from_string(onnx).graph
    # NOTE: every operator the quantiser writes says so in its name (QuantizeLinear,
    # DynamicQuantizeLinear, MatMulInteger, QLinearConv, QGemm, QAttention, ...).
    return any(
        "Quantize" in n.op_type or "Integer" in n.op_type or n.op_type.startswith("Q")
        for n in graph.node
    )


def _quantize(source: Path, work: Path, mode: str, calibration: Sample | None) -> Path:
    quantization = require("onnxruntime.quantization", "quantisation")
    target = work / f"quantized-{mode}.onnx"
    if mode == "dynamic":
        with _quiet_advice():
            quantization.quantize_dynamic(source, target, weight_type=quantization.QuantType.QInt8)
        return target
    if calibration is None:
        raise ConversionError("--quantize static needs --calibration FILE (rows of inputs)")
    rows = calibration
    onnx = source.read_bytes()
    names = _input_names(onnx)

    class Reader(quantization.CalibrationDataReader):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            self._rows = iter(range(rows.values.shape[0]))

        def get_next(self) -> dict[str, Any] | None:
            i = next(self._rows, None)
            return None if i is None else _feeds(names, rows, slice(i, i + 1))

    with _quiet_advice():
        quantization.quantize_static(source, target, Reader())
    return target


class _DropOnnxruntime(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or _ORT_PATH not in record.pathname


_ORT_PATH = f"{os.sep}onnxruntime{os.sep}"


@contextlib.contextmanager
def _quiet_advice() -> Iterator[None]:
    # NOTE: onnxruntime's quantiser logs advice and notes ("consider pre-processing",
    # "inference failed or unsupported type", ...) on the root logger at WARNING; a CLI
    # would print them to stderr on every run, where only errors belong. Its own named
    # loggers ("onnxruntime.quantization.*") are held at ERROR for the same reason.
    # And ``logging.warning()`` installs a stderr handler on a root logger that has none
    # (even for a record a filter then drops), so every later warning of the process would
    # print: a NullHandler stands in for the call.
    root = logging.getLogger()
    named = logging.getLogger("onnxruntime")
    level = named.level
    quiet = _DropOnnxruntime()
    stand_in = logging.NullHandler() if not root.handlers else None
    root.addFilter(quiet)
    named.setLevel(logging.ERROR)
    if stand_in is not None:
        root.addHandler(stand_in)
    try:
        yield
    finally:
        root.removeFilter(quiet)
        named.setLevel(level)
        if stand_in is not None:
            root.removeHandler(stand_in)


def _graph_optimise(source: Path, work: Path, level: str) -> Path:
    ort = require("onnxruntime", "graph optimisation")
    levels = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    target = work / f"optimized-{level}.onnx"
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[level]
    options.optimized_model_filepath = str(target)
    options.log_severity_level = 3
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    return target


def _input_names(onnx: bytes) -> list[str]:
    ort = require("onnxruntime", "reading the model's inputs")
    session = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    return [i.name for i in session.get_inputs()]


def _feeds(names: list[str], sample: Sample, rows: slice) -> dict[str, Any]:
    if len(names) == 1:
        return {names[0]: sample.values[rows]}
    columns = sample.columns or ()
    return {n: sample.values[rows, [columns.index(n)]] for n in names}


def _answers(outputs: list[Any]) -> Answers:
    floats = [np.asarray(o, dtype=np.float64) for o in outputs if np.asarray(o).dtype.kind == "f"]
    others = [np.asarray(o) for o in outputs if np.asarray(o).dtype.kind != "f"]
    if not floats:
        raise ConversionError("optimize: the model has no float output to compare")
    rows = floats[0].shape[0]
    scores = np.concatenate([f.reshape(rows, -1) for f in floats], axis=1)
    return Answers(scores, others[0] if others else None)


def median_latency_ms(onnx: bytes, sample: Sample, runs: int = LATENCY_RUNS) -> float:
    """Median wall time of one single-row run, on one thread (so runs compare)."""
    ort = require("onnxruntime", "measuring latency")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    count = sample.values.shape[0]
    feeds = [_feeds(names, sample, slice(i % count, i % count + 1)) for i in range(runs)]
    session.run(None, feeds[0])  # warm-up
    times = []
    for feed in feeds:
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def optimize_version(
    registry: Registry,
    model: str,
    version: str,
    *,
    sample: Sample,
    quantize: str | None = None,
    graph_level: str | None = None,
    calibration: Sample | None = None,
    actor: str = "api",
    inherit_reference: bool = True,
) -> Optimization:
    """Optimise ``model:version`` into a new child version (see the module docstring).

    The child answers like its parent (the parity check holds it to that), so it inherits
    the parent's reference profile unless ``inherit_reference`` is False (the caller gives
    one): lineage tag ``reference.inherited_from`` names the parent.
    """
    parent = registry.get_version(model, version)
    inherited = registry.get_profile(model, parent.version) if inherit_reference else None
    source = registry.read_artifact(model, parent.version)
    child, normalised = optimize_bytes(
        source, quantize=quantize, graph_level=graph_level, calibration=calibration
    )
    try:
        before, _ = run_onnx(source, sample)
        after, _ = run_onnx(child, sample)
    except ValueError as exc:
        raise ConversionError(f"optimize: the sample does not fit {model}: {exc}") from None
    parity = compare(_answers(before), _answers(after))
    tolerance = registry.governance.policy().optimization_tolerance
    if not np.isfinite(parity.max_abs_diff) or parity.max_abs_diff > tolerance * parity.scale:
        raise ConversionError(
            f"optimised {model}:{parent.version} answers differently from it: "
            f"{parity.describe(tolerance)}; refusing to register it"
        )
    latency, parent_latency = median_latency_ms(child, sample), median_latency_ms(source, sample)
    parts = [
        f"quantize-{quantize}" if quantize else "",
        f"graph-{graph_level}" if graph_level else "",
    ]
    method = "+".join(p for p in parts if p)
    tags = {"optimize.method": method, "source.family": "onnx"}
    if quantize:
        tags["optimize.quantize"] = quantize
    if graph_level:
        tags["optimize.graph_level"] = graph_level
    if normalised:
        tags["optimize.opset_normalised"] = normalised
    if inherited is not None:
        tags["reference.inherited_from"] = f"{model}:{parent.version}"
    metrics = {
        **parity.metrics(),
        "latency.p50_ms": latency,
        "latency.parent_p50_ms": parent_latency,
        "size.bytes": float(len(child)),
        "size.parent_bytes": float(len(source)),
    }
    lineage = Lineage(
        parent=f"{model}:{parent.version}",
        training_data=parent.lineage.training_data,
        training_data_sha256=parent.lineage.training_data_sha256,
        code_ref=parent.lineage.code_ref,
        license=parent.lineage.license,
        tags=tags,
        metrics=metrics,
    )
    record = registry.register_version(
        model,
        child,
        description=f"{method} of {model}:{parent.version}",
        owner=parent.owner,
        actor=actor,
        lineage=lineage,
        trust=Trust(inherit_from=f"{model}:{parent.version}"),  # source signature, who ran it
    )
    if inherited is not None:
        doc, origin = inherited
        registry.set_profile(
            model,
            record.version,
            doc,
            source=origin,
            actor=actor,
            summary={"inherited_from": f"{model}:{parent.version}"},
        )
    return Optimization(record, parity, latency, parent_latency, len(child), len(source))
