"""Issue 4 on a real server: bursts are batched correctly, workers share a port and one
/metrics, and an unavailable GPU provider falls back to CPU with a clear message."""

from __future__ import annotations

import concurrent.futures
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import grpc
import numpy as np
import onnxruntime as ort
from prometheus_client.parser import text_string_to_metric_families

from gateway._proto import grpc_service_pb2 as pb
from gateway._proto import grpc_service_pb2_grpc as pb_grpc
from gateway.serving.runtime import resolve_providers
from gateway.tools import modelzoo

MLP = modelzoo.mlp((32, 64, 64, 2), seed=5)


def _request(x: np.ndarray, model: str = "mlp") -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name=model)
    req.inputs.add(name="x", datatype="FP32", shape=list(x.shape))
    req.raw_input_contents.append(x.tobytes())
    return req


def _samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_concurrent_burst_is_batched_and_every_answer_matches(registry, make_gateway):
    registry.register_version("mlp", MLP, actor="t")
    gw = make_gateway(max_delay_us=20_000, max_batch_size=64)
    rng = np.random.default_rng(0)
    inputs = [
        rng.standard_normal((int(rng.integers(1, 4)), 32)).astype(np.float32) for _ in range(48)
    ]
    direct = ort.InferenceSession(MLP, providers=["CPUExecutionProvider"])
    with gw.channel() as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        futures = [stub.ModelInfer.future(_request(x), timeout=10) for x in inputs]
        responses = [f.result() for f in futures]
    for x, resp in zip(inputs, responses, strict=True):
        names = [o.name for o in resp.outputs]
        got = np.frombuffer(resp.raw_output_contents[names.index("probabilities")], np.float32)
        want = direct.run(["probabilities"], {"x": x})[0]
        np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-5, atol=1e-6)
        labels = np.frombuffer(resp.raw_output_contents[names.index("label")], np.int64)
        np.testing.assert_array_equal(labels, want.argmax(axis=1))

    samples = _samples(gw.metrics_url)
    labels = (("model", "mlp"), ("version", "1"))
    batches = samples[("onnxgate_batch_size_rows_count", labels)]
    rows = samples[("onnxgate_batch_size_rows_sum", labels)]
    assert rows == sum(len(x) for x in inputs)
    assert batches < len(inputs) / 2, f"{batches} runs for {len(inputs)} requests: not batched"
    assert rows / batches > 2


def test_request_whose_deadline_passes_while_queued_is_never_run(registry, make_gateway):
    big = modelzoo.mlp((256, 1024, 1024, 10), seed=1)
    registry.register_version("big", big, actor="t")
    # Batches wait up to 2 s for company while the model is busy.
    gw = make_gateway(max_delay_us=2_000_000, max_batch_size=8192)
    with gw.channel() as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        busy = stub.ModelInfer.future(_request(np.ones((4096, 256), np.float32), "big"), timeout=30)
        time.sleep(0.05)  # the big batch is running now
        try:
            stub.ModelInfer(_request(np.ones((1, 256), np.float32), "big"), timeout=0.3)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        else:  # pragma: no cover
            raise AssertionError("a request queued past its deadline was answered")
        assert busy.result().model_version == "1"
        time.sleep(2.2)  # past the queued request's batching delay
        assert stub.ModelInfer(_request(np.ones((1, 256), np.float32), "big"), timeout=10)
    samples = _samples(gw.metrics_url)
    labels = (("model", "big"), ("version", "1"))
    dropped = sum(
        samples.get(("onnxgate_batcher_dropped_total", tuple(sorted((*labels, ("reason", r))))), 0)
        for r in ("deadline", "cancelled")
    )
    assert dropped == 1
    # Only the big batch and the last request ran: the expired request's row never did.
    assert samples[("onnxgate_batch_size_rows_sum", labels)] == 4096 + 1


def test_unavailable_provider_falls_back_to_cpu(caplog, registry, make_gateway):
    with caplog.at_level(logging.WARNING, logger="gateway.serving.runtime"):
        chosen = resolve_providers(("CUDAExecutionProvider",))
    assert chosen == ["CPUExecutionProvider"]
    assert "CUDAExecutionProvider" in caplog.text and "falling back" in caplog.text
    registry.register_version("mlp", MLP, actor="t")
    gw = make_gateway(providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
    resp = gw.stub().ModelInfer(_request(np.ones((2, 32), np.float32)), timeout=10)
    assert resp.model_version == "1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_workers_share_port_and_one_metrics_endpoint(registry, registry_url, tmp_path):
    registry.register_version("mlp", MLP, actor="t")
    port, mport = _free_port(), _free_port()
    env = {**os.environ, "ONNXGATE_LOG_LEVEL": "WARNING"}
    cmd = [
        sys.executable, "-m", "gateway.cli", "serve", "--workers", "2",
        "--registry", registry_url, "--artifact-dir", str(tmp_path / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--metrics-port", str(mport),
        "--http-port", "-1",
    ]  # fmt: skip
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        target = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with grpc.insecure_channel(target) as ch:
                    stub = pb_grpc.GRPCInferenceServiceStub(ch)
                    if stub.ServerReady(pb.ServerReadyRequest(), timeout=1).ready:
                        break
            except grpc.RpcError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "workers did not become ready"
            time.sleep(0.2)

        def one(i: int) -> str:
            # A fresh channel per call: the kernel spreads new connections over workers.
            with grpc.insecure_channel(
                target, options=[("grpc.use_local_subchannel_pool", 1)]
            ) as ch:
                stub = pb_grpc.GRPCInferenceServiceStub(ch)
                return stub.ModelInfer(
                    _request(np.ones((1, 32), np.float32)), timeout=10
                ).model_version

        n = 60
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            assert set(pool.map(one, range(n))) == {"1"}
        ok = ("model", "mlp"), ("version", "1"), ("role", "champion"), ("code", "OK")
        total = 0.0
        for _ in range(50):
            samples = _samples(f"http://127.0.0.1:{mport}/metrics")
            total = samples.get(("onnxgate_requests_total", tuple(sorted(ok))), 0.0)
            if total >= n:
                break
            time.sleep(0.1)
        # The parent sums both workers' samples; the readiness probes are not ModelInfer.
        assert total == n
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
    assert proc.returncode == 0
