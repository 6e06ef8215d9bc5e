"""The Parquet sink alone: files roll by size and by age (injected clock), every closed
file is reported with its digest, and nothing half-written is ever named ``*.parquet``."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from gateway.predictionlog import Batch, ClosedFile, ParquetSink, file_sha256, table_of
from gateway.serving.taps import TapRecord


def _batch(*ids: int, model: str = "m") -> Batch:
    records = []
    for i in ids:
        x = np.random.default_rng(i).normal(size=(64, 8)).astype(np.float32)
        records.append(
            TapRecord(model, "1", "champion", f"r-{i}", {}, {"x": x}, {"y": x[:, :2]}, None,  # type: ignore[arg-type]
                      "OK", 120, time.time_ns() // 1000, 3, "ab" * 32, "grpc", "alice")
        )  # fmt: skip
    day = time.strftime("%Y-%m-%d", time.gmtime())
    return Batch(model, day, table_of(records, keep_inputs=True))


def test_files_roll_by_size_and_age_and_each_is_reported(tmp_path: Path) -> None:
    closed: list[ClosedFile] = []
    now = [0.0]
    probe = ParquetSink(tmp_path / "probe")
    probe.write(_batch(0))
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
    sink.write(_batch(0))  # below the roll size
    assert not closed and list(tmp_path.rglob("*.parquet.tmp"))
    assert not list(tmp_path.rglob("*.parquet"))  # a reader's glob sees no open file
    sink.write(_batch(1, 2))  # past the roll size: closes
    assert [c.records for c in closed] == [3]
    sink.write(_batch(3))
    sink.write(_batch(4, model="other"))
    now[0] = 59.0
    sink.tick(now[0])
    assert len(closed) == 1
    now[0] = 61.0
    sink.tick(now[0])  # both open files are now older than roll_s
    assert sorted(c.records for c in closed) == [1, 1, 3]
    sink.write(_batch(5))
    sink.close()
    assert len(closed) == 4 and sink.written == 6 and sink.dropped == 0
    for c in closed:
        path = tmp_path / c.path
        assert c.sha256 == file_sha256(path) and c.bytes == path.stat().st_size
        assert pq.read_metadata(path).num_rows == c.records
        assert path.parent.parent.name == f"model={c.model}"
    sink.write(_batch(6))  # after close: dropped, counted
    assert sink.dropped == 1
