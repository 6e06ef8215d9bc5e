"""Replay: run a candidate version over the logged inputs of a period and compare its
answers with what was served.

:func:`logged_batches` streams the primary records (not shadow ones) of one model that
were answered ``OK`` and kept their inputs, between ``since`` (inclusive) and ``until``
(exclusive), from the closed Parquet files. :func:`replay` runs a candidate — any
``Tensors -> Tensors`` callable; the CLI loads the registry artifact with onnxruntime — on
each record's inputs, exactly as they were sent, and compares with the logged outputs:
the share of records whose every output is bit-for-bit the same, per output the exact share
and the largest absolute difference, and for classifiers the share of rows whose label
agrees (the same label rule as shadow scoring, :class:`~gateway.monitoring.shadow.OutputKinds`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from gateway.domain import Tensors
from gateway.monitoring.shadow import OutputKinds, compare_outputs
from gateway.predictionlog.record import decode_tensors

__all__ = ["OutputAgreement", "ReplayReport", "logged_batches", "onnx_candidate", "replay"]

_COLUMNS = ["request_id", "version", "inputs", "outputs"]


@dataclass
class OutputAgreement:
    """One output across the replayed records."""

    compared: int = 0  # records where both sides returned it
    exact: int = 0  # ...bit for bit the same (dtype, shape and bytes)
    max_abs_diff: float = 0.0  # numeric outputs only

    def to_dict(self) -> dict[str, Any]:
        share = self.exact / self.compared if self.compared else None
        return {"compared": self.compared, "exact": self.exact, "exact_share": share,
                "max_abs_diff": self.max_abs_diff}  # fmt: skip


@dataclass
class ReplayReport:
    """What :func:`replay` found; shares are None when nothing was compared."""

    records: int = 0  # logged records replayed
    exact: int = 0  # records whose every output matched bit for bit
    failed: int = 0  # records the candidate refused or failed on
    served_versions: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, OutputAgreement] = field(default_factory=dict)
    label_rows: int = 0
    label_agree: int = 0
    rows: int = 0
    seconds: float = 0.0

    @property
    def exact_share(self) -> float | None:
        return self.exact / self.records if self.records else None

    @property
    def label_agreement(self) -> float | None:
        return self.label_agree / self.label_rows if self.label_rows else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "rows": self.rows,
            "failed": self.failed,
            "exact": self.exact,
            "exact_share": self.exact_share,
            "label_agreement": self.label_agreement,
            "label_rows": self.label_rows,
            "served_versions": dict(sorted(self.served_versions.items())),
            "outputs": {name: o.to_dict() for name, o in sorted(self.outputs.items())},
            "seconds": self.seconds,
        }


def logged_batches(
    directory: Path,
    model: str,
    since: datetime | None = None,
    until: datetime | None = None,
    batch_rows: int = 1024,
) -> Iterator[pa.RecordBatch]:
    """The replayable records of ``model`` (see the module docstring), in batches."""
    folder = directory / f"model={quote(model, safe='')}"
    files = sorted(str(p) for p in folder.rglob("*.parquet")) if folder.is_dir() else []
    if not files:
        return
    wanted = (pc.field("role") != "shadow") & (pc.field("status") == "OK")
    stamp = pa.timestamp("us", tz="UTC")
    if since is not None:
        wanted &= pc.field("time") >= pa.scalar(since, stamp)
    if until is not None:
        wanted &= pc.field("time") < pa.scalar(until, stamp)
    dataset = ds.dataset(files, format="parquet")
    for batch in dataset.to_batches(columns=_COLUMNS, filter=wanted, batch_size=batch_rows):
        if batch.num_rows:
            yield batch


def _same(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and bool(np.array_equal(a, b))


def replay(
    batches: Iterable[pa.RecordBatch],
    candidate: Callable[[Tensors], Tensors],
    kinds: OutputKinds,
) -> ReplayReport:
    """Run ``candidate`` over every record of ``batches`` and compare (see module docs).
    Records logged without inputs (``prediction_log_inputs = false``) are never selected:
    they have nothing to replay."""
    report = ReplayReport()
    start = time.perf_counter()
    for batch in batches:
        for row in batch.to_pylist():
            if not row["inputs"]:
                continue
            inputs, served = decode_tensors(row["inputs"]), decode_tensors(row["outputs"])
            version = str(row["version"])
            report.served_versions[version] = report.served_versions.get(version, 0) + 1
            report.records += 1
            try:
                answer = candidate(inputs)
            except Exception:  # noqa: BLE001 - a candidate refusing a record is a finding
                report.failed += 1
                continue
            _compare(report, kinds, served, answer)
    report.seconds = time.perf_counter() - start
    return report


def _compare(report: ReplayReport, kinds: OutputKinds, served: Tensors, answer: Tensors) -> None:
    every = True
    for name, logged in served.items():
        agreement = report.outputs.setdefault(name, OutputAgreement())
        got = answer.get(name)
        if got is None:
            every = False
            continue
        agreement.compared += 1
        if _same(logged, got):
            agreement.exact += 1
        else:
            every = False
        numeric = logged.dtype.kind in "fiub" and got.dtype.kind in "fiub"
        if numeric and logged.shape == got.shape and logged.size:
            diff = np.abs(logged.astype(np.float64) - got.astype(np.float64))
            agreement.max_abs_diff = max(agreement.max_abs_diff, float(diff.max()))
    report.exact += every
    comparison = compare_outputs(kinds, served, answer)
    report.rows += comparison.rows
    if comparison.agree is not None:
        report.label_rows += comparison.rows
        report.label_agree += comparison.agree


def onnx_candidate(artifact: bytes) -> tuple[Callable[[Tensors], Tensors], OutputKinds]:
    """A candidate over an ONNX artifact (onnxruntime, CPU, every output) and its output
    kinds, from the session's signature."""
    import onnxruntime as ort

    from registry.signature import signature_from_session

    session = ort.InferenceSession(artifact, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]

    def run(inputs: Tensors) -> Tensors:
        return dict(zip(names, session.run(None, dict(inputs)), strict=True))

    return run, OutputKinds.from_signature(signature_from_session(session))
