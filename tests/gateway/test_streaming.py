"""Triton's ModelStreamInfer as clients use it: tritonclient's stream API and a raw stub.

A real gateway on loopback; every answer is compared with onnxruntime run directly.
"""

from __future__ import annotations

import asyncio
import json
import queue
import subprocess
import sys
import threading

import grpc
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as triton
from shared import wait_for

from gateway._proto import grpc_service_pb2 as pb
from gateway.tools import modelzoo
from gateway.transport.streaming import DRAINING_MESSAGE, STREAM_WINDOW

SIZES = (8, 16, 3)


@pytest.fixture
def served(registry, make_gateway):
    registry.register_version("mlp", modelzoo.mlp(SIZES, seed=1), actor="test")
    return make_gateway(metrics_port=-1)


def _session() -> ort.InferenceSession:
    return ort.InferenceSession(modelzoo.mlp(SIZES, seed=1), providers=["CPUExecutionProvider"])


def _x(i: int) -> np.ndarray:
    rows = 1 + i % 3
    return np.random.default_rng(i).standard_normal((rows, 8)).astype(np.float32)


def _request(i: int, model: str = "mlp") -> pb.ModelInferRequest:
    x = _x(i)
    req = pb.ModelInferRequest(model_name=model, id=f"r{i}")
    req.inputs.add(name="x", datatype="FP32", shape=x.shape)
    req.raw_input_contents.append(x.tobytes())
    return req


def _probabilities(response: pb.ModelInferResponse) -> np.ndarray:
    for spec, raw in zip(response.outputs, response.raw_output_contents, strict=True):
        if spec.name == "probabilities":
            return np.frombuffer(raw, dtype=np.float32).reshape(tuple(spec.shape))
    raise AssertionError("no probabilities output")


def test_thousands_of_requests_over_one_raw_stream_are_each_answered_once(served):
    n, bad = 2000, 777
    session = _session()

    def requests():
        for i in range(n):
            yield _request(i, model="no-such-model" if i == bad else "mlp")

    answers: dict[str, pb.ModelStreamInferResponse] = {}
    for response in served.stub().ModelStreamInfer(requests(), timeout=120):
        rid = response.infer_response.id
        assert rid not in answers, f"{rid} answered twice"
        answers[rid] = response
    assert len(answers) == n
    failed = answers.pop(f"r{bad}")
    assert "no-such-model" in failed.error_message
    assert failed.infer_response.model_name == "no-such-model"
    for rid, response in answers.items():
        assert response.error_message == ""
        want = session.run(["probabilities"], {"x": _x(int(rid[1:]))})[0]
        np.testing.assert_allclose(_probabilities(response.infer_response), want, rtol=1e-6)
    # The same data plane as ModelInfer: the version's one counter set saw every request.
    stats = served.stub().ModelStatistics(pb.ModelStatisticsRequest(name="mlp"), timeout=10)
    (counted,) = stats.model_stats
    assert counted.inference_stats.success.count == n - 1
    assert counted.inference_count == sum(1 + i % 3 for i in range(n) if i != bad)


def test_tritonclient_stream_api_unmodified(served):
    session = _session()
    results: queue.Queue[tuple[object, object]] = queue.Queue()
    client = triton.InferenceServerClient(served.target)
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    try:
        n = 300
        for i in range(n):
            x = _x(i)
            inp = triton.InferInput("x", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            model = "mlp" if i != 5 else "mlp-missing"
            client.async_stream_infer(model, [inp], request_id=f"t{i}")
        got: dict[str, np.ndarray] = {}
        errors = []
        for _ in range(n):
            result, error = results.get(timeout=60)
            if error is not None:
                errors.append(str(error))
                continue
            rid = result.get_response().id
            assert rid not in got
            got[rid] = result.as_numpy("probabilities")
        assert len(errors) == 1 and "mlp-missing" in errors[0]
        assert len(got) == n - 1
        for rid, probabilities in got.items():
            want = session.run(["probabilities"], {"x": _x(int(rid[1:]))})[0]
            np.testing.assert_allclose(probabilities, want, rtol=1e-6)
    finally:
        client.stop_stream()
        client.close()


def test_a_bad_request_is_answered_and_the_stream_goes_on(served):
    """Bad in every way the plane knows: wrong shape, wrong datatype, unknown output."""
    wrong_shape = pb.ModelInferRequest(model_name="mlp", id="shape")
    wrong_shape.inputs.add(name="x", datatype="FP32", shape=[1, 5])
    wrong_shape.raw_input_contents.append(np.zeros((1, 5), np.float32).tobytes())
    short = pb.ModelInferRequest(model_name="mlp", id="short")
    short.inputs.add(name="x", datatype="FP32", shape=[1, 8])
    short.raw_input_contents.append(b"\x00" * 3)
    unknown_output = _request(0)
    unknown_output.id = "output"
    unknown_output.outputs.add(name="nope")
    sequence = [_request(1), wrong_shape, short, unknown_output, _request(2)]
    replies = list(served.stub().ModelStreamInfer(iter(sequence), timeout=30))
    by_id = {r.infer_response.id: r for r in replies}
    assert len(replies) == 5 and set(by_id) == {"r1", "shape", "short", "output", "r2"}
    assert by_id["r1"].error_message == by_id["r2"].error_message == ""
    for rid in ("shape", "short", "output"):
        assert by_id[rid].error_message, rid


def test_a_client_that_never_reads_is_not_read_without_bound(registry, make_gateway):
    """Responses of 256 KiB each: once the transport's windows are full the gateway holds
    exactly its window of requests and stops reading; everything is answered once the
    client reads."""
    width = 65536
    registry.register_version("wide", modelzoo.identity("FP32", width), actor="test")
    gw = make_gateway(metrics_port=-1)
    n = 300

    def requests():
        for i in range(n):
            req = pb.ModelInferRequest(model_name="wide", id=f"w{i}")
            req.inputs.add(name="x", datatype="FP32", shape=[1, width])
            req.raw_input_contents.append(np.full((1, width), i, np.float32).tobytes())
            yield req

    responses = gw.stub().ModelStreamInfer(requests(), timeout=120)
    wait_for(lambda: gw.gateway.streams.held == STREAM_WINDOW, timeout=60)
    assert gw.gateway.streams.held == STREAM_WINDOW
    seen = {r.infer_response.id for r in responses}
    assert seen == {f"w{i}" for i in range(n)}
    assert gw.gateway.streams.held == 0


def test_cancelling_a_stream_whose_answers_wait_unwritten_frees_its_window(registry, make_gateway):
    """A client that stops reading, then cancels: the answers waiting in the stream's outbox
    (behind a write the transport blocks) are given up, and the window is free again."""
    width = 65536
    registry.register_version("wide", modelzoo.identity("FP32", width), actor="test")
    gw = make_gateway(metrics_port=-1)

    def requests():
        for i in range(300):
            req = pb.ModelInferRequest(model_name="wide", id=f"w{i}")
            req.inputs.add(name="x", datatype="FP32", shape=[1, width])
            req.raw_input_contents.append(np.zeros((1, width), np.float32).tobytes())
            yield req

    responses = gw.stub().ModelStreamInfer(requests(), timeout=120)
    wait_for(lambda: gw.gateway.streams.held == STREAM_WINDOW, timeout=60)
    responses.cancel()
    wait_for(lambda: gw.gateway.streams.open_streams == 0, timeout=30)
    wait_for(lambda: gw.gateway.streams.held == 0, timeout=30)
    assert gw.gateway.streams.held == 0 and gw.gateway.plane.inflight == 0


def test_cancelling_a_stream_cancels_its_requests_and_frees_the_gateway(served):
    responses = served.stub().ModelStreamInfer(iter([_request(1)] * 10), timeout=30)
    next(responses)
    responses.cancel()
    wait_for(lambda: served.gateway.streams.open_streams == 0, timeout=10)
    assert served.gateway.plane.inflight == 0


def test_drain_answers_what_was_read_and_ends_streams_unavailable(served):
    release = threading.Event()

    def requests():
        yield _request(1)
        release.wait(30)

    responses = served.stub().ModelStreamInfer(requests(), timeout=30)
    assert next(responses).error_message == ""
    wait_for(lambda: served.gateway.streams.open_streams == 1, timeout=10)

    async def drain() -> None:
        served.gateway.streams.drain()

    served.call(drain())
    with pytest.raises(grpc.RpcError) as caught:
        next(responses)
    release.set()
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert DRAINING_MESSAGE in caught.value.details()


def test_onnxgate_bench_stream(served, tmp_path):
    """``onnxgate bench --stream``: the closed loop over streams, every answer counted."""
    out = tmp_path / "stream.json"
    argv = [sys.executable, "-m", "gateway.cli", "bench", "--target", served.target]
    argv += ["--model", "mlp", "--stream", "--concurrency", "16", "--connections", "2"]
    argv += ["--duration", "1", "--warmup", "0.2", "--quiet", "--json", str(out)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["spec"]["stream"] is True and doc["ok"] > 0 and doc["errors"] == {}
    assert doc["versions"] == {"1": doc["requests"]}


def test_streams_need_the_predict_token_like_model_infer(registry, make_gateway):
    registry.register_version("mlp", modelzoo.mlp(SIZES, seed=1), actor="test")
    gw = make_gateway(metrics_port=-1, predict_tokens={"app-token": "billing-app"})
    with pytest.raises(grpc.RpcError) as refused:
        list(gw.stub().ModelStreamInfer(iter([_request(1)]), timeout=10))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    token = (("authorization", "Bearer app-token"),)
    (answer,) = gw.stub().ModelStreamInfer(iter([_request(1)]), metadata=token, timeout=10)
    assert answer.error_message == "" and answer.infer_response.id == "r1"


def test_a_large_streamed_request_decodes_off_the_loop_while_the_stream_answers(
    registry, make_gateway
):
    """A BYTES request over ``decode_thread_bytes`` goes to the decode threads like a unary
    one. Both threads are held busy by the test first, so the large request provably waits
    off the loop while small requests on the same stream are answered."""
    registry.register_version("mlp", modelzoo.mlp(SIZES, seed=1), actor="test")
    registry.register_version("text", modelzoo.identity("BYTES"), actor="test")
    gw = make_gateway(metrics_port=-1)
    decoder = gw.gateway.decoder
    gate = threading.Event()
    held = [
        asyncio.run_coroutine_threadsafe(decoder.run("thread", gate.wait), gw.loop)
        for _ in range(2)  # the decoder's two threads
    ]
    wait_for(lambda: decoder.offloaded["thread"] == 2, timeout=10)

    count = 30_000  # 240 KB of Python work: over the 64 KiB thread threshold
    big = pb.ModelInferRequest(model_name="text", id="big")
    big.inputs.add(name="x", datatype="BYTES", shape=[count // 3, 3])
    items = [f"w{i}".encode() for i in range(count)]
    big.raw_input_contents.append(b"".join(len(b).to_bytes(4, "little") + b for b in items))
    outbox: queue.Queue[pb.ModelInferRequest | None] = queue.Queue()
    responses = gw.stub().ModelStreamInfer(iter(outbox.get, None), timeout=60)
    try:
        outbox.put(big)
        wait_for(lambda: decoder.offloaded["thread"] == 3, timeout=30)
        session = _session()
        for i in range(20):
            outbox.put(_request(i))
            answer = next(responses)
            assert answer.error_message == "" and answer.infer_response.id == f"r{i}"
            want = session.run(["probabilities"], {"x": _x(i)})[0]
            np.testing.assert_allclose(_probabilities(answer.infer_response), want, rtol=1e-6)
        # Only the large request is still in flight, waiting for a decode thread.
        wait_for(lambda: gw.gateway.streams.held == 1, timeout=10)
        gate.set()
        answer = next(responses)
        assert answer.error_message == "" and answer.infer_response.id == "big"
        assert answer.infer_response.raw_output_contents[0] == big.raw_input_contents[0]
        # Its answer (30,000 strings) was encoded on a thread too.
        assert decoder.offloaded == {"thread": 4, "process": 0}
    finally:
        gate.set()
        outbox.put(None)
    assert list(responses) == []
    for future in held:
        future.result(timeout=10)
