"""One loaded model version: its onnxruntime session, signature checks, warm-up, cost model.

Loading and running are blocking; callers put them on an executor. Validation is the only
part on the event loop and costs a few attribute reads per input, no array passes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import onnxruntime as ort

from gateway.domain import Tensors
from gateway.errors import InvalidArgument
from gateway.messages import name_list, quoted
from registry.datatypes import DATATYPE_TO_NUMPY
from registry.signature import Signature, TensorSpec, signature_from_session

__all__ = ["LoadedVersion", "resolve_providers"]

log = logging.getLogger(__name__)


def resolve_providers(requested: tuple[str, ...]) -> list[str]:
    """Keep the providers this onnxruntime build has, in order, and always end on CPU.

    A GPU provider asked for on a CPU-only build is dropped with one clear warning rather
    than failing the load: the gateway still serves, just not on the accelerator.
    """
    available = set(ort.get_available_providers())
    chosen = [p for p in requested if p in available]
    missing = [p for p in requested if p not in available]
    if missing:
        log.warning(
            "execution provider(s) %s not available in this onnxruntime build (available: %s); "
            "falling back to %s",
            ", ".join(missing),
            ", ".join(sorted(available)),
            ", ".join(chosen or ["CPUExecutionProvider"]),
        )
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


class LoadedVersion:
    """A version in memory: session, signature checks and the cost of a run."""

    def __init__(
        self,
        model: str,
        version: str,
        sha256: str,
        session: ort.InferenceSession,
        signature: Signature,
    ) -> None:
        self.model = model
        self.version = version
        self.sha256 = sha256
        self.session = session
        self.signature = signature
        self._inputs = {spec.name: spec for spec in signature.inputs}
        self._input_dtypes = {s.name: DATATYPE_TO_NUMPY[s.datatype] for s in signature.inputs}
        self.output_names = tuple(spec.name for spec in signature.outputs)
        self._output_set = frozenset(self.output_names)
        # Batchable when every input and output has a dynamic leading dimension.
        self.batchable = all(
            len(s.shape) >= 1 and s.shape[0] == -1 for s in signature.inputs + signature.outputs
        )
        self._t1 = float("inf")  # measured by warm_up()
        self._per_row = float("inf")
        self.warm_up_skipped: str | None = None
        """Why warm-up did not run (a string-parsing graph refused every synthetic value);
        None when it ran. The version serves either way."""

    @classmethod
    def load(
        cls,
        model: str,
        version: str,
        sha256: str,
        artifact: bytes,
        *,
        providers: tuple[str, ...] = ("CPUExecutionProvider",),
        intra_op_threads: int = 1,
        sample: Tensors | None = None,
    ) -> LoadedVersion:
        """Blocking: build the session from verified bytes and warm it up (on ``sample``,
        the version's own inputs, when there is one; see :meth:`warm_up`)."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        # A run that fails on a request's values is answered and logged by the batcher (once
        # a minute, or with a traceback when the model itself is broken); onnxruntime's own
        # stderr line per failed run would let one client flood the log.
        options.log_severity_level = 4
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning intra-op threads burn the cores the event loop needs between runs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(
            artifact, sess_options=options, providers=resolve_providers(providers)
        )
        loaded = cls(model, version, sha256, session, signature_from_session(session))
        loaded.warm_up(sample=sample)
        return loaded

    def sample_inputs(self, rows: int = 1, *, text: str = "") -> Tensors:
        """A small valid batch (zeros, strings ``text``) for warm-up and smoke checks."""
        sample: Tensors = {}
        for spec in self.signature.inputs:
            shape = tuple(
                rows if (i == 0 and d == -1) else (1 if d == -1 else d)
                for i, d in enumerate(spec.shape)
            )
            dtype = DATATYPE_TO_NUMPY[spec.datatype]
            if spec.datatype == "BYTES":
                sample[spec.name] = np.full(shape, text, dtype=np.object_)
            else:
                sample[spec.name] = np.zeros(shape, dtype=dtype)
        return sample

    def warm_up(self, probe_rows: int = 32, *, sample: Tensors | None = None) -> None:
        """Real inferences before any request may arrive (first runs allocate), timed to
        give :meth:`estimated_run_s` its two points: one row, and ``probe_rows`` rows.

        On ``sample`` when given; otherwise on zeros and, for string inputs, empty strings
        and then ``"0"`` (a graph that parses its strings as numbers refuses ``""``). A
        model with string inputs that refuses both still loads: its values are the
        client's to choose, so a refusal says nothing about the model. The warm-up is then
        skipped (:attr:`warm_up_skipped` says why; the run estimate stays infinite, which
        sends its runs to the executor). Any other failure is the model's, and raised.
        """
        start = time.perf_counter()
        try:
            one = self._first_run(sample)
        except Exception as exc:
            if sample is not None or not any(s.datatype == "BYTES" for s in self.signature.inputs):
                raise
            said = " ".join(str(exc).split())[:200]
            self.warm_up_skipped = (
                f"warm-up skipped: the model refused synthetic string inputs ({said}); "
                "it serves requests as they come"
            )
            log.warning("%s version %s: %s", self.model, self.version, self.warm_up_skipped)
            return
        first = time.perf_counter() - start
        if first > SLOW_RUN_S:
            # NOTE: the estimate only decides inline-or-executor, and a run this long is the
            # executor's whatever the exact figure: timing five more (a model whose runs take
            # seconds) would hold a loading thread for half a minute.
            self._t1 = self._per_row = first
            return
        self._t1 = _best_of(lambda: self.run(one))
        if self.batchable and probe_rows > 1 and sample is None:
            many = self._tiled(one, probe_rows)
            self.run(many)
            tn = _best_of(lambda: self.run(many))
            self._per_row = max(0.0, (tn - self._t1) / (probe_rows - 1))
        else:
            self._per_row = self._t1

    def _first_run(self, sample: Tensors | None) -> Tensors:
        """Run once on ``sample`` or the first synthetic batch the model accepts; return it."""
        if sample is not None:
            self.run(sample)
            return sample
        one = self.sample_inputs()
        try:
            self.run(one)
        except Exception:
            if not any(s.datatype == "BYTES" for s in self.signature.inputs):
                raise
            one = self.sample_inputs(text="0")
            self.run(one)
        return one

    @staticmethod
    def _tiled(one: Tensors, rows: int) -> Tensors:
        """``one`` (a batch of one row) repeated to ``rows`` rows."""
        return {name: np.repeat(arr, rows, axis=0) for name, arr in one.items()}

    def estimated_run_s(self, rows: int) -> float:
        """Predicted seconds for one run of ``rows`` rows (linear in rows, from warm-up)."""
        return self._t1 + self._per_row * max(rows - 1, 0)

    def validate(self, inputs: Tensors) -> int:
        """Check names, dtypes and shapes against the signature; return the row count
        (the first input's first dimension; 1 for a rank-0 input), which the batcher uses."""
        expected = self._inputs
        if inputs.keys() != expected.keys():
            missing = sorted(expected.keys() - inputs.keys())
            extra = sorted(inputs.keys() - expected.keys())
            parts = []
            if missing:
                parts.append(f"missing input(s) [{name_list(missing)}]")
            if extra:
                parts.append(f"unknown input(s) [{name_list(extra)}]")
            raise InvalidArgument(
                f"model {quoted(self.model)} version {quoted(self.version)}: "
                f"{'; '.join(parts)}; expected [{name_list(sorted(expected))}]"
            )
        rows = -1
        for name, arr in inputs.items():
            spec = expected[name]
            if arr.dtype != self._input_dtypes[name]:
                got = "BYTES" if arr.dtype.kind == "O" else str(arr.dtype)
                raise InvalidArgument(
                    f"input {quoted(name)}: datatype {_dt_name(got)} does not match the model's "
                    f"{spec.datatype}"
                )
            _check_dims(name, arr.shape, spec)
            n = arr.shape[0] if arr.ndim else 1
            if rows == -1:
                rows = n
            elif self.batchable and n != rows:
                raise InvalidArgument(
                    f"input {quoted(name)}: first dimension {n} differs from the other "
                    f"inputs' {rows}"
                )
        return max(rows, 0)

    def check_outputs(self, requested: tuple[str, ...]) -> None:
        for name in requested:
            if name not in self._output_set:
                raise InvalidArgument(
                    f"requested output {quoted(name)} does not exist; "
                    f"outputs are [{name_list(self.output_names)}]"
                )

    def run(self, inputs: Tensors) -> Tensors:
        """Blocking inference; the caller is on an executor thread."""
        values = self.session.run(None, inputs)
        return dict(zip(self.output_names, values, strict=True))


SLOW_RUN_S = 0.05
"""A first warm-up run longer than this is the model's estimate; no more runs are timed."""


def _best_of(fn: Callable[[], object], repeats: int = 5) -> float:
    """Fastest of a few timed calls: the least disturbed by other threads."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _dt_name(numpy_name: str) -> str:
    for name, dtype in DATATYPE_TO_NUMPY.items():
        if str(dtype) == numpy_name:
            return name
    return numpy_name


def _check_dims(name: str, shape: tuple[int, ...], spec: TensorSpec) -> None:
    if len(shape) != len(spec.shape):
        raise InvalidArgument(
            f"input {quoted(name)}: shape {list(shape)} has rank {len(shape)}, the model expects "
            f"rank {len(spec.shape)} {list(spec.shape)}"
        )
    for got, want in zip(shape, spec.shape, strict=True):
        if want != -1 and got != want:
            raise InvalidArgument(
                f"input {quoted(name)}: shape {list(shape)} does not match the model's "
                f"{list(spec.shape)} (-1 = any)"
            )
