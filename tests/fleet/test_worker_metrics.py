"""``serve --workers 2``: the parent's /metrics shows every metric family one process shows,
with counters that add up over the workers (the workers' scrape-time families merged in by
gateway.transport.worker_metrics)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
from fleettools import ENV, free_port
from governor.govtools import threshold_model
from prometheus_client.parser import text_string_to_metric_families
from shared import wait_for
from test_workers import _infer

from registry import Registry


def _families(port: int) -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {
        f.name: {(s.name, tuple(sorted(s.labels.items()))): s.value for s in f.samples}
        for f in text_string_to_metric_families(text)
    }


def _serve(
    tmp_path: Path, url: str, workers: int, name: str
) -> tuple[subprocess.Popen[bytes], int, int]:
    port, metrics = free_port(), free_port()
    env = {**os.environ, **{k: v for k, v in ENV.items() if k != "ONNXGATE_FLEET"}}
    cmd = [
        sys.executable, "-m", "gateway.cli", "serve", "--workers", str(workers),
        "--registry", url, "--artifact-dir", str(tmp_path / "artifacts"), "--host", "127.0.0.1",
        "--port", str(port), "--metrics-port", str(metrics), "--http-port", "-1",
    ]  # fmt: skip
    with open(tmp_path / f"{name}.log", "wb") as out:
        proc = subprocess.Popen(
            cmd, env={**env, "ONNXGATE_FLEET": "true"}, stdout=out, stderr=subprocess.STDOUT
        )
    return proc, port, metrics


def _served(target: str) -> bool:
    try:
        return _infer(target, 0) == "1"
    except grpc.RpcError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:  # pragma: no cover
        proc.kill()
        proc.wait()


def _requests(families, model: str) -> float:
    samples = families.get("onnxgate_requests", {})
    return sum(
        v for (name, labels), v in samples.items()
        if name == "onnxgate_requests_total" and ("model", model) in labels
    )  # fmt: skip


def test_every_family_of_one_process_is_on_the_parents_scrape(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    registry = Registry.open(url, tmp_path / "artifacts")
    registry.register_version("w", threshold_model(1), version="1", actor="t")
    registry.close()
    single, single_port, single_metrics = _serve(tmp_path, url, 1, "single")
    pair, pair_port, pair_metrics = _serve(tmp_path, url, 2, "pair")
    try:
        n = 20
        for target_port in (single_port, pair_port):
            target = f"127.0.0.1:{target_port}"
            wait_for(lambda t=target: _served(t), timeout=120, every=0.2)
            for i in range(1, n):
                _infer(target, i)
        one = wait_for(lambda: (f := _families(single_metrics)) and _requests(f, "w") == n and f)
        wait_for(lambda: _requests(_families(pair_metrics), "w") == n, timeout=30)
        try:
            wait_for(lambda: set(one) <= set(_families(pair_metrics)), timeout=30)
        finally:
            two = _families(pair_metrics)
            print(f"families: one process {len(one)}, --workers 2 parent {len(two)}")
        missing = sorted(set(one) - set(two))
        assert not missing, missing
        assert len(one) >= 30  # the scrape-time families are there, not only the counters
    finally:
        _stop(pair)
        _stop(single)
