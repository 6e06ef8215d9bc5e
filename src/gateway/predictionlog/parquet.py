"""The Parquet sink: Hive-partitioned files ``DIR/model=NAME/date=YYYY-MM-DD/*.parquet``.

One open file per (model, UTC date), written as ``*.parquet.tmp`` and renamed when closed,
so a reader's ``**/*.parquet`` glob never meets a file without its footer. A file closes
when it passes ``roll_bytes``, when it is older than ``roll_s``, when its date ends, and
on :meth:`ParquetSink.close`. Each closed file's sha256 goes to ``on_closed`` (the
gateway chains it into the registry's audit log, see :mod:`.chain`).

A write that fails (disk full, permissions) drops its rows and counts them; the file it
was writing is given up (its rows counted as dropped too) and the next batch starts a
new one. Nothing here raises to the caller.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq

from gateway.predictionlog.record import FILE_SCHEMA
from gateway.predictionlog.sink import Batch

__all__ = ["STATS_COLUMNS", "ClosedFile", "ParquetSink", "file_sha256"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClosedFile:
    """One finished file: its path relative to the log's directory, digest and size."""

    path: str
    model: str
    sha256: str
    records: int
    bytes: int


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


STATS_COLUMNS = [f.name for f in FILE_SCHEMA if not pa.types.is_list(f.type)]


class _Open:
    """One file being written."""

    def __init__(self, tmp: Path, final: Path, model: str, opened: float) -> None:
        self.tmp = tmp
        self.final = final
        self.model = model
        self.opened = opened
        # NOTE: statistics on the scalar columns only: min/max of the tensors' bytes would
        # store each row group's extremes twice more (a one-record file: 19 KB, not 8.5).
        self.writer = pq.ParquetWriter(
            tmp, FILE_SCHEMA, compression="zstd", write_statistics=STATS_COLUMNS
        )
        self.records = 0


class ParquetSink:
    """See the module docstring."""

    def __init__(
        self,
        directory: Path,
        *,
        roll_bytes: int = 128 * 1024 * 1024,
        roll_s: float = 3600.0,
        on_closed: Callable[[ClosedFile], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = f"file:{directory}"
        self.directory = directory
        self._roll_bytes = roll_bytes
        self._roll_s = roll_s
        self._on_closed = on_closed
        self._clock = clock
        self._open: dict[tuple[str, str], _Open] = {}
        self._seq = 0
        self._tag = f"{socket.gethostname()}-{os.getpid()}"
        self._closed = False
        self.written = 0
        self.dropped = 0
        self.files: list[ClosedFile] = []

    def write(self, batch: Batch) -> None:
        count = batch.table.num_rows
        if self._closed:
            self.dropped += count
            return
        key = (batch.model, batch.day)
        current = self._open.get(key)
        try:
            if current is None:
                current = self._start(*key)
            current.writer.write_table(batch.table.drop_columns(["model"]))
        except Exception as exc:  # noqa: BLE001 - a full disk must never reach a caller
            self.dropped += count
            log.warning("prediction log: %d records dropped writing %s: %s", count, key, exc)
            if current is not None:
                self._abandon(key, current)
            return
        current.records += count
        self.written += count
        if current.tmp.stat().st_size >= self._roll_bytes:
            self._finish(key)

    def _start(self, model: str, day: str) -> _Open:
        folder = self.directory / f"model={quote(model, safe='')}" / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        final = folder / f"part-{stamp}-{self._tag}-{self._seq}.parquet"
        opened = _Open(final.with_name(final.name + ".tmp"), final, model, self._clock())
        self._open[(model, day)] = opened
        return opened

    def _abandon(self, key: tuple[str, str], current: _Open) -> None:
        """Give up a file a write failed on: its earlier rows are lost with it."""
        self._open.pop(key, None)
        self.written -= current.records
        self.dropped += current.records
        try:
            current.writer.close()
        except Exception:  # noqa: BLE001 - already failing; the file goes either way
            pass
        current.tmp.unlink(missing_ok=True)

    def _finish(self, key: tuple[str, str]) -> None:
        current = self._open.pop(key)
        try:
            current.writer.close()
            os.replace(current.tmp, current.final)
            closed = ClosedFile(
                current.final.relative_to(self.directory).as_posix(),
                current.model,
                file_sha256(current.final),
                current.records,
                current.final.stat().st_size,
            )
        except Exception as exc:  # noqa: BLE001
            log.warning("prediction log: closing %s failed: %s", current.tmp, exc)
            self.written -= current.records
            self.dropped += current.records
            current.tmp.unlink(missing_ok=True)
            return
        self.files.append(closed)
        if self._on_closed is not None:
            try:
                self._on_closed(closed)
            except Exception:
                log.exception("prediction log: recording %s in the audit log failed", closed.path)

    def tick(self, now: float) -> None:
        today = datetime.now(UTC).strftime("%Y-%m-%d")
        for key in [k for k, f in self._open.items() if now - f.opened >= self._roll_s]:
            self._finish(key)
        for key in [k for k in self._open if k[1] != today]:
            self._finish(key)

    def close(self) -> None:
        for key in list(self._open):
            self._finish(key)
        self._closed = True
