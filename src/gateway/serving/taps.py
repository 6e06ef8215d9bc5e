"""Taps: what sees a served request after its response, fed off the request path.

The data plane hands every successful request to :meth:`TapQueue.offer` as one
:class:`TapRecord`: one ``len`` and one ``append`` on a bounded deque, nothing else on the
event loop. One worker thread (a :class:`~gateway.sidework.SideWork`) drains the queue
in bulk every ``poll_s`` and hands each record to every tap in turn (shadow scorer, drift
monitor, feedback store). Taps registered as ``every_call`` (the prediction log) also get
the records of calls that failed on a version (``status`` other than ``OK``), which the
plane offers only while such a tap exists; the other taps never see those. A full queue
drops the record and counts it (``onnxgate_tap_dropped_total``); a tap that raises is counted
(``onnxgate_tap_errors_total{tap}``) and logged at most once per ``log_every_s`` per tap,
without the record's tensors. Neither ever changes what the caller got.

Taps run on the worker thread, one record at a time, so each must stay cheap (enqueue to
its own worker, or a few dict updates) and must not touch loop-bound state.

NOTE: records hold references, not copies: request tensors are read-only views over
immutable request bytes and outputs are fresh arrays nobody mutates; the bound on the
queue bounds the memory they keep alive.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, NamedTuple

from gateway.domain import ParamValue, Tensors
from gateway.sidework import SideWork

if TYPE_CHECKING:
    from gateway.metrics import GatewayMetrics
    from gateway.traces import RequestTrace
    from registry.signature import Signature

__all__ = ["Tap", "TapQueue", "TapRecord"]

log = logging.getLogger(__name__)


class TapRecord(NamedTuple):
    """One served request as the taps see it.

    ``outputs`` are every output the version returned (not only the requested ones), and
    ``signature`` is the served version's, so that a tap needs nothing from the catalog.
    NOTE: a NamedTuple, not a frozen dataclass: it is built once per request on the event
    loop, and a frozen dataclass's ``__init__`` costs about 1.4 us here against 0.4 us.
    """

    model: str
    version: str
    role: str
    request_id: str
    parameters: Mapping[str, ParamValue]
    inputs: Tensors
    outputs: Tensors
    signature: Signature
    # What the prediction log keeps besides (gateway.predictionlog); defaults for the rest.
    status: str = "OK"
    latency_us: int = 0
    time_us: int = 0  # UTC, microseconds since the epoch
    revision: int = 0  # the deployment revision of the routing table that chose the version
    sha256: str = ""  # the served artifact's
    face: str = ""  # grpc | http
    principal: str = ""
    trace: RequestTrace | None = None  # tracing or the log on: the call's trace context


Tap = Callable[[TapRecord], None]
"""Called on the tap worker thread with each record; must be cheap and may raise."""


class TapQueue:
    """One bounded queue in front of every tap; see the module docstring."""

    def __init__(
        self,
        taps: Mapping[str, Tap],
        *,
        every_call: Mapping[str, Tap] | None = None,
        capacity: int = 4096,
        metrics: GatewayMetrics | None = None,
        poll_s: float = 0.02,
        log_every_s: float = 10.0,
    ) -> None:
        every = dict(every_call or {})
        self._taps = (*taps.items(), *every.items())
        self._failure_taps = tuple(every.items())
        self._log_every_s = log_every_s
        self._error_counters = (
            {}
            if metrics is None
            else {name: metrics.tap_errors.labels(name) for name, _ in self._taps}
        )
        # The event loop is the only producer: no lock on offer.
        self._work: SideWork[TapRecord] = SideWork(
            "onnxgate-taps",
            self._handle,
            capacity=capacity,
            poll_s=poll_s,
            on_drop=None if metrics is None else metrics.tap_dropped.inc,
        )
        self.offer = self._work.offer  # one bound method: the hot path's only call
        self.flush = self._work.flush
        self.settled = self._work.settled
        self.errors = 0  # worker thread only
        self._last_log: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    @property
    def enabled(self) -> bool:
        """False when there is no tap: the data plane then skips building records."""
        return bool(self._taps)

    @property
    def every_call(self) -> bool:
        """Whether a tap wants every call, failures and full records included (the data
        plane then builds :meth:`TapRecord` with every field and offers failures too)."""
        return bool(self._failure_taps)

    @property
    def offered(self) -> int:
        return self._work.offered

    @property
    def dropped(self) -> int:
        return self._work.dropped

    @property
    def handled(self) -> int:
        return self._work.handled

    def start(self) -> None:
        if self._taps:
            self._work.start()

    def close(self, timeout: float = 10.0) -> None:
        """Hand what is queued to the taps, then stop the worker."""
        self._work.close(timeout)

    def _handle(self, records: list[TapRecord]) -> None:
        for record in records:
            for name, tap in self._taps if record.status == "OK" else self._failure_taps:
                try:
                    tap(record)
                except Exception:  # noqa: BLE001 - a tap never fails a caller
                    self._failed(name, record)

    def _failed(self, name: str, record: TapRecord) -> None:
        self.errors += 1
        counter = self._error_counters.get(name)
        if counter is not None:
            counter.inc()
        now = time.monotonic()
        if now - self._last_log.get(name, -self._log_every_s) < self._log_every_s:
            self._unlogged[name] = self._unlogged.get(name, 0) + 1
            return
        self._last_log[name] = now
        log.exception(
            "tap %s failed on a record of %s:%s (%d more failures since the last report)",
            name,
            record.model,
            record.version,
            self._unlogged.pop(name, 0),
        )
