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
"""

from __future__ import annotations

import contextlib
import logging
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
) -> bytes:
    """The optimised model's bytes (the input is not modified)."""
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
        try:
            if quantize is not None:
                current = _quantize(current, work, quantize, calibration)
            if graph_level is not None:
                current = _graph_optimise(current, work, graph_level)
        except ConversionError:
            raise
        except Exception as exc:  # noqa: BLE001 - quantisation raises many types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConversionError(f"optimize failed: {first[:200]}") from None
        return current.read_bytes()


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


class _DropAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextlib.contextmanager
def _quiet_advice() -> Iterator[None]:
    # NOTE: onnxruntime logs this advice on the root logger at WARNING for every model;
    # a CLI would print it to stderr on every run, where only errors belong.
    root = logging.getLogger()
    advice = _DropAdvice()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


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
) -> Optimization:
    """Optimise ``model:version`` into a new child version (see the module docstring)."""
    parent = registry.get_version(model, version)
    source = registry.read_artifact(model, parent.version)
    child = optimize_bytes(
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
    return Optimization(record, parity, latency, parent_latency, len(child), len(source))
