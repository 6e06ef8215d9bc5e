"""The prediction log end to end: a real gateway serving gRPC and HTTP with the log on.

Every call of a known model — successes and refusals — is in the Parquet files after the
gateway stops, once per id, with its version, artifact digest and status; the logged
inputs run through onnxruntime give exactly the logged outputs; and the closed files'
digests are chained into the audit log so that ``verify`` catches a file changed, removed
or added.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import grpc
import httpx
import numpy as np
import onnxruntime as ort
import pyarrow.parquet as pq
import pytest

from gateway._proto import grpc_service_pb2 as pb
from gateway.predictionlog import decode_tensors, recorded_segments, verify
from gateway.tools import modelzoo

TOKEN = "predict-secret"


def _grpc_request(request_id: str, x: np.ndarray) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="lin", id=request_id)
    request.inputs.add(name="x", datatype="FP32", shape=list(x.shape))
    request.raw_input_contents.append(x.astype("<f4").tobytes())
    return request


@pytest.fixture
def served(registry, make_gateway, tmp_path: Path):
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    log_dir = tmp_path / "log"
    gw = make_gateway(prediction_log=(f"file:{log_dir}",), predict_tokens={TOKEN: "alice"})
    return gw, log_dir


def test_every_call_is_logged_once_and_replays(served, registry) -> None:
    gw, log_dir = served
    rng = np.random.default_rng(0)
    stub = gw.stub()
    auth = (("authorization", f"Bearer {TOKEN}"),)
    sent: dict[str, str] = {}
    for i in range(8):
        stub.ModelInfer(_grpc_request(f"g-{i}", rng.normal(size=(2, 4))), metadata=auth)
        sent[f"g-{i}"] = "OK"
    with pytest.raises(grpc.RpcError) as refused:  # 3 features, not 4: a known model refuses
        stub.ModelInfer(_grpc_request("g-bad", rng.normal(size=(1, 3))), metadata=auth)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    sent["g-bad"] = "INVALID_ARGUMENT"
    headers = {"authorization": f"Bearer {TOKEN}"}
    for i in range(8):
        body = {
            "id": f"h-{i}",
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                        "data": rng.normal(size=4).tolist()}],
        }  # fmt: skip
        response = httpx.post(f"{gw.http_url}/v2/models/lin/infer", json=body, headers=headers)
        assert response.status_code == 200, response.text
        sent[f"h-{i}"] = "OK"
    bad = {"id": "h-bad", "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2],
                                      "data": [1, 2]}]}  # fmt: skip
    response = httpx.post(f"{gw.http_url}/v2/models/lin/infer", json=bad, headers=headers)
    assert response.status_code == 400
    sent["h-bad"] = "INVALID_ARGUMENT"
    # A call without an id gets one, and it is the one logged.
    anonymous = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [0] * 4}]}
    response = httpx.post(f"{gw.http_url}/v2/models/lin/infer", json=anonymous, headers=headers)
    assigned = response.json()["id"]
    assert assigned
    sent[assigned] = "OK"
    # An unknown model is no model's record.
    response = httpx.post(f"{gw.http_url}/v2/models/nope/infer", json=anonymous, headers=headers)
    assert response.status_code == 404

    gw.stop()  # what SIGTERM runs: drain, then flush and close every file

    files = sorted(log_dir.rglob("*.parquet"))
    assert files and not list(log_dir.rglob("*.tmp"))
    assert all(f.parent.parent.name == "model=lin" for f in files)
    assert all(f.parent.name.startswith("date=") for f in files)
    # Read as any Hive-aware reader does: the model comes from the path.
    table = pq.read_table(log_dir, partitioning="hive").to_pylist()
    primary = [row["request_id"] for row in table if row["role"] != "shadow"]
    assert sorted(primary) == sorted(sent)  # every call, each exactly once as primary
    version = registry.list_versions("lin")[0]
    model_bytes = modelzoo.linear(4, 2, seed=3)
    runner = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    for row in table:
        assert row["status"] == sent[row["request_id"]]
        assert str(row["model"]) == "lin"
        assert row["version"] == version.version
        assert row["artifact_sha256"] == version.sha256
        assert row["principal"] == "alice"
        assert row["face"] == ("grpc" if row["request_id"].startswith("g-") else "http")
        assert row["role"] == "champion"
        assert row["revision"] >= 1
        assert row["latency_us"] >= 0
        inputs = decode_tensors(row["inputs"])
        if row["status"] != "OK":
            assert row["outputs"] == []
            continue
        outputs = decode_tensors(row["outputs"])
        replayed = runner.run(None, inputs)
        names = [o.name for o in runner.get_outputs()]
        for name, value in zip(names, replayed, strict=True):
            assert np.array_equal(outputs[name], value), name
    # DuckDB reads the files as they are.
    count = (
        duckdb.connect()
        .execute(
            f"select count(*) from read_parquet('{log_dir}/**/*.parquet', hive_partitioning=true) "
            "where model = 'lin'"
        )
        .fetchall()
    )
    assert count == [(len(sent),)]

    # Every closed file is in the audit chain, and verify catches a change, removal, addition.
    segments = recorded_segments(registry.audit_events())
    assert set(segments) == {f.relative_to(log_dir).as_posix() for f in files}
    assert verify(log_dir, segments, registry.verify_audit_chain()).ok
    target = files[0]
    original = target.read_bytes()
    target.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    assert verify(log_dir, segments, []).altered == [target.relative_to(log_dir).as_posix()]
    target.unlink()
    assert verify(log_dir, segments, []).missing == [target.relative_to(log_dir).as_posix()]
    extra = target.parent / "part-forged.parquet"
    extra.write_bytes(original)
    found = verify(log_dir, segments, [])
    assert found.added == [extra.relative_to(log_dir).as_posix()] and not found.ok
