"""The fleet as a production team runs it: two gateways, one of them ``--workers 2``, on one
PostgreSQL registry and one S3 bucket (moto_server), sharing no filesystem (each has its
own working and data directory). A version registered from a third working directory is
served by both; every label, sent to both gateways, joins once; and every metric family
is on both gateways' scrapes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
from fleettools import ENV, free_port
from governor.govtools import N_FEATURES, threshold_model
from pg_cluster import wipe
from prometheus_client.parser import text_string_to_metric_families
from s3_server import S3Server
from shared import wait_for

from gateway._proto import governor_pb2 as gpb
from gateway._proto import governor_pb2_grpc
from gateway._proto import grpc_service_pb2 as pb
from gateway._proto import grpc_service_pb2_grpc as pb_grpc
from registry import Registry

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

HOLD_POLICY = "[canary]\nsteps = [50]\n"  # no candidate: predictions kept, nothing moves


class Gateway:
    """One ``onnxgate serve`` in a directory of its own."""

    def __init__(self, home: Path, env: dict[str, str], workers: int) -> None:
        home.mkdir()
        self.home, self.port, self.metrics = home, free_port(), free_port()
        cmd = [
            sys.executable, "-m", "gateway.cli", "serve", "--workers", str(workers),
            "--host", "127.0.0.1", "--port", str(self.port),
            "--metrics-port", str(self.metrics), "--http-port", "-1",
        ]  # fmt: skip
        with open(home / "serve.log", "wb") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=home, env={**env, "ONNXGATE_ARTIFACT_DIR": str(home / "data")},
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def channel(self) -> grpc.Channel:
        # A fresh connection per call: the kernel spreads them over a gateway's workers.
        target = f"127.0.0.1:{self.port}"
        return grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])

    def infer(self, request_id: str, x: np.ndarray) -> str:
        req = pb.ModelInferRequest(model_name="m", id=request_id)
        req.inputs.add(name="x", datatype="FP32", shape=list(x.shape))
        req.raw_input_contents.append(x.astype(np.float32).tobytes())
        with self.channel() as ch:
            stub = pb_grpc.GRPCInferenceServiceStub(ch)
            return stub.ModelInfer(req, timeout=20).model_version

    def serves(self) -> bool:
        assert self.proc.poll() is None, (self.home / "serve.log").read_text()[-3000:]
        try:
            return self.infer("probe", np.ones((1, N_FEATURES))) == "1"
        except grpc.RpcError:
            return False

    def feedback(self, labels: list[tuple[str, str]]) -> gpb.FeedbackResponse:
        items = [gpb.FeedbackItem(id=i, label=label) for i, label in labels]
        with self.channel() as ch:
            stub = governor_pb2_grpc.GovernorServiceStub(ch)
            return stub.Feedback(gpb.FeedbackRequest(model="m", items=items), timeout=30)

    def families(self) -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
        url = f"http://127.0.0.1:{self.metrics}/metrics"
        with urllib.request.urlopen(url, timeout=10) as r:
            text = r.read().decode()
        return {
            f.name: {(s.name, tuple(sorted(s.labels.items()))): s.value for s in f.samples}
            for f in text_string_to_metric_families(text)
        }

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def _gateways(root: Path, env: dict[str, str]) -> Iterator[tuple[Gateway, Gateway]]:
    started: list[Gateway] = []
    try:
        for name, workers in (("one", 1), ("two", 2)):
            started.append(Gateway(root / name, env, workers))
        yield started[0], started[1]
    finally:
        for gateway in started:
            gateway.stop()


def _joins_in_a_row(gateway: Gateway, n: int) -> bool:
    for k in range(n):
        rid = f"probe-{gateway.port}-{time.monotonic_ns()}-{k}"
        gateway.infer(rid, np.ones((1, N_FEATURES)))
        if gateway.feedback([(rid, "1")]).joined != 1:
            return False
    return True


def _joined(families) -> float:
    samples = families.get("onnxgate_feedback_labels", {})
    return sum(
        v for (name, labels), v in samples.items()
        if name == "onnxgate_feedback_labels_total" and ("outcome", "joined") in labels
    )  # fmt: skip


@dataclass
class Story:
    one: Gateway
    two: Gateway
    labels: list[tuple[str, str]]  # (id, true label) of predictions served, half by each


@pytest.fixture(scope="module")
def story(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: str, s3_server: S3Server
) -> Iterator[Story]:
    """Both gateways up; ``m`` registered from a third directory while they run, given a
    policy (so predictions are kept for labels), and served 40 times, half by each."""
    root = tmp_path_factory.mktemp("shared-nothing")
    wipe(postgres_server)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ONNXGATE_", "AWS_"))}
    env.update(ENV)
    env.update(s3_server.env)
    env["ONNXGATE_REGISTRY"] = postgres_server
    env["ONNXGATE_ARTIFACT_STORE"] = f"s3://{s3_server.new_bucket()}/models"
    del env["ONNXGATE_FLEET"]  # on by default on PostgreSQL: nothing to say

    with _gateways(root, env) as (one, two):
        laptop = root / "laptop"  # shares nothing with the gateways but URL and bucket
        laptop.mkdir()
        (laptop / "m.onnx").write_bytes(threshold_model(0))
        subprocess.run(
            [sys.executable, "-m", "gateway.cli", "models", "register", "m", "m.onnx"],
            check=True, cwd=laptop, env={**env, "ONNXGATE_ARTIFACT_DIR": str(laptop / "data")},
            capture_output=True, timeout=120,
        )  # fmt: skip
        for gateway in (one, two):
            wait_for(gateway.serves, timeout=120, every=0.2)
        registry = Registry.open(postgres_server, root / "reader")
        try:
            wait_for(lambda: len(registry.fleet.members()) == 3, timeout=60)
            # Predictions are kept for labels once a model has a policy (any process reads
            # it within a governor tick): each gateway joins a run of probes first.
            registry.governor.set_policy("m", HOLD_POLICY, actor="t")
            for gateway in (one, two):
                wait_for(lambda g=gateway: _joins_in_a_row(g, 10), timeout=60, every=0.1)

            rng = np.random.default_rng(3)
            labels: list[tuple[str, str]] = []
            for k in range(40):
                x = rng.standard_normal((1, N_FEATURES))
                assert (one if k % 2 else two).infer(f"r{k}", x) == "1"
                labels.append((f"r{k}", str(int(x[0, 0] > 0))))
            ids = [rid for rid, _ in labels]
            wait_for(lambda: len(registry.fleet.predictions("m", ids)) == len(ids), timeout=60)
        finally:
            registry.close()
        yield Story(one, two, labels)


def test_a_version_registered_elsewhere_is_served_with_every_family_on_both(
    story: Story,
) -> None:
    one, two = story.one, story.two
    assert one.home.exists() and not (one.home / "m.onnx").exists()
    fams = {"one": one.families(), "two": two.families()}
    # A counter's ``_created`` timestamps come as a family of their own in the text format,
    # once it has a child: the leader's decision counter has one, a follower's none.
    names = {k: {n for n in f if not n.endswith("_created")} for k, f in fams.items()}
    print(f"families: one {len(names['one'])}, two (--workers 2) {len(names['two'])}")
    assert names["one"] == names["two"], sorted(names["one"] ^ names["two"])
    assert len(names["one"]) >= 40
    assert {"onnxgate_fleet_members", "onnxgate_governor_leader"} <= names["one"]
    for gateway in (one, two):  # served from the bucket through each one's own cache
        assert any((gateway.home / "data").rglob("*"))
        members = gateway.families()["onnxgate_fleet_members"]
        assert {v for (name, _), v in members.items()} == {3.0}


def test_labels_sent_to_both_gateways_join_once(story: Story) -> None:
    one, two, labels = story.one, story.two, story.labels
    # Every label goes to both gateways: the first to take it joins it, the other finds
    # it taken, whichever process served the prediction.
    before = _joined(one.families()) + _joined(two.families())
    first, second = one.feedback(labels), two.feedback(labels)
    assert first.unknown == second.unknown == 0
    assert first.joined == len(labels)  # one took them first: it joins them all
    assert (second.joined, second.duplicate) == (0, len(labels)), second
    after = _joined(one.families()) + _joined(two.families())
    assert after - before == len(labels)
