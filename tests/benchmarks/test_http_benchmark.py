"""Smoke test: the HTTP-vs-gRPC benchmark runs with short points and writes sane JSON
(structure only, never speed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def test_http_compare_quick_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "http.json"
    argv = [str(BENCH / "http_compare.py"), "--quick", "--duration", "1", "--concurrency", "4"]
    proc = subprocess.run(
        [sys.executable, *argv, "--warmup", "0.2", "--no-mlserver", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    faces = {"onnxgate gRPC", "onnxgate HTTP JSON", "onnxgate HTTP binary"}
    faces |= {"bare ASGI JSON", "bare ASGI binary"}
    assert faces <= set(doc["best"])
    # Structure only: on a busy machine a one-second point may complete no call at all.
    assert all(doc["best"][f]["rps"] >= 0 and not doc["best"][f]["errors"] for f in faces)
    assert all(doc["best"][f]["server_cpu_us_per_request"] >= 0 for f in faces)
    assert doc["skipped"] == {"MLServer REST JSON": "--no-mlserver"}
    assert {t["met"] for t in doc["targets"]} <= {True, False, None}
    assert "HTTP/JSON: onnxgate / bare ASGI req/s" in proc.stdout
