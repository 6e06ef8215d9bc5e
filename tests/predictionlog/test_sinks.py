"""The prediction log's sinks against real parts: a CloudEvents receiver on loopback that
gets every record (through retries), a disk that fills (records dropped and counted, the
gateway serving on), and the record format itself (BYTES, sampling, outputs only)."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest

from gateway.predictionlog import decode_tensors, encode_tensors, in_sample
from gateway.predictionlog.cloudevents import REQUEST_TYPE, RESPONSE_TYPE
from gateway.settings import Settings, SettingsError
from gateway.tools import modelzoo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
from tmpfs_support import mounted_tmpfs


class Receiver:
    """A real HTTP server that keeps every CloudEvent posted to it; fails the first
    ``fail_first`` posts with 503 so that the sink's retries are exercised."""

    def __init__(self, fail_first: int = 0) -> None:
        self.events: list[tuple[dict[str, str], Any]] = []
        self.failures_left = fail_first
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                with lock:
                    failing = outer.failures_left > 0
                    if failing:
                        outer.failures_left -= 1
                    else:
                        headers = {k.lower(): v for k, v in self.headers.items()}
                        outer.events.append((headers, json.loads(body)))
                self.send_response(503 if failing else 202)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=2)
    yield r
    r.close()


def _infer(url: str, request_id: str, rows: int = 1) -> httpx.Response:
    data = np.random.default_rng(abs(hash(request_id)) % 2**32).normal(size=rows * 4)
    body = {
        "id": request_id,
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [rows, 4], "data": data.tolist()}],
    }
    return httpx.post(f"{url}/v2/models/lin/infer", json=body, timeout=30)


def test_a_cloudevents_receiver_gets_every_record(registry, make_gateway, receiver) -> None:
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    gw = make_gateway(prediction_log=(receiver.url,))
    ids = [f"r-{i}" for i in range(20)]
    for request_id in ids:
        assert _infer(gw.http_url, request_id).status_code == 200
    bad = {"id": "r-bad", "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1],
                                      "data": [1]}]}  # fmt: skip
    assert httpx.post(f"{gw.http_url}/v2/models/lin/infer", json=bad).status_code == 400
    gw.stop()  # flushes: the sink sends what it holds before it closes
    by_type: dict[str, dict[str, tuple[dict[str, str], Any]]] = {}
    for headers, body in receiver.events:
        by_type.setdefault(headers["ce-type"], {})[headers["ce-id"]] = (headers, body)
    assert set(by_type[REQUEST_TYPE]) == {*ids, "r-bad"}
    assert set(by_type[RESPONSE_TYPE]) == {*ids, "r-bad"}
    assert len(receiver.events) == 2 * (len(ids) + 1)  # each once, despite the 503s retried
    headers, body = by_type[RESPONSE_TYPE]["r-3"]
    assert headers["ce-specversion"] == "1.0"
    assert headers["ce-inferenceservicename"] == "lin"
    assert headers["ce-onnxgatestatus"] == "OK"
    assert body["id"] == "r-3" and body["outputs"][0]["shape"] == [1, 2]
    assert by_type[RESPONSE_TYPE]["r-bad"][1] == {"error": "INVALID_ARGUMENT"}
    request = by_type[REQUEST_TYPE]["r-3"][1]
    assert request["inputs"][0]["name"] == "x" and len(request["inputs"][0]["data"]) == 4


def test_a_full_disk_drops_and_counts_records_and_serving_goes_on(
    registry, make_gateway, tmp_path: Path
) -> None:
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    with mounted_tmpfs(tmp_path / "small", "128k") as disk:
        gw = make_gateway(prediction_log=(str(disk / "log"),))
        sent = 60
        for i in range(sent):  # 256 random rows each: ~6 KB of tensors, past 128 KB soon
            assert _infer(gw.http_url, f"d-{i}", rows=256).status_code == 200
        log = gw.gateway.prediction_log
        assert log is not None
        gw.stop()
        assert log.dropped > 0
        assert log.written + log.dropped == sent
        assert gw.gateway.plane.inflight == 0
        files = list((disk / "log").rglob("*.parquet"))
        kept = sum(pq.read_metadata(f).num_rows for f in files)
        assert kept == log.written


def test_a_sink_that_cannot_write_never_fails_a_call(registry, make_gateway, tmp_path) -> None:
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    (log_dir / "model=lin").write_text("a file where the model's folder should be")
    gw = make_gateway(prediction_log=(str(log_dir),))
    for i in range(5):
        assert _infer(gw.http_url, f"e-{i}").status_code == 200
    log = gw.gateway.prediction_log
    gw.stop()
    assert log is not None and (log.written, log.dropped) == (0, 5)
    scraped = gw.gateway.metrics.registry.get_sample_value(
        "onnxgate_prediction_log_records_total", {"sink": f"file:{log_dir}", "outcome": "dropped"}
    )
    assert scraped == 5


def test_outputs_only_and_sampling_by_request_id(registry, make_gateway, tmp_path) -> None:
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    log_dir = tmp_path / "log"
    gw = make_gateway(
        prediction_log=(f"file:{log_dir}",), prediction_log_sample=0.5, prediction_log_inputs=False
    )
    ids = [f"s-{i}" for i in range(40)]
    for request_id in ids:
        assert _infer(gw.http_url, request_id).status_code == 200
    gw.stop()
    rows = pq.read_table(log_dir, partitioning="hive").to_pylist()
    assert sorted(r["request_id"] for r in rows) == sorted(i for i in ids if in_sample(i, 0.5))
    assert 0 < len(rows) < len(ids)
    assert all(r["inputs"] == [] and len(r["outputs"]) == 1 for r in rows)


def test_each_model_can_have_its_own_share(registry, make_gateway, tmp_path) -> None:
    # Default share 0 (nothing logged), "keep" logged whole: the per-model share wins, and
    # a model without one falls back to prediction_log_sample.
    for name in ("lin", "keep"):
        registry.register_version(name, modelzoo.linear(4, 2, seed=3), actor="test")
    log_dir = tmp_path / "log"
    gw = make_gateway(
        prediction_log=(f"file:{log_dir}",),
        prediction_log_sample=0.0,
        prediction_log_sample_models=("keep=1.0",),
    )
    for i in range(10):
        for name in ("lin", "keep"):
            body = {"id": f"{name}-{i}", "inputs": [
                {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [0.1, 0.2, 0.3, 0.4]}
            ]}  # fmt: skip
            assert httpx.post(f"{gw.http_url}/v2/models/{name}/infer", json=body).status_code == 200
    gw.stop()
    rows = pq.read_table(log_dir, partitioning="hive").to_pylist()
    assert sorted(r["request_id"] for r in rows) == sorted(f"keep-{i}" for i in range(10))


def test_per_model_shares_are_read_from_env_and_toml_and_checked(tmp_path: Path) -> None:
    env = {"ONNXGATE_PREDICTION_LOG_SAMPLE_MODELS": "fraud=1.0, churn=0.1"}
    assert Settings.load(env).prediction_log_shares == {"fraud": 1.0, "churn": 0.1}
    toml = tmp_path / "onnxgate.toml"
    toml.write_text("[gateway]\nprediction_log_sample_models = { fraud = 0.5 }\n")
    assert Settings.load({}, toml).prediction_log_shares == {"fraud": 0.5}
    for bad in ("fraud", "fraud=2", "=0.5", "fraud=x"):
        with pytest.raises(SettingsError, match=f"prediction_log_sample_models '{bad}'"):
            Settings.load({"ONNXGATE_PREDICTION_LOG_SAMPLE_MODELS": bad})


def test_tensors_round_trip_bytes_and_numbers() -> None:
    text = np.array([[b"a", b""], ["\u00e9".encode(), b"xyz"]], dtype=object)
    numbers = np.arange(6, dtype=">i4").reshape(3, 2)  # big-endian in, little-endian stored
    entries = encode_tensors({"s": text, "n": numbers})
    assert entries[0]["datatype"] == "BYTES"
    assert entries[0]["data"] == b"\x01\x00\x00\x00a\x00\x00\x00\x00\x02\x00\x00\x00\xc3\xa9" + (
        b"\x03\x00\x00\x00xyz"
    )
    assert entries[1]["data"] == np.arange(6, dtype="<i4").tobytes()
    back = decode_tensors(entries)
    assert back["s"].tolist() == text.tolist()
    assert np.array_equal(back["n"], numbers) and back["n"].shape == (3, 2)


def test_sampling_is_a_pure_function_of_the_id() -> None:
    assert all(in_sample(f"x{i}", 1.0) for i in range(100))
    assert not any(in_sample(f"x{i}", 0.0) for i in range(100))
    share = sum(in_sample(f"x{i}", 0.25) for i in range(4000)) / 4000
    assert 0.2 < share < 0.3
    assert [in_sample(f"x{i}", 0.25) for i in range(50)] == [
        in_sample(f"x{i}", 0.25) for i in range(50)
    ]


def test_an_unreachable_receiver_drops_and_counts_after_retries() -> None:
    import socket

    from gateway.predictionlog import CloudEventsSink, table_of
    from gateway.predictionlog.sink import Batch
    from gateway.serving.taps import TapRecord

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = CloudEventsSink(f"http://127.0.0.1:{port}/", retries=1, backoff_s=0.01)
    x = np.zeros((1, 4), np.float32)
    records = [
        TapRecord("m", "1", "champion", f"u-{i}", {}, {"x": x}, {"y": x}, None)  # type: ignore[arg-type]
        for i in range(3)
    ]
    sink.write(Batch("m", "2026-01-01", table_of(records, keep_inputs=True)))
    sink.close()
    assert (sink.written, sink.dropped) == (0, 3)


def test_the_log_off_builds_nothing_and_never_loads_pyarrow(registry, make_gateway) -> None:
    import subprocess

    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    gw = make_gateway()
    assert gw.gateway.prediction_log is None and not gw.gateway.taps.every_call
    assert _infer(gw.http_url, "no-log").status_code == 200
    probe = "import sys, gateway.server, gateway.predictionlog; print('pyarrow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr
