"""Shadow answers are records too: with a shadow at 100 %, every request id has one primary
record (what was served) and one shadow record (role ``shadow``, the shadow version, its
digest and outputs), and ``log show ID`` shows both."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow.parquet as pq
from shared import admin_metadata

from gateway._proto import admin_pb2 as apb
from gateway._proto import grpc_service_pb2 as pb
from gateway.predictionlog import decode_tensors
from gateway.tools import modelzoo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from cli_support import onnxgate

SIZES = (4, 8, 2)


def test_shadow_answers_are_logged_beside_the_served_ones(
    registry, registry_url, make_gateway, tmp_path: Path
) -> None:
    shadow_bytes = modelzoo.mlp(SIZES, seed=1, bias_shift=1.0)
    registry.register_version("m", modelzoo.mlp(SIZES, seed=1), actor="test")
    shadow_version = registry.register_version("m", shadow_bytes, actor="test")
    log_dir = tmp_path / "log"
    gw = make_gateway(prediction_log=(str(log_dir),))
    request = apb.AddShadowRequest(model="m", version="2", fraction=1.0)
    gw.admin().AddShadow(request, metadata=admin_metadata(), timeout=30)
    rng = np.random.default_rng(2)
    ids = [f"s-{i}" for i in range(12)]
    for request_id in ids:
        call = pb.ModelInferRequest(model_name="m", id=request_id)
        x = rng.normal(size=(2, 4)).astype("<f4")
        call.inputs.add(name="x", datatype="FP32", shape=list(x.shape))
        call.raw_input_contents.append(x.tobytes())
        gw.stub().ModelInfer(call, timeout=30)
    assert gw.gateway.taps.flush(30)
    assert gw.gateway.shadow.drain(30)
    gw.stop()

    rows = pq.read_table(log_dir, partitioning="hive").to_pylist()
    primary = [r for r in rows if r["role"] != "shadow"]
    shadow = [r for r in rows if r["role"] == "shadow"]
    assert sorted(r["request_id"] for r in primary) == sorted(ids)  # once each as primary
    assert sorted(r["request_id"] for r in shadow) == sorted(ids)  # and once as shadow
    assert {(r["version"], r["role"]) for r in primary} == {("1", "champion")}
    assert {(r["version"], r["artifact_sha256"], r["status"]) for r in shadow} == {
        ("2", shadow_version.sha256, "OK")
    }
    runner = ort.InferenceSession(shadow_bytes, providers=["CPUExecutionProvider"])
    for row in shadow:
        inputs = decode_tensors(row["inputs"])
        expected = dict(zip([o.name for o in runner.get_outputs()],
                            runner.run(None, dict(inputs)), strict=True))  # fmt: skip
        for name, got in decode_tensors(row["outputs"]).items():
            np.testing.assert_array_equal(got, expected[name])

    shown = onnxgate("log", "show", "s-3", "--json", "--registry", registry_url,
                     "--dir", str(log_dir))  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert sorted(r["role"] for r in json.loads(shown.stdout)) == ["champion", "shadow"]
