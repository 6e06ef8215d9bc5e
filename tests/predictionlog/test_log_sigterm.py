"""``onnxgate serve`` with the log on, stopped by SIGTERM: every call is in the files,
each closed file is chained into the audit log, and ``log verify`` finds them intact."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pyarrow.parquet as pq

from gateway.tools import modelzoo
from registry.registry import Registry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from cli_support import clean_env, onnxgate
from shared import wait_for


def test_sigterm_flushes_and_chains_every_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    reg = Registry.open(url, tmp_path / "a")
    reg.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    reg.close()
    log_dir = tmp_path / "log"
    out_path = tmp_path / "serve.log"
    env = clean_env({"ONNXGATE_PREDICTION_LOG": f"file:{log_dir}"})
    with out_path.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--port", "0", "--metrics-port", "-1",
             "--registry", url, "--artifact-dir", str(tmp_path / "a")],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        line = wait_for(lambda: re.search(r"HTTP :(\d+)", out_path.read_text()), timeout=60)
        base = f"http://127.0.0.1:{line.group(1)}"
        for i in range(12):
            tensor = {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [i, 0, 0, 1]}
            body = {"id": f"t-{i}", "inputs": [tensor]}
            assert httpx.post(f"{base}/v2/models/lin/infer", json=body).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, out_path.read_text()
    rows = pq.read_table(log_dir, partitioning="hive").to_pylist()
    assert sorted(r["request_id"] for r in rows) == sorted(f"t-{i}" for i in range(12))
    done = onnxgate("log", "verify", "--registry", url, "--dir", str(log_dir))
    assert done.returncode == 0 and "intact" in done.stdout, done.stdout + done.stderr
