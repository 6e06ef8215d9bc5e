"""The one small interface every prediction-log sink implements (a new sink = one module).

A sink receives batches — the records of one model and one UTC day as one Arrow table of
:data:`gateway.predictionlog.record.SCHEMA` — on the log's writer thread, never on the
event loop. It must not raise for a record it cannot keep: it drops the record and counts
it in ``dropped``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Batch", "Sink"]


class Batch(NamedTuple):
    """Records of one model and one UTC day (``YYYY-MM-DD``), oldest first."""

    model: str
    day: str
    table: pa.Table


class Sink(Protocol):
    """Where batches go: Parquet files, a CloudEvents receiver, (later) a Kafka topic."""

    name: str
    written: int  # records kept
    dropped: int  # records given up on (disk full, receiver down past the retries)

    def write(self, batch: Batch) -> None:
        """Keep ``batch``'s records (or drop and count them)."""

    def tick(self, now: float) -> None:
        """Called about once a second with ``time.monotonic()``: roll files by age, etc."""

    def close(self) -> None:
        """Flush and release everything (SIGTERM, stop); later writes are dropped."""
