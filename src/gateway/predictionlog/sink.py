"""The one small interface every prediction-log sink implements (a new sink = one module).

A sink receives rows (dicts of :data:`gateway.predictionlog.record.SCHEMA`'s columns) in
batches, on the log's writer thread, never on the event loop. It must not raise for a
record it cannot keep: it drops the record and counts it in ``dropped``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["Row", "Sink"]

Row = dict[str, Any]
"""One record as :func:`gateway.predictionlog.record.row_of` builds it."""


class Sink(Protocol):
    """Where rows go: Parquet files, a CloudEvents receiver, (later) a Kafka topic."""

    name: str
    written: int  # records kept
    dropped: int  # records given up on (disk full, receiver down past the retries)

    def write(self, rows: Sequence[Row]) -> None:
        """Keep ``rows`` (or drop and count them); called with at least one row."""

    def tick(self, now: float) -> None:
        """Called about once a second with ``time.monotonic()``: roll files by age, etc."""

    def close(self) -> None:
        """Flush and release everything (SIGTERM, stop); later writes are dropped."""
