"""The prediction log itself: a tap that turns records into rows and hands them to sinks.

:class:`PredictionLog` is called with one :class:`~gateway.serving.taps.TapRecord` at a
time on the tap worker thread: it is the gateway's one :class:`~gateway.serving.taps.TapQueue`'s
``every_call`` tap, so it also gets calls that failed on a version, and the request path
pays the same one enqueue as without it.
It samples by a hash of the request id and keeps the record aside, by model and UTC day;
every ``batch_rows`` records — or every ``flush_s``, from its own small timer thread, which
also lets sinks roll files by age — each group becomes one Arrow table
(:func:`~gateway.predictionlog.record.table_of`) handed to every sink.
:meth:`PredictionLog.close` flushes and closes every sink (SIGTERM, stop).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from gateway.predictionlog.record import in_sample, table_of
from gateway.predictionlog.sink import Batch, Sink
from gateway.serving.taps import TapRecord

__all__ = ["PredictionLog"]

log = logging.getLogger(__name__)

_DAY_US = 86_400 * 1_000_000


class PredictionLog:
    """See the module docstring."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        sample: float = 1.0,
        samples: Mapping[str, float] | None = None,
        keep_inputs: bool = True,
        segment_param: str = "segment",
        batch_rows: int = 512,
        flush_s: float = 1.0,
    ) -> None:
        self.sinks = tuple(sinks)
        self._sample = sample
        self._samples = dict(samples or {})  # per-model shares over ``sample``
        self._keep_inputs = keep_inputs
        self._segment_param = segment_param
        self._batch_rows = batch_rows
        self._flush_s = flush_s
        # (model, UTC day number) -> records; NOTE: they hold the request's tensors until
        # the next flush, at most batch_rows records or flush_s seconds.
        self._pending: dict[tuple[str, int], list[TapRecord]] = {}
        self._count = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        self.seen = 0
        self.sampled_out = 0
        self.errors = 0

    def __call__(self, record: TapRecord) -> None:
        """The tap: keep ``record`` when it is in the sample. Called on the tap worker and,
        for shadow answers, on the shadow scorer's threads: the counters move under the lock."""
        kept = in_sample(record.request_id, self._samples.get(record.model, self._sample))
        key = (record.model, record.time_us // _DAY_US)
        with self._lock:
            self.seen += 1
            if not kept:
                self.sampled_out += 1
                return
            group = self._pending.get(key)
            if group is None:
                group = self._pending[key] = []
            group.append(record)
            self._count += 1
            if self._count >= self._batch_rows:
                self._flush_locked()

    @property
    def written(self) -> int:
        return sum(s.written for s in self.sinks)

    @property
    def dropped(self) -> int:
        return sum(s.dropped for s in self.sinks)

    def start(self) -> None:
        # NOTE: pyarrow initialises its compute functions on first use (over a second on a
        # busy 2-core machine): paid here, before the gateway reports SERVING, not by the
        # first flush while it serves (holding the GIL the event loop needs).
        table_of([], keep_inputs=self._keep_inputs)
        if self._timer is None:
            self._stop.clear()
            self._timer = threading.Thread(target=self._tick, name="onnxgate-predlog", daemon=True)
            self._timer.start()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def close(self) -> None:
        """Hand what is buffered to the sinks, then close them (files renamed and chained)."""
        self._stop.set()
        if self._timer is not None:
            self._timer.join()
            self._timer = None
        with self._lock:
            self._flush_locked()
            for sink in self.sinks:
                try:
                    sink.close()
                except Exception:
                    log.exception("prediction log: closing sink %s failed", sink.name)

    def _tick(self) -> None:
        while not self._stop.wait(self._flush_s):
            with self._lock:
                self._flush_locked()
                now = time.monotonic()
                for sink in self.sinks:
                    try:
                        sink.tick(now)
                    except Exception:
                        self.errors += 1
                        log.exception("prediction log: sink %s failed to roll", sink.name)

    def _flush_locked(self) -> None:
        pending, self._pending, self._count = self._pending, {}, 0
        for (model, day), records in pending.items():
            try:
                table = table_of(
                    records, keep_inputs=self._keep_inputs, segment_param=self._segment_param
                )
            except Exception:
                self.errors += 1
                log.exception("prediction log: %d records of %s not convertible", len(records),
                              model)  # fmt: skip
                continue
            when = datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%d")
            batch = Batch(model, when, table)
            for sink in self.sinks:
                try:
                    sink.write(batch)
                except Exception:
                    self.errors += 1
                    sink.dropped += len(records)
                    log.exception("prediction log: sink %s failed", sink.name)
