"""``make demo``: the product end to end on real models, printed as a timeline.

Trains two small classifiers with scikit-learn, converts them with skl2onnx, registers
them in an embedded SQLite registry, starts a gateway, serves real predictions, then has an
operator (through the real CLI and admin API) split and shift traffic live while requests
flow — and shows that none failed. Needs the dev extras (scikit-learn, skl2onnx).
"""

from __future__ import annotations

import argparse
import collections
import io
import os
import secrets
import shutil
import sys
import threading
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import grpc
import numpy as np

__all__ = ["main"]

N_FEATURES = 8


def say(text: str = "") -> None:
    print(text, flush=True)


def step(title: str) -> None:
    say(f"\n\033[1m== {time.strftime('%H:%M:%S')}  {title}\033[0m")


def train_models(seed: int = 7) -> tuple[bytes, bytes, np.ndarray, np.ndarray]:
    """Two real classifiers on one synthetic credit-style task, as ONNX bytes."""
    from skl2onnx import to_onnx
    from sklearn.datasets import make_classification
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    x, y = make_classification(
        n_samples=4000, n_features=N_FEATURES, n_informative=5, random_state=seed
    )
    x = x.astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=seed)
    v1 = LogisticRegression(max_iter=500).fit(x_train, y_train)
    v2 = GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=seed).fit(
        x_train, y_train
    )
    options = {"zipmap": False}  # plain probability tensors, not a sequence of maps
    onnx1 = to_onnx(v1, x_train[:1], options=options, target_opset=17).SerializeToString()
    onnx2 = to_onnx(v2, x_train[:1], options=options, target_opset=17).SerializeToString()
    say(f"trained v1 LogisticRegression   test accuracy {v1.score(x_test, y_test):.3f}")
    say(f"trained v2 GradientBoosting     test accuracy {v2.score(x_test, y_test):.3f}")
    return onnx1, onnx2, x_test, y_test


def cli(*args: str) -> str:
    """Run the real ``onnxgate`` CLI in-process and return what it printed."""
    from gateway.cli import main as cli_main

    out = io.StringIO()
    with redirect_stdout(out):
        code = cli_main(list(args))
    if code != 0:
        raise SystemExit(f"onnxgate {' '.join(args)} failed with exit code {code}")
    return out.getvalue()


class Traffic:
    """Background clients sending real requests; counts served versions and failures."""

    def __init__(self, target: str, x: np.ndarray, clients: int = 4) -> None:
        from gateway._proto import grpc_service_pb2 as pb

        self._pb = pb
        self._target = target
        self._x = x
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.served: collections.Counter[str] = collections.Counter()
        self.failures: collections.Counter[str] = collections.Counter()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(clients)]

    def _request(self, row: np.ndarray) -> Any:
        req = self._pb.ModelInferRequest(model_name="credit")
        req.inputs.add(name="X", datatype="FP32", shape=[1, N_FEATURES])
        req.raw_input_contents.append(row.tobytes())
        return req

    def _run(self, seed: int) -> None:
        from gateway._proto import grpc_service_pb2_grpc as pb_grpc

        rng = np.random.default_rng(seed)
        with grpc.insecure_channel(self._target) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            while not self._stop.is_set():
                row = self._x[rng.integers(len(self._x))]
                try:
                    resp = stub.ModelInfer(self._request(row), timeout=10)
                    with self._lock:
                        self.served[resp.model_version] += 1
                except grpc.RpcError as exc:
                    with self._lock:
                        self.failures[exc.code().name] += 1

    def start(self) -> Traffic:
        for t in self._threads:
            t.start()
        return self

    def take(self) -> tuple[collections.Counter[str], collections.Counter[str]]:
        with self._lock:
            served, failed = self.served, self.failures
            self.served, self.failures = collections.Counter(), collections.Counter()
        return served, failed

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()


def show_split(
    label: str, served: collections.Counter[str], failed: collections.Counter[str]
) -> None:
    total = sum(served.values())
    parts = ", ".join(
        f"v{v}: {n} ({100 * n / max(total, 1):.0f}%)" for v, n in sorted(served.items())
    )
    say(f"  {label:34} {total:5d} requests  {parts}  failed: {sum(failed.values())}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default="onnxgate-data/demo")
    parser.add_argument("--phase-seconds", type=float, default=2.0)
    args = parser.parse_args(argv)

    from gateway.embedded import EmbeddedGateway
    from gateway.server import Gateway
    from gateway.settings import Settings
    from registry.registry import Registry

    data = Path(args.data_dir)
    shutil.rmtree(data, ignore_errors=True)  # the demo starts from nothing every time
    data.mkdir(parents=True)
    url = f"sqlite:///{data / 'registry.db'}"
    artifacts = data / "artifacts"

    step("1. Train two real models and export them to ONNX")
    onnx1, onnx2, x_test, y_test = train_models()
    (data / "credit-v1.onnx").write_bytes(onnx1)
    (data / "credit-v2.onnx").write_bytes(onnx2)

    step("2. Register both versions in the embedded registry (no gateway needed)")
    common = ("--registry", url, "--artifact-dir", str(artifacts))
    say(
        cli(
            "models",
            "register",
            "credit",
            str(data / "credit-v1.onnx"),
            "--description",
            "logistic regression baseline",
            "--owner",
            "risk-team",
            "--meta",
            "framework=sklearn",
            *common,
        ).rstrip()
    )
    say(
        cli(
            "models",
            "register",
            "credit",
            str(data / "credit-v2.onnx"),
            "--description",
            "gradient boosting candidate",
            "--owner",
            "risk-team",
            "--meta",
            "framework=sklearn",
            *common,
        ).rstrip()
    )
    say(cli("models", "list", *common).rstrip())

    step("3. Start the gateway (gRPC + /metrics on free ports)")
    token = secrets.token_urlsafe(16)
    os.environ["ONNXGATE_ADMIN_TOKEN"] = token
    settings = Settings(
        registry=url,
        artifact_dir=artifacts,
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        admin_tokens={token: "demo-operator"},
        poll_interval_s=0.5,
    )
    registry = Registry.open(url, artifacts)
    with EmbeddedGateway(Gateway(settings, registry=registry)) as gw:
        target = gw.target
        say(f"gateway on {target}, metrics at {gw.metrics_url}")
        say("a tritonclient / grpcurl user would now call inference.GRPCInferenceService there")

        step("4. Real predictions from the champion (v1)")
        np.save(data / "five-rows.npy", x_test[:5])
        say(cli("infer", "credit", "--data", str(data / "five-rows.npy"), "--target", target))
        say(f"  true labels: {y_test[:5].tolist()}")

        step("5. Operator splits traffic 80/20 (v2 as challenger) through the admin CLI")
        say(
            cli(
                "traffic",
                "set",
                "credit",
                "1=80",
                "2=20",
                "--role",
                "2=challenger",
                "--reason",
                "start A/B",
                "--target",
                target,
            ).rstrip()
        )
        traffic = Traffic(target, x_test).start()
        time.sleep(args.phase_seconds)
        show_split("80/20 under load:", *traffic.take())

        step("6. Shift traffic live while requests keep flowing")
        cli("traffic", "set", "credit", "1=50", "2=50", "--reason", "ramp", "--target", target)
        time.sleep(args.phase_seconds)
        show_split("after 50/50:", *traffic.take())
        cli("promote", "credit", "2", "--reason", "better on holdout", "--target", target)
        time.sleep(args.phase_seconds)
        show_split("after promoting v2:", *traffic.take())
        cli("rollback", "credit", "--reason", "demo rollback", "--target", target)
        time.sleep(args.phase_seconds)
        show_split("after rollback:", *traffic.take())
        traffic.stop()
        served, failed = traffic.take()
        say(f"  failed requests across every change: {sum(failed.values())}")

        step("7. Deployment history and audit trail")
        say(cli("history", "credit", "--target", target).rstrip())
        say("")
        for event in registry.audit_events():
            say(
                f"  {event.at:%H:%M:%S}  {event.actor:16} {event.action:24} {event.subject}  "
                f"{event.reason}"
            )
        problems = registry.verify_audit_chain()
        say(f"  audit hash chain: {'intact' if not problems else problems}")
    registry.close()
    step("Done. Data left in " + str(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
