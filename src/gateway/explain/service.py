"""Explanations of one model version's outputs, off the predict path.

:class:`Explainer` answers the ``Explain`` RPC: rows given by the caller, or the inputs of
a prediction served earlier (by its request id, from the request journal beside the
label join's record, :mod:`gateway.governor.journal`). Each explanation runs on the
explainer's own bounded executor, never the inference pool: at most ``queue`` explanations
are queued or running, more is RESOURCE_EXHAUSTED; a caller that waits past its deadline
gets DEADLINE_EXCEEDED (the work stops at its next explained row, and only then frees its
slot, so the bound holds).

The black box is the version's own ``InferenceSession`` (the one serving it), run once on
every perturbed row of one explained row; the background is the version's stored
reference sample (:mod:`gateway.monitoring.reference`), summarised to at most
``background`` weighted rows and cached per version.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gateway.domain import Tensors
from gateway.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    GatewayError,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from gateway.explain.background import Background, summarise
from gateway.explain.counters import ExplainCounters
from gateway.explain.kernel import METHOD, explain_rows, require_shap
from gateway.explain.outputs import OutputChoice, choose_output
from gateway.explain.process import Job, ProcessPool, start_pool
from gateway.messages import quoted
from gateway.monitoring.layout import FeatureLayout
from gateway.monitoring.reference import VersionProfiles
from gateway.serving.catalog import Catalog
from gateway.serving.runtime import LoadedVersion
from registry import Registry
from registry.datatypes import DATATYPE_TO_NUMPY
from registry.errors import NotFoundError as RegistryNotFound

__all__ = ["Explainer", "Explanation", "Lookup", "VersionModel"]

FloatArray = npt.NDArray[np.float64]
Lookup = Callable[[str, str], Awaitable["tuple[str, Tensors] | None"]]
"""(model, request id) -> the version that served it and its inputs, once the taps settled
(:meth:`gateway.operations.Labels.recorded_inputs`, the label join's own lookup)."""
MAX_CACHED_VERSIONS = 64  # version models (background, its outputs) kept, least recent out
CHUNK_ROWS = 65_536  # perturbed rows per onnxruntime call (bounds the memory of one run)


UNKNOWN_MODEL = "(unknown)"
"""The one ``model`` label under which calls naming a model this gateway does not serve count."""


@dataclass(frozen=True)
class Explanation:
    model: str
    version: str
    output: str  # e.g. "logit(probabilities[1])" or "variable[0]"
    method: str
    features: tuple[str, ...]
    base_value: FloatArray  # per row
    attributions: FloatArray  # rows x features
    output_value: FloatArray  # per row: base_value + attributions.sum(1)

    def to_json(self) -> dict[str, object]:
        return {
            "model": self.model,
            "version": self.version,
            "output": self.output,
            "method": self.method,
            "features": list(self.features),
            "base_value": self.base_value.tolist(),
            "attributions": self.attributions.tolist(),
            "output_value": self.output_value.tolist(),
        }


class VersionModel:
    """One loaded version as a black box over float64 feature rows, and its background."""

    def __init__(
        self,
        loaded: LoadedVersion,
        background: Background,
        names: tuple[str, ...],
        artifact: bytes | None = None,
    ):
        layout = FeatureLayout.from_specs(loaded.signature.inputs)
        if not layout.complete or not loaded.batchable:
            why = "; ".join(f"{n}: {w}" for n, w in layout.skipped) or "a fixed batch size"
            raise FailedPrecondition(
                f"model {quoted(loaded.model)} version {quoted(loaded.version)} cannot be "
                f"explained: its inputs are not rows of numeric features ({why})"
            )
        if background.n_features != layout.n_features:
            raise FailedPrecondition(
                f"the reference sample of {quoted(loaded.model)}:{quoted(loaded.version)} has "
                f"{background.n_features} features; the model's inputs have {layout.n_features}"
            )
        self.loaded = loaded
        self.artifact = artifact  # the model's bytes, for worker processes
        self.layout = layout
        self.background = background
        self.features = names if len(names) == layout.n_features else layout.names
        self._dtypes = {s.name: DATATYPE_TO_NUMPY[s.datatype] for s in loaded.signature.inputs}
        self.background_outputs = self.run(background.rows)

    def run(self, rows: FloatArray) -> Tensors:
        """The version's outputs on float64 feature rows: one session run per chunk."""
        if rows.shape[0] <= CHUNK_ROWS:
            return self.loaded.run(self.layout.split(rows, self._dtypes))
        parts = [self.run(rows[i : i + CHUNK_ROWS]) for i in range(0, len(rows), CHUNK_ROWS)]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def rows_of(self, inputs: Tensors) -> FloatArray:
        rows = self.layout.stack([inputs])
        if rows.shape[0] == 0:
            raise FailedPrecondition("the recorded request's inputs no longer fit the version")
        return rows

    def explain(
        self,
        rows: FloatArray,
        choice: OutputChoice,
        *,
        nsamples: int | str,
        deadline: float = float("inf"),
        pool: ProcessPool | None = None,
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(base value, attributions, output value) per row for the chosen output, in a
        worker process of ``pool`` when there is one (see :mod:`gateway.explain.process`)."""
        if rows.ndim != 2 or rows.shape[1] != self.layout.n_features:
            raise InvalidArgument(
                f"rows: expected rows x {self.layout.n_features} features, got shape "
                f"{list(rows.shape)}"
            )
        if not np.isfinite(rows).all():
            raise InvalidArgument("rows: every value must be finite (no NaN or infinity)")

        if pool is None or self.artifact is None:
            return explain_rows(
                self.run,
                rows,
                choice,
                self.background,
                self.features,
                nsamples=nsamples,
                deadline=deadline,
                model=self.loaded.model,
            )
        job = Job(
            self.loaded.model,
            self.loaded.sha256,
            self.artifact,
            self.layout,
            self._dtypes,
            self.background,
            self.features,
            choice,
            rows,
            nsamples,
            deadline,
        )
        return pool.run(job)


class Explainer:
    """Explain RPC's work: find the version, its background, run shap on the executor."""

    def __init__(
        self,
        catalog: Catalog,
        registry: Registry,
        counters: ExplainCounters,
        *,
        threads: int = 1,
        processes: int = 0,
        queue: int = 8,
        background: int = 32,
        max_rows: int = 256,
        nsamples: int | str = "auto",
        lookup: Lookup | None = None,
    ) -> None:
        self._catalog = catalog
        self._registry = registry
        self.counters = counters
        self._pool = concurrent.futures.ThreadPoolExecutor(
            threads, thread_name_prefix="onnxgate-explain"
        )
        self._procs = start_pool(processes)
        self._queue = queue
        self._background = background
        self.max_rows = max_rows
        self.nsamples = nsamples
        self._lookup = lookup
        self._pending = 0
        self._lock = threading.Lock()
        self._models: OrderedDict[tuple[str, str, str], VersionModel] = OrderedDict()

    # -- versions ------------------------------------------------------------------------

    def version_model(self, loaded: LoadedVersion) -> VersionModel:
        """Blocking (registry read, a run on the background); cached per loaded version."""
        key = (loaded.model, loaded.version, loaded.sha256)
        with self._lock:
            cached = self._models.get(key)
            if cached is not None:
                self._models.move_to_end(key)
                return cached
        try:
            stored = self._registry.get_profile(loaded.model, loaded.version)
        except RegistryNotFound:
            raise NotFound(
                f"model {quoted(loaded.model)} version {quoted(loaded.version)} is no longer "
                "registered"
            ) from None
        profile = None if stored is None else VersionProfiles.from_doc(stored[0]).inputs
        if profile is None or profile.sample.shape[0] == 0:
            raise FailedPrecondition(
                f"model {quoted(loaded.model)} version {quoted(loaded.version)} has no "
                "reference sample to explain against; register the version with one: "
                "onnxgate models register NAME MODEL.onnx --reference SAMPLE.npy|.csv"
            )
        bg = summarise(profile.sample, self._background)
        artifact = None
        if self._procs is not None:
            artifact = self._registry.read_artifact(loaded.model, loaded.version)
        model = VersionModel(loaded, bg, profile.feature_names, artifact)
        with self._lock:
            self._models[key] = model
            while len(self._models) > MAX_CACHED_VERSIONS:  # retired versions age out
                self._models.popitem(last=False)
        return model

    # -- one call ------------------------------------------------------------------------

    async def explain(
        self,
        model: str,
        version: str = "",
        *,
        rows: FloatArray | None = None,
        request_id: str = "",
        output: str = "",
        output_index: int = -1,
        timeout_s: float = 30.0,
    ) -> Explanation:
        try:
            result = await self._explain(
                model, version, rows, request_id, output, output_index, timeout_s
            )
        except GatewayError as exc:
            self.counters.requests.labels(self._label(model), exc.code).inc()
            raise
        except Exception:
            self.counters.requests.labels(self._label(model), "INTERNAL").inc()
            raise
        self.counters.requests.labels(model, "OK").inc()
        return result

    def _label(self, model: str) -> str:
        """The model label of a counted call: its name only when this gateway serves it.
        What a client names is never a label unchecked (2,000 made-up names made an 80 MB
        /metrics page); every unknown name counts under :data:`UNKNOWN_MODEL`."""
        return model if self._catalog.entry(model) is not None else UNKNOWN_MODEL

    async def _explain(
        self,
        model: str,
        version: str,
        rows: FloatArray | None,
        request_id: str,
        output: str,
        output_index: int,
        timeout_s: float,
    ) -> Explanation:
        if not model:
            raise InvalidArgument("model is required")
        inputs: Tensors | None = None
        if request_id:
            if rows is not None:
                raise InvalidArgument("rows: give either rows or a request id, not both")
            version, inputs = await self._recorded(model, version, request_id)
        elif rows is None:
            raise InvalidArgument("rows: no rows to explain (or give a request id)")
        elif rows.shape[0] > self.max_rows:
            raise InvalidArgument(f"rows: at most {self.max_rows} per call, got {rows.shape[0]}")
        require_shap()  # FailedPrecondition naming the extra, before any work is queued
        loaded = self._catalog.find(model, version).loaded
        deadline = time.monotonic() + timeout_s
        return await self._submit(loaded, rows, inputs, output, output_index, deadline)

    async def _recorded(self, model: str, version: str, request_id: str) -> tuple[str, Tensors]:
        found = None if self._lookup is None else await self._lookup(model, request_id)
        if found is None:
            raise NotFound(
                f"request id {quoted(request_id)} of model {quoted(model)} is not known here "
                "(never served by this gateway, or no longer kept)"
            )
        if version and version != found[0]:
            raise InvalidArgument(
                f"version: request {quoted(request_id)} was served by version {quoted(found[0])}"
            )
        return found

    async def _submit(
        self,
        loaded: LoadedVersion,
        rows: FloatArray | None,
        inputs: Tensors | None,
        output: str,
        output_index: int,
        deadline: float,
    ) -> Explanation:
        if self._pending >= self._queue:
            raise ResourceExhausted(
                f"explanations: {self._pending} already queued or running (limit {self._queue})"
            )
        self._pending += 1
        self.counters.pending.inc()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            self._pool, self._compute, loaded, rows, inputs, output, output_index, deadline
        )
        future.add_done_callback(self._release)
        try:
            return await asyncio.wait_for(asyncio.shield(future), deadline - time.monotonic())
        except TimeoutError:
            raise DeadlineExceeded(
                f"the explanation of {quoted(loaded.model)} did not finish before its deadline"
            ) from None

    def _release(self, future: asyncio.Future[Explanation]) -> None:
        self._pending -= 1
        self.counters.pending.dec()
        if not future.cancelled():
            future.exception()  # retrieved: a late failure after a deadline is not logged

    def _compute(
        self,
        loaded: LoadedVersion,
        rows: FloatArray | None,
        inputs: Tensors | None,
        output: str,
        output_index: int,
        deadline: float,
    ) -> Explanation:
        if time.monotonic() > deadline:
            raise DeadlineExceeded(
                f"the explanation of {quoted(loaded.model)} waited past its deadline"
            )
        started = time.perf_counter()
        vm = self.version_model(loaded)
        x = vm.rows_of(inputs) if inputs is not None else np.asarray(rows, dtype=np.float64)
        if x.shape[0] > self.max_rows:
            raise InvalidArgument(
                f"id: the request has {x.shape[0]} rows; at most {self.max_rows} are explained "
                "per call (send them as rows, in parts)"
            )
        choice = choose_output(vm.background_outputs, output, output_index)
        base, attrs, value = vm.explain(
            x, choice, nsamples=self.nsamples, deadline=deadline, pool=self._procs
        )
        self.counters.seconds.labels(loaded.model, loaded.version).observe(
            time.perf_counter() - started
        )
        self.counters.rows.labels(loaded.model, loaded.version, "request").inc(x.shape[0])
        return Explanation(
            loaded.model, loaded.version, choice.label, METHOD, vm.features, base, attrs, value
        )

    @property
    def processes(self) -> ProcessPool | None:
        """The worker processes explanations run in, if any (the sampler uses them too)."""
        return self._procs

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._procs is not None:
            self._procs.close()
