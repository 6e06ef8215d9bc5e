"""Shadow scoring: mirrored requests run on shadow versions and compared with what served.

Tap (the data plane's tap thread): :meth:`ShadowScorer.observe` takes one
:class:`~gateway.serving.taps.TapRecord` of a served request. For each shadow version
``targets`` picks for it (the catalog's ``shadows``: each with its configured fraction) it
submits the request's input arrays and the served outputs to the scorer's *own*
executor. At most ``queue_size`` shadow runs may be waiting or running; beyond that the
copy is dropped and counted, so a slow shadow never slows, blocks or fails the caller.

Executor thread: runs the shadow version's session directly (not through its batcher,
which belongs to the event loop), compares outputs with the served ones
(:func:`compare_outputs`), tallies per (model, shadow version, served version) and hands
the shadow's outputs to the monitor so that they feed the shadow version's own windows,
and, with the prediction log on (``record``), hands it the shadow's answer as a record of
its own: role ``shadow``, the same request id, the shadow version, its outputs and latency
(a failed shadow run is a record too, with its status and no outputs).

Comparison: for classifiers, label agreement (an integer output named like ``label``, else
the argmax of a 2-D float output named like ``prob``); for every model, the mean and max
absolute difference of the first floating-point output both sides returned.

NOTE: the inputs are handed over by reference: they are read-only numpy views over the
request's immutable bytes, and onnxruntime only reads them.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from gateway.domain import Tensors
from gateway.traces import RequestTrace, Tracing
from registry.signature import Signature

if TYPE_CHECKING:
    from gateway.serving.taps import TapRecord

__all__ = [
    "Comparison",
    "OutputKinds",
    "ShadowReport",
    "ShadowScorer",
    "ShadowSnapshot",
    "ShadowVersion",
    "compare_outputs",
]

log = logging.getLogger(__name__)


class ShadowVersion(Protocol):
    """What the scorer needs of a shadow version (``runtime.LoadedVersion`` has it)."""

    @property
    def model(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def signature(self) -> Signature: ...

    def run(self, inputs: Tensors) -> Tensors:
        """Blocking inference (called on the scorer's executor thread)."""
        ...


Feed = Callable[[ShadowVersion, Tensors, Tensors], None]
Record = Callable[["TapRecord"], None]


@dataclass(frozen=True)
class OutputKinds:
    """Which outputs a comparison uses, from the signature (names and datatypes)."""

    label: str | None = None  # integer class label
    probabilities: str | None = None  # 2-D float scores; argmax is the label
    numeric: tuple[str, ...] = ()  # float outputs, in order, for the abs difference

    @classmethod
    def from_signature(cls, signature: Signature) -> OutputKinds:
        label = probabilities = None
        numeric: list[str] = []
        for spec in signature.outputs:
            lowered = spec.name.lower()
            is_float = spec.datatype in ("FP16", "FP32", "FP64")
            if is_float:
                numeric.append(spec.name)
            if label is None and "label" in lowered and spec.datatype.startswith(("INT", "UINT")):
                label = spec.name
            wide = len(spec.shape) == 2 and spec.shape[1] != 1
            if probabilities is None and is_float and wide and "prob" in lowered:
                probabilities = spec.name
        return cls(label, probabilities, tuple(numeric))

    @property
    def classifier(self) -> bool:
        return self.label is not None or self.probabilities is not None


@dataclass(frozen=True)
class Comparison:
    """One request's shadow-vs-served comparison."""

    rows: int
    agree: int | None  # rows with the same label; None when labels could not be compared
    diff_sum: float = 0.0
    diff_count: int = 0
    diff_max: float = 0.0


def _labels(kinds: OutputKinds, out: Tensors) -> npt.NDArray[np.generic] | None:
    if kinds.label is not None and kinds.label in out:
        return out[kinds.label].reshape(-1)
    if kinds.probabilities is not None and kinds.probabilities in out:
        scores = out[kinds.probabilities]
        labels: npt.NDArray[np.intp] = np.argmax(scores.reshape(scores.shape[0], -1), axis=1)
        return labels
    return None


def compare_outputs(kinds: OutputKinds, served: Tensors, shadow: Tensors) -> Comparison:
    """Compare one request's outputs (vectorised over rows; missing outputs are skipped)."""
    rows = next((int(a.shape[0]) for a in served.values() if a.ndim), 1)
    agree = None
    a, b = _labels(kinds, served), _labels(kinds, shadow)
    if a is not None and b is not None and a.shape == b.shape:
        agree = int(np.count_nonzero(a == b))
    for name in kinds.numeric:
        x, y = served.get(name), shadow.get(name)
        if x is None or y is None or x.shape != y.shape or not x.size:
            continue
        diff = np.abs(x.astype(np.float64) - y.astype(np.float64))
        return Comparison(rows, agree, float(diff.sum()), int(diff.size), float(diff.max()))
    return Comparison(rows, agree)


@dataclass
class _Tally:
    requests: int = 0
    rows: int = 0
    errors: int = 0
    compared_rows: int = 0
    agree_rows: int = 0
    diff_sum: float = 0.0
    diff_count: int = 0
    diff_max: float = 0.0
    latency_sum: float = 0.0
    latency_max: float = 0.0
    classifier: bool = False

    def add(self, c: Comparison, latency_s: float) -> None:
        self.requests += 1
        self.rows += c.rows
        if c.agree is not None:
            self.compared_rows += c.rows
            self.agree_rows += c.agree
        self.diff_sum += c.diff_sum
        self.diff_count += c.diff_count
        self.diff_max = max(self.diff_max, c.diff_max)
        self.latency_sum += latency_s
        self.latency_max = max(self.latency_max, latency_s)


@dataclass(frozen=True)
class ShadowReport:
    """Cumulative comparison of one shadow version with one served version."""

    model: str
    version: str  # the shadow version
    served_version: str
    requests: int
    rows: int
    errors: int
    classifier: bool
    compared_rows: int
    agreement: float  # NaN when labels were never compared
    mean_abs_diff: float  # NaN when no float output was compared
    max_abs_diff: float
    latency_sum_s: float
    latency_max_s: float

    @property
    def latency_mean_s(self) -> float:
        return self.latency_sum_s / self.requests if self.requests else math.nan


@dataclass(frozen=True)
class ShadowSnapshot:
    reports: tuple[ShadowReport, ...] = ()
    dropped: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    pending: int = 0

    def for_model(self, model: str) -> tuple[ShadowReport, ...]:
        return tuple(r for r in self.reports if r.model == model)


class ShadowScorer:
    """Runs mirrored requests on shadow versions off the request path (see module docs)."""

    def __init__(
        self,
        targets: Callable[[str], tuple[ShadowVersion, ...]],
        *,
        queue_size: int,
        threads: int = 1,
        feed: Feed | None = None,
        record: Record | None = None,
        versions: Callable[[], Iterable[tuple[str, str]]] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        tracing: Tracing | None = None,
    ) -> None:
        self._targets = targets
        # Only with an exporter: a traced call's shadow runs become spans of its trace.
        self._tracing = tracing if tracing is not None and tracing.export is not None else None
        self._queue_size = queue_size
        self._feed = feed
        self._record = record
        self._versions = versions
        self._clock = clock
        self._executor = concurrent.futures.ThreadPoolExecutor(
            threads, thread_name_prefix="onnxgate-shadow"
        )
        self._submitted = 0  # tap thread only
        self._dropped: dict[str, int] = {}  # tap thread only
        self._lock = threading.Lock()  # tallies and _finished (executor threads)
        self._finished = 0
        self._tallies: dict[tuple[str, str, str], _Tally] = {}
        self._kinds: dict[int, OutputKinds] = {}

    def observe(self, record: TapRecord) -> None:
        """The tap: submit a shadow run per target, or count a drop. Never blocks."""
        for target in self._targets(record.model):
            if target.version == record.version:
                continue  # a request pinned to the shadow version itself
            if self._submitted - self._finished >= self._queue_size:
                self._drop(record.model)
                continue
            try:
                self._executor.submit(
                    self._score, target, record,
                    None if self._tracing is None else record.trace,
                )  # fmt: skip
            except RuntimeError:  # shutting down
                self._drop(record.model)
                continue
            self._submitted += 1

    def _drop(self, model: str) -> None:
        self._dropped[model] = self._dropped.get(model, 0) + 1

    def _score(
        self, loaded: ShadowVersion, served_record: TapRecord, trace: RequestTrace | None = None
    ) -> None:
        inputs, served = served_record.inputs, served_record.outputs
        key = (loaded.model, loaded.version, served_record.version)
        try:
            start = self._clock()
            began = time.perf_counter()
            try:
                out = loaded.run(inputs)
            except Exception as exc:  # noqa: BLE001 - a failing shadow is data, not an outage
                with self._lock:
                    self._tally(key, loaded).errors += 1
                log.debug("shadow %s:%s failed: %s", loaded.model, loaded.version, exc)
                if trace is not None and self._tracing is not None:
                    self._tracing.shadow(trace, loaded.version, began, time.perf_counter(), False)
                status = str(getattr(exc, "code", "INTERNAL"))
                self._log(loaded, served_record, {}, status, self._clock() - start)
                return
            if trace is not None and self._tracing is not None:
                self._tracing.shadow(trace, loaded.version, began, time.perf_counter(), True)
            latency = self._clock() - start
            self._log(loaded, served_record, out, "OK", latency)
            comparison = compare_outputs(self._kinds_of(loaded), served, out)
            with self._lock:
                self._tally(key, loaded).add(comparison, latency)
            if self._feed is not None:
                self._feed(loaded, inputs, out)
        except Exception:  # never let a comparison bug kill the executor
            log.exception("shadow scoring of %s:%s failed", loaded.model, loaded.version)
        finally:
            with self._lock:
                self._finished += 1

    def _log(
        self, loaded: ShadowVersion, served: TapRecord, out: Tensors, status: str, latency: float
    ) -> None:
        if self._record is None:
            return
        shadow = served._replace(
            version=loaded.version,
            role="shadow",
            outputs=out,
            signature=loaded.signature,
            status=status,
            latency_us=int(latency * 1e6),
            time_us=time.time_ns() // 1000,
            sha256=getattr(loaded, "sha256", ""),  # a LoadedVersion's; stand-ins may lack it
        )
        try:
            self._record(shadow)
        except Exception:  # the log counts its own failures; scoring goes on
            log.exception("prediction log of shadow %s:%s failed", loaded.model, loaded.version)

    def _kinds_of(self, loaded: ShadowVersion) -> OutputKinds:
        kinds = self._kinds.get(id(loaded.signature))
        if kinds is None:
            kinds = OutputKinds.from_signature(loaded.signature)
            self._kinds[id(loaded.signature)] = kinds
        return kinds

    def _tally(self, key: tuple[str, str, str], loaded: ShadowVersion) -> _Tally:
        tally = self._tallies.get(key)
        if tally is None:
            tally = _Tally(classifier=self._kinds_of(loaded).classifier)
            self._tallies[key] = tally
        return tally

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted shadow run has finished (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._submitted > self._finished:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def snapshot(self) -> ShadowSnapshot:
        """Cumulative reports of shadow versions still loaded (all, without a provider)."""
        active = None if self._versions is None else set(self._versions())
        with self._lock:
            items = list(self._tallies.items())
            pending = self._submitted - self._finished
        reports = []
        for (model, version, served_version), t in sorted(items):
            if active is not None and (model, version) not in active:
                continue
            reports.append(
                ShadowReport(
                    model=model,
                    version=version,
                    served_version=served_version,
                    requests=t.requests,
                    rows=t.rows,
                    errors=t.errors,
                    classifier=t.classifier,
                    compared_rows=t.compared_rows,
                    agreement=t.agree_rows / t.compared_rows if t.compared_rows else math.nan,
                    mean_abs_diff=t.diff_sum / t.diff_count if t.diff_count else math.nan,
                    max_abs_diff=t.diff_max if t.diff_count else math.nan,
                    latency_sum_s=t.latency_sum,
                    latency_max_s=t.latency_max,
                )
            )
        return ShadowSnapshot(tuple(reports), MappingProxyType(dict(self._dropped)), pending)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
