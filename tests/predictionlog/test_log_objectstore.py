"""The prediction log in object storage (``prediction_log = s3://BUCKET/PREFIX``) against a
real S3-compatible server (moto_server on loopback, tests/s3_server.py), reached through
boto3 with only the standard AWS environment: uploads under the Hive layout, digests
chained, ``log verify|query`` and ``audit pack`` over the bucket, retried uploads."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from s3_server import S3Server
from shared import wait_for

from gateway.predictionlog.chain import recorded_segments
from gateway.predictionlog.collector import PredictionLogCollector
from gateway.predictionlog.journal import PredictionLog
from gateway.predictionlog.objectstore import ObjectStoreSink, parse_url
from gateway.settings import Settings, SettingsError
from gateway.tools import modelzoo


def _keys(s3: S3Server, bucket: str, prefix: str) -> list[str]:
    listed = s3.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def _serve(registry, make_gateway, url: str, ids: list[str]) -> None:
    gw = make_gateway(prediction_log=(url,))
    for request_id in ids:
        body = {"id": request_id, "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                                              "data": [1, 2, 3, 4]}]}  # fmt: skip
        assert httpx.post(f"{gw.http_url}/v2/models/lin/infer", json=body).status_code == 200
    gw.stop()  # closes, uploads and chains every file


def test_closed_files_land_in_the_bucket_and_the_cli_reads_them(
    registry, make_gateway, onnxgate, s3_env: S3Server, tmp_path: Path, capsys
) -> None:
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    bucket = s3_env.new_bucket()
    spool = tmp_path / "spool"
    ids = [f"r-{i}" for i in range(7)]
    _serve(registry, make_gateway, f"s3://{bucket}/preds?spool={spool}", ids)

    keys = _keys(s3_env, bucket, "preds/")
    assert keys and all(k.startswith("preds/model=lin/date=") and k.endswith(".parquet")
                        for k in keys)  # fmt: skip
    assert not list(spool.rglob("*.parquet"))  # uploaded, then gone from the spool
    chained = recorded_segments(registry.audit_events())
    assert sorted(chained) == sorted(k.removeprefix("preds/") for k in keys)

    where = ("--dir", f"s3://{bucket}/preds")
    capsys.readouterr()
    assert onnxgate("log", "verify", *where) == 0
    assert f"intact: {len(keys)} file(s)" in capsys.readouterr().out
    sql = "select request_id, version, status from log order by request_id"
    assert onnxgate("log", "query", sql, "--json", *where) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [{"request_id": i, "version": "1", "status": "OK"} for i in ids]

    assert onnxgate("log", "show", "r-3", "--json", *where) == 0
    assert json.loads(capsys.readouterr().out)[0]["request_id"] == "r-3"
    # Erasure rewrites the objects holding the record; the bucket still verifies.
    assert onnxgate("log", "erase", "--id", "r-3", "--reason", "art. 17 request", *where) == 0
    capsys.readouterr()
    assert onnxgate("log", "verify", *where) == 0
    capsys.readouterr()
    assert onnxgate("log", "query", "select request_id from log", "--json", *where) == 0
    assert sorted(r["request_id"] for r in json.loads(capsys.readouterr().out)) == [
        i for i in ids if i != "r-3"
    ]
    keys = _keys(s3_env, bucket, "preds/")

    # The pack reads the bucket too.
    out = tmp_path / "pack"
    assert onnxgate("audit", "pack", "lin", "--out", str(out), "--log-dir", where[1]) == 0
    report = json.loads((out / "verification.json").read_text())
    assert report["prediction_log"]["checked"] == len(keys)

    # Tampering in the bucket is caught: an altered object, an added one, a removed one.
    s3 = s3_env.client()
    body = s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read()
    s3.put_object(Bucket=bucket, Key=keys[0], Body=body[:-1] + b"\x00")
    s3.put_object(Bucket=bucket, Key="preds/model=lin/date=2026-01-01/extra.parquet", Body=body)
    capsys.readouterr()
    assert onnxgate("log", "verify", "--json", *where) == 1
    found = json.loads(capsys.readouterr().out)
    assert found["altered"] == [keys[0].removeprefix("preds/")]
    assert found["added"] == ["model=lin/date=2026-01-01/extra.parquet"]
    s3.delete_object(Bucket=bucket, Key=keys[0])
    assert onnxgate("log", "verify", "--json", *where) == 1
    assert json.loads(capsys.readouterr().out)["missing"] == [keys[0].removeprefix("preds/")]


def test_an_upload_that_fails_waits_in_the_spool_and_is_retried(
    s3_env: S3Server, tmp_path: Path
) -> None:
    bucket = f"{s3_env.new_bucket()}-later"  # not created yet: every upload fails
    spool = tmp_path / "spool"
    leftover = spool / "model=lin" / "date=2026-03-01" / "part-earlier.parquet"
    leftover.parent.mkdir(parents=True)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"request_id": ["a", "b"]}), leftover)
    chained: list[str] = []
    sink = ObjectStoreSink(f"s3://{bucket}/p", spool, retry_s=0.05,
                           on_uploaded=lambda c: chained.append(c.path))  # fmt: skip
    try:
        assert sink.waiting == 1  # a file an earlier process left behind
        sink.tick(0.0)
        wait_for(lambda: sink.upload_failures >= 2)
        assert leftover.exists() and chained == []  # kept, not chained
        metrics = CollectorRegistry()
        metrics.register(PredictionLogCollector(PredictionLog([sink])))
        labels = {"sink": f"s3://{bucket}/p"}
        assert metrics.get_sample_value("onnxgate_prediction_log_upload_waiting", labels) == 1
        failed = metrics.get_sample_value("onnxgate_prediction_log_upload_failures_total", labels)
        assert failed is not None and failed >= 2
        s3_env.client().create_bucket(Bucket=bucket)
        wait_for(lambda: sink.waiting == 0)
    finally:
        sink.close()
    assert chained == ["model=lin/date=2026-03-01/part-earlier.parquet"]
    assert sink.uploaded[0].records == 2
    assert not leftover.exists()
    assert _keys(s3_env, bucket, "p/") == ["p/model=lin/date=2026-03-01/part-earlier.parquet"]


def test_the_url_names_a_bucket() -> None:
    with pytest.raises(SettingsError, match="prediction_log 's3:///p'"):
        Settings.load({"ONNXGATE_PREDICTION_LOG": "s3:///p"})
    assert Settings.load({"ONNXGATE_PREDICTION_LOG": "s3://b/p"}).prediction_log == ("s3://b/p",)
    assert parse_url("s3://b/a/b/?spool=/tmp/x") == ("b", "a/b", Path("/tmp/x"))
    assert parse_url("s3://b") == ("b", "", None)
    with pytest.raises(ValueError, match="unknown option"):
        parse_url("s3://b/p?cache_mb=3")
    with pytest.raises(ValueError, match="s3://BUCKET/PREFIX"):
        parse_url("s3:///p")
