"""The Parquet sink alone: files roll by size and by age (injected clock), every closed
file is reported with its digest, and nothing half-written is ever named ``*.parquet``."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from gateway.predictionlog import ClosedFile, ParquetSink, encode_tensors, file_sha256


def _row(i: int, model: str = "m") -> dict[str, object]:
    x = np.random.default_rng(i).normal(size=(64, 8)).astype(np.float32)
    return {
        "request_id": f"r-{i}", "time": time.time_ns() // 1000, "model": model,
        "version": "1", "artifact_sha256": "ab" * 32, "revision": 3, "role": "champion",
        "face": "grpc", "principal": "alice", "status": "OK", "latency_us": 120,
        "segment": None, "trace_id": None, "inputs": encode_tensors({"x": x}),
        "outputs": encode_tensors({"y": x[:, :2]}),
    }  # fmt: skip


def test_files_roll_by_size_and_age_and_each_is_reported(tmp_path: Path) -> None:
    closed: list[ClosedFile] = []
    now = [0.0]
    probe = ParquetSink(tmp_path / "probe")
    probe.write([_row(0)])
    (open_file,) = (tmp_path / "probe").rglob("*.tmp")
    one_row = open_file.stat().st_size  # what one written row group takes, as written
    probe.close()
    sink = ParquetSink(
        tmp_path / "log",
        roll_bytes=one_row * 3 // 2,
        roll_s=60.0,
        on_closed=closed.append,
        clock=lambda: now[0],
    )
    tmp_path = tmp_path / "log"
    sink.write([_row(0)])  # below the roll size
    assert not closed and list(tmp_path.rglob("*.parquet.tmp"))
    assert not list(tmp_path.rglob("*.parquet"))  # a reader's glob sees no open file
    sink.write([_row(1), _row(2)])  # past the roll size: closes
    assert [c.records for c in closed] == [3]
    sink.write([_row(3), _row(4, model="other")])
    now[0] = 59.0
    sink.tick(now[0])
    assert len(closed) == 1
    now[0] = 61.0
    sink.tick(now[0])  # both open files are now older than roll_s
    assert sorted(c.records for c in closed) == [1, 1, 3]
    sink.write([_row(5)])
    sink.close()
    assert len(closed) == 4 and sink.written == 6 and sink.dropped == 0
    for c in closed:
        path = tmp_path / c.path
        assert c.sha256 == file_sha256(path) and c.bytes == path.stat().st_size
        assert pq.read_metadata(path).num_rows == c.records
        assert path.parent.parent.name == f"model={c.model}"
    sink.write([_row(6)])  # after close: dropped, counted
    assert sink.dropped == 1
