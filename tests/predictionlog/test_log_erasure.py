"""Erasure by request id and by segment: the records are gone from the files, the audit
chain records each rewrite, and ``log verify`` still finds the log intact."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pyarrow.parquet as pq

from gateway.tools import modelzoo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from cli_support import onnxgate


def test_erasure_keeps_the_log_verifiable(registry, registry_url, make_gateway, tmp_path) -> None:
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    log_dir = tmp_path / "log"
    gw = make_gateway(prediction_log=(str(log_dir),))
    for i in range(6):
        tensor = {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [i, 1, 2, 3]}
        body = {"id": f"e-{i}", "parameters": {"segment": "eu" if i < 2 else "us"},
                "inputs": [tensor]}  # fmt: skip
        assert httpx.post(f"{gw.http_url}/v2/models/lin/infer", json=body).status_code == 200
    gw.stop()
    where = ("--registry", registry_url, "--dir", str(log_dir))

    def ids() -> list[str]:
        return sorted(r["request_id"] for r in pq.read_table(log_dir).to_pylist())

    assert ids() == [f"e-{i}" for i in range(6)]
    done = onnxgate("log", "erase", "--id", "e-4", "--id", "e-5", "--reason", "art. 17", *where)
    assert done.returncode == 0, done.stderr
    assert "erased 2 record(s): 1 file(s) rewritten" in done.stdout
    assert ids() == [f"e-{i}" for i in range(4)]
    assert onnxgate("log", "verify", *where).returncode == 0

    done = onnxgate("log", "erase", "--segment", "eu", "--reason", "a", "--json", *where)
    assert json.loads(done.stdout)["erased"] == 2
    assert ids() == ["e-2", "e-3"]
    verified = onnxgate("log", "verify", *where)
    assert verified.returncode == 0, verified.stdout
    assert onnxgate("audit", "verify", "--registry", registry_url).returncode == 0
    erasures = [e for e in registry.audit_events() if e.action == "log.erasure"]
    assert [e.after["erased"] for e in erasures] == [2, 2]
    assert all("e-4" not in json.dumps(e.after) for e in erasures)  # never the erased ids

    done = onnxgate("log", "erase", "--segment", "us", "--reason", "a", *where)
    assert "1 removed" in done.stdout
    assert not list(log_dir.rglob("*.parquet"))
    assert onnxgate("log", "verify", *where).returncode == 0
