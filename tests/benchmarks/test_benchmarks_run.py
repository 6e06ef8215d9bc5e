"""Smoke tests: every benchmark script runs with short points and writes sane JSON.

They assert structure only, never speed (a shared 2-core box says nothing reliable about
speed in a test). Each script runs as a subprocess, as a person would run it; the whole
file takes well under a minute.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from gateway._proto import grpc_service_pb2 as pb
from gateway._proto import grpc_service_pb2_grpc as pb_grpc
from gateway.tools import modelzoo

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
SUMMARY_KEYS = {"spec", "mode", "requests", "ok", "rps", "errors", "latency_ms", "versions"}


def _run(argv: list[str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"{argv[0]} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def echo_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model = tmp_path_factory.mktemp("echo") / "mlp.onnx"
    model.write_bytes(modelzoo.mlp())
    port = _free_port()
    argv = [sys.executable, str(BENCH / "echo_server.py"), "--port", str(port)]
    proc = subprocess.Popen([*argv, "--model", f"mlp={model}"], stdout=subprocess.DEVNULL)
    target = f"127.0.0.1:{port}"
    try:
        with grpc.insecure_channel(target) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            deadline = time.monotonic() + 30
            while True:
                try:
                    stub.ServerReady(pb.ServerReadyRequest(), timeout=1)
                    break
                except grpc.RpcError:
                    assert time.monotonic() < deadline, "echo server did not start"
                    assert proc.poll() is None, "echo server exited"
                    time.sleep(0.2)
        yield target
    finally:
        proc.terminate()
        proc.wait(10)


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def test_onnxgate_bench_closed_loop_with_routing_keys(echo_target: str, tmp_path: Path) -> None:
    out = tmp_path / "closed.json"
    argv = ["-m", "gateway.cli", "bench", "--target", echo_target, "--model", "mlp"]
    argv += ["--concurrency", "8", "--duration", "1", "--warmup", "0.2", "--keys", "10"]
    proc = _run([*argv, "--json", str(out)])
    doc = _load(out)
    assert SUMMARY_KEYS <= doc.keys()
    assert doc["mode"] == "closed" and doc["ok"] > 0 and doc["errors"] == {}
    assert set(doc["latency_ms"]) >= {"p50", "p90", "p99", "p99.9"}
    assert doc["latency_ms"]["p50"] <= doc["latency_ms"]["p99"] <= doc["latency_ms"]["max"]
    assert doc["versions"] == {"1": doc["ok"]}
    assert "req/s" in proc.stdout and "[loadgen]" in proc.stderr  # summary, progress


def test_loadgen_open_loop_in_two_processes(echo_target: str, tmp_path: Path) -> None:
    out = tmp_path / "open.json"
    argv = [str(BENCH / "loadgen.py"), "--target", echo_target, "--model", "mlp", "--procs", "2"]
    argv += ["--rate", "300", "--arrival", "uniform", "--duration", "1", "--warmup", "0.2"]
    _run([*argv, "--rows", "3", "--json", str(out)])
    doc = _load(out)
    assert doc["mode"] == "open" and doc["spec"]["procs"] == 2
    assert set(doc["open_loop"]) == {"target_rate", "achieved_rate", "sent", "dropped", "late"}
    assert doc["open_loop"]["sent"] > 0 and doc["ok"] > 0
    assert doc["rows_per_s"] == pytest.approx(3 * doc["rps"])


def test_loadgen_rejects_bad_arguments(echo_target: str) -> None:
    argv = [sys.executable, str(BENCH / "loadgen.py"), "--target", echo_target, "--model", "mlp"]
    proc = subprocess.run([*argv, "--concurrency", "0"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "loadgen:" in proc.stderr


def test_ceiling_quick(tmp_path: Path) -> None:
    out = tmp_path / "ceiling.json"
    _run([str(BENCH / "ceiling.py"), "--quick", "--duration", "1", "--out", str(out)])
    doc = _load(out)
    assert {"machine", "onnxruntime", "echo"} <= doc.keys()
    for rows in doc["onnxruntime"].values():
        assert [r["batch"] for r in rows] == [2**i for i in range(10)]
        assert all(r["rows_per_s"] > 0 for r in rows)
    assert doc["echo"] and all(e["rps"] > 0 for e in doc["echo"])


def test_compare_quick_writes_json_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "compare.json"
    argv = [str(BENCH / "compare.py"), "--quick", "--duration", "1", "--concurrency", "8"]
    only = "onnxgate-batch-1w,echo,bare,mlserver,onnxgate-stream-1w,bare-stream"
    proc = _run([*argv, "--only", only, "--out", str(out)], 120)
    doc = _load(out)
    assert {"machine", "settings", "servers", "results", "targets", "reference"} <= doc.keys()
    assert doc["servers"]["onnxgate-batch-1w"]["status"] == "ok"
    assert doc["servers"]["mlserver"]["status"] == "skipped"  # --quick without --with-mlserver
    seen = {(r["server"], r["model"], r["concurrency"]) for r in doc["results"]}
    assert ("onnxgate-batch-1w", "mlp_small", 8) in seen and ("echo", "mlp_large", 64) in seen
    assert doc["servers"]["bare"]["status"] == "ok" and ("bare", "mlp_small", 8) in seen
    assert {("onnxgate-stream-1w", "mlp_small", 8), ("bare-stream", "mlp_small", 8)} <= seen
    assert all(r["server_cpu_us_per_request"] > 0 for r in doc["results"])
    assert all(r["rps"] > 0 and not r["errors"] for r in doc["results"])
    assert {t["met"] for t in doc["targets"]} <= {True, False, None}
    assert out.with_suffix(".png").stat().st_size > 0
    assert "ratios are to onnxgate-batch-1w" in proc.stdout


def test_cache_quick_off_and_on(tmp_path: Path) -> None:
    out = tmp_path / "cache.json"
    argv = [str(BENCH / "cache.py"), "--model", "mlp_small", "--duration", "1"]
    _run([*argv, "--warmup", "0.5", "--concurrency", "4", "--json", str(out)], 120)
    doc = _load(out)
    assert {"machine", "off", "on", "speedup", "cpu_ratio"} <= doc.keys()
    (off,), (on,) = doc["off"]["runs"], doc["on"]["runs"]
    assert off["cache_hits"] == 0 and on["cache_hits"] > 0  # the load repeats 16 inputs
    # Each distinct input misses once, or once per caller already in flight with it.
    assert on["cache_misses"] <= 16 * 4
    assert not off["errors"] and not on["errors"]


def test_soak_short_writes_json_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    argv = [str(BENCH / "soak.py"), "--duration", "3", "--interval", "1.5", "--probe", "1"]
    _run([*argv, "--change-every", "0.5", "--out", str(out)], 180)
    doc = _load(out)
    assert {"settings", "intervals", "samples", "summary", "deployment_changes"} <= doc.keys()
    assert doc["intervals"] and all(i["rps"] > 0 for i in doc["intervals"])
    assert doc["samples"] and all(s["rss_mib"] > 0 and s["fds"] > 0 for s in doc["samples"])
    assert doc["deployment_changes"] >= 1 and not doc["deployment_change_failures"]
    assert out.with_suffix(".png").stat().st_size > 0


@pytest.mark.postgres
def test_registry_load_short_writes_json(tmp_path: Path) -> None:
    from pg_cluster import locate_binaries

    locate_binaries()  # skips (or fails with CI=true) without PostgreSQL's binaries
    out = tmp_path / "registry_load.json"
    argv = [str(BENCH / "registry_load.py"), "--rates", "20,40", "--duration", "1"]
    proc = _run([*argv, "--out", str(out)], timeout=180)
    doc = json.loads(out.read_text())
    assert [pt["point"] for pt in doc["points"]] == [
        "idle (2 members)", "20 req/s offered", "40 req/s offered",
    ]  # fmt: skip
    for pt in doc["points"]:
        assert {"xact_commit_per_s", "rows_written_per_s", "wal_bytes_per_s"} <= pt.keys()
        assert pt["connections"] >= 2  # both members hold a connection
    for pt in doc["points"][1:]:
        assert pt["errors"] == [] and pt["rps"] > 0
    assert {"fixed_per_member_idle", "per_1000_rps", "pg_limit_rps"} <= doc["summary"].keys()
    assert "per 1,000 req/s" in proc.stdout
