"""What every part of ``make demo``'s story shares: printing, the in-process CLI, live traffic,
the trained models (scikit-learn classifiers converted with skl2onnx; needs the dev extras).
"""

from __future__ import annotations

import collections
import io
import itertools
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import numpy as np

__all__ = [
    "MODEL",
    "LiveTraffic",
    "StoryModels",
    "cli",
    "model_ready",
    "run_cli",
    "say",
    "show_split",
    "step",
    "train_models",
    "wait_until",
]

MODEL = "credit"
N_FEATURES = 8
Counts = collections.Counter[str]


def say(text: str = "") -> None:
    print(text, flush=True)


def _bold() -> tuple[str, str]:
    """ANSI bold on a terminal that takes it; nothing in a pipe, a file or with NO_COLOR."""
    if sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb":
        return "\033[1m", "\033[0m"
    return "", ""


def step(title: str) -> None:
    on, off = _bold()
    say(f"\n{on}== {time.strftime('%H:%M:%S')}  {title}{off}")


def run_cli(*args: str) -> tuple[int, str]:
    """Run the real ``onnxgate`` CLI in-process: (exit code, what it printed). Its errors go
    to stderr as in a shell (stderr is not captured: gateway threads may log there)."""
    from gateway.cli import main as cli_main

    out = io.StringIO()
    with redirect_stdout(out):
        code = cli_main(list(args))
    return code, out.getvalue()


def cli(*args: str) -> str:
    """:func:`run_cli` for set-up steps the demo cannot go on without."""
    code, out = run_cli(*args)
    if code != 0:
        raise SystemExit(f"onnxgate {' '.join(args)} failed with exit code {code}")
    return out


class LiveTraffic:
    """Clients sending real single-row requests, each with a request id. Counts which version
    served and what failed; can shift features (injected drift) and remember each served
    request's true label (sent later as delayed labels). A ``with`` block starts and stops
    it."""

    def __init__(
        self,
        target: str,
        x: np.ndarray,
        y: np.ndarray,
        clients: int = 3,
        *,
        model: str = MODEL,
        input_name: str = "X",
        seed: int = 0,
    ) -> None:
        from gateway._proto import grpc_service_pb2 as pb

        self._pb = pb
        self._model, self._input, self._seed = model, input_name, seed
        self._target = target
        self._pool = (x, y)  # replaced whole by population(): rows and labels go together
        self._prefix = secrets.token_hex(3)  # ids stay unique across instances
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._shift: np.ndarray | None = None
        self._labels: list[tuple[str, int]] | None = None
        self.served: Counts = collections.Counter()
        self.failures: Counts = collections.Counter()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(clients)]

    def _run(self, client: int) -> None:
        from gateway._proto import grpc_service_pb2_grpc as pb_grpc

        rng = np.random.default_rng(self._seed + client)
        with grpc.insecure_channel(self._target) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            for n in itertools.count():
                if self._stop.is_set():
                    return
                pool_x, pool_y = self._pool  # read once: a row and its label go together
                i = int(rng.integers(len(pool_x)))
                shift = self._shift  # read once: a row is shifted whole or not at all
                row = pool_x[i] if shift is None else pool_x[i] + shift
                req = self._pb.ModelInferRequest(
                    model_name=self._model, id=f"{self._prefix}-{client}-{n}"
                )
                req.inputs.add(name=self._input, datatype="FP32", shape=[1, row.shape[0]])
                req.raw_input_contents.append(row.astype(np.float32).tobytes())
                try:
                    resp = stub.ModelInfer(req, timeout=10)
                except grpc.RpcError as exc:
                    with self._lock:
                        self.failures[exc.code().name] += 1
                    continue
                with self._lock:
                    self.served[resp.model_version] += 1
                    if self._labels is not None:
                        self._labels.append((req.id, int(pool_y[i])))

    def start(self) -> LiveTraffic:
        for t in self._threads:
            t.start()
        return self

    def drift(self, shift: np.ndarray | None) -> None:
        """Add ``shift`` to every row from now on (None: stop)."""
        self._shift = shift

    def population(self, x: np.ndarray, y: np.ndarray) -> None:
        """Draw every request from now on from ``x`` (true labels ``y``): a new population
        (covariate shift), where :meth:`drift` moves the same one."""
        self._pool = (x, y)

    def record_labels(self) -> None:
        with self._lock:
            self._labels = []

    def pop_labels(self, *, stop: bool = False) -> list[tuple[str, int]]:
        """The (request id, true label) pairs recorded since the last call."""
        with self._lock:
            out = self._labels or []
            self._labels = None if stop or self._labels is None else []
        return out

    def take(self) -> tuple[Counts, Counts]:
        with self._lock:
            served, failed = self.served, self.failures
            self.served, self.failures = collections.Counter(), collections.Counter()
        return served, failed

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)  # bounded: a request's deadline is 10 s

    def __enter__(self) -> LiveTraffic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def count(self) -> int:
        """Requests served since the last :meth:`take`."""
        with self._lock:
            return sum(self.served.values())


def wait_until(what: str, done: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``done`` for at most ``timeout_s`` seconds; say so when it did not happen."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(0.1)
    now = datetime.now(UTC).astimezone()
    say(f"  {now:%H:%M:%S}.{now.microsecond // 100_000}  !! {what} did not happen within "
        f"{timeout_s:.0f} s; the demo goes on")  # fmt: skip
    return False


def model_ready(target: str, model: str) -> bool:
    """Whether the gateway at ``target`` serves ``model`` yet (it loads on its next poll)."""
    from gateway._proto import grpc_service_pb2 as pb
    from gateway._proto import grpc_service_pb2_grpc as pb_grpc

    with grpc.insecure_channel(target) as channel:
        try:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            return bool(stub.ModelReady(pb.ModelReadyRequest(name=model), timeout=5).ready)
        except grpc.RpcError:
            return False


def show_split(label: str, served: Counts, failed: Counts) -> int:
    """Print one phase's requests per version and its failures; return the failures."""
    total = sum(served.values())
    parts = ", ".join(
        f"v{v}: {n} ({100 * n / max(total, 1):.0f}%)" for v, n in sorted(served.items())
    )
    n_failed = sum(failed.values())
    codes = f" {dict(failed)}" if failed else ""
    say(f"  {label:34} {total:6d} requests  {parts}  failed: {n_failed}{codes}")
    return n_failed


@dataclass(frozen=True)
class StoryModels:
    """What training hands the demo: artifacts, accuracies, data."""

    files: Mapping[str, Path]  # version -> ONNX file
    about: Mapping[str, str]  # version -> what it is
    accuracy: Mapping[str, float]  # version -> accuracy on the live pool
    reference: Path  # held-out sample every version's drift profile is built from
    x: np.ndarray  # live traffic pool, never trained on
    y: np.ndarray  # its true labels


def train_models(data: Path, *, seed: int = 7, fast: bool = False) -> StoryModels:
    """Four real classifiers on one synthetic credit-style task, written as ONNX files.

    The data are split four ways: training, fresh data (v3 and v4 retrain on it), a held-out
    reference sample (the drift profiles: a profile of training data would make a model
    that fits its training set a little too well look drifted in production) and the pool
    that live traffic is drawn from (never trained on; it carries the true labels).
    """
    from skl2onnx import to_onnx
    from sklearn.datasets import make_classification
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    x, y = make_classification(
        n_samples=30_000, n_features=N_FEATURES, n_informative=5, random_state=seed
    )
    x = x.astype(np.float32)
    train, fresh = slice(0, 6000), slice(0, 12_000)
    ref, live = slice(12_000, 16_000), slice(16_000, None)
    boosting = GradientBoostingClassifier(
        n_estimators=30 if fast else 60, max_depth=3, random_state=seed
    )
    fitted = {
        "1": (LogisticRegression(max_iter=500), train, "logistic regression baseline"),
        "2": (boosting, train, "gradient boosting candidate"),
        "3": (LogisticRegression(max_iter=500), fresh, "logistic regression, fresh data"),
        "4": (LogisticRegression(C=0.05), fresh, "logistic regression, more regularised"),
    }
    options = {"zipmap": False}  # plain probability tensors, not a sequence of maps
    files, about, accuracy = {}, {}, {}
    for version, (model, rows, what) in fitted.items():
        model.fit(x[rows], y[rows])
        onnx = to_onnx(model, x[:1], options=options, target_opset=17)
        files[version] = data / f"{MODEL}-v{version}.onnx"
        files[version].write_bytes(onnx.SerializeToString())
        about[version], accuracy[version] = what, float(model.score(x[live], y[live]))
        say(f"trained v{version} {what:40} accuracy on held-out data {accuracy[version]:.3f}")
    np.save(data / "reference.npy", x[ref])
    return StoryModels(files, about, accuracy, data / "reference.npy", x[live], y[live])
