"""The request journal: served requests by id, with a copy of their inputs, to look up later.

The ``Explain`` RPC explains a prediction served earlier by its request id: it needs the
version that served it and the inputs it was given. The journal is the tap that keeps them
(requests with an id and at most 64 KiB of inputs, copied so the request's buffer is not kept
alive), and :meth:`RequestJournal.lookup` is the one way to read them: it first waits, up to
a second, for the tap queue to settle, so a request answered a moment ago is found.

Bounds: by count, by age (``ttl_s``, the label join's own TTL) and by bytes. The byte bound is
shared with the prediction record it sits beside (:class:`gateway.governor.feedback.
FeedbackStore`): ``others`` reports that record's bytes, and the journal evicts its oldest
entries while the two together exceed ``max_bytes`` or the journal alone holds more than
half of it, so kept inputs can never crowd out the predictions labels join to.

NOTE: :meth:`RequestJournal.observe` runs on the tap thread and lookups on the event loop,
so a lock guards the entries; the copy of the inputs is made before taking it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gateway.domain import Tensors

if TYPE_CHECKING:
    from gateway.serving.taps import TapRecord

__all__ = ["MAX_INPUT_BYTES", "RequestJournal"]

MAX_INPUT_BYTES = 64 * 1024  # a request's inputs kept for explaining it later (copied)
_ENTRY_BYTES = 600  # an entry's fixed cost: the object, its key tuple, the dict slot
_ARRAY_BYTES = 112  # one kept array's object overhead


@dataclass(slots=True, frozen=True)
class _Entry:
    version: str
    inputs: Tensors
    at: float
    size: int


class RequestJournal:
    """Recent requests by (model, request id): the serving version and a copy of the inputs."""

    def __init__(
        self,
        *,
        max_records: int = 100_000,
        ttl_s: float = 3600.0,
        max_bytes: int = 256 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
        others: Callable[[], int] = lambda: 0,
        settle: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        if max_records < 1 or ttl_s <= 0 or max_bytes < 1:
            raise ValueError("max_records and max_bytes must be >= 1 and ttl_s > 0")
        self._max = max_records
        self._max_bytes = max_bytes
        self._ttl = ttl_s
        self._clock = clock
        self._others = others
        self.settle = settle  # set by the composition root: waits for the tap queue
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self.bytes = 0  # estimated bytes of every kept entry
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._entries)

    def observe(self, record: TapRecord) -> None:
        """The tap: keep a served request's inputs under its id (small requests only)."""
        if record.request_id:
            self.keep(record.model, record.version, record.request_id, record.inputs)

    def keep(self, model: str, version: str, request_id: str, inputs: Tensors) -> bool:
        """Keep a copy of ``inputs``; False (nothing kept) over :data:`MAX_INPUT_BYTES`."""
        if sum(a.nbytes for a in inputs.values()) > MAX_INPUT_BYTES:
            return False
        copied = {name: np.array(a) for name, a in inputs.items()}
        arrays = sum(a.nbytes + _ARRAY_BYTES for a in copied.values())
        size = _ENTRY_BYTES + len(request_id) + arrays
        now = self._clock()
        with self._lock:
            key = (model, request_id)
            self._drop(key)  # a reused id refers to its latest request
            self._entries[key] = _Entry(version, copied, now, size)
            self.bytes += size
            self._evict(now)
        return True

    def inputs_of(self, model: str, request_id: str) -> tuple[str, Tensors] | None:
        """The version that served ``request_id`` and its inputs, if still kept."""
        with self._lock:
            entry = self._entries.get((model, request_id))
            if entry is None or self._clock() - entry.at > self._ttl:
                return None
            return entry.version, entry.inputs

    async def lookup(self, model: str, request_id: str) -> tuple[str, Tensors] | None:
        """:meth:`inputs_of`, once the taps settled (a request answered a moment ago may
        still be in the tap queue)."""
        if self.settle is not None:
            await self.settle()
        return self.inputs_of(model, request_id)

    def evict(self) -> None:
        """Apply the bounds now (the record beside it grew)."""
        with self._lock:
            self._evict(self._clock())

    def _drop(self, key: tuple[str, str]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.bytes -= entry.size

    def _over(self) -> bool:
        half = self._max_bytes // 2
        total = self.bytes + self._others()
        return len(self._entries) > self._max or self.bytes > half or total > self._max_bytes

    def _evict(self, now: float) -> None:
        entries = self._entries
        while entries and self._over():
            _, entry = entries.popitem(last=False)
            self.bytes -= entry.size
            self.evicted += 1
        while entries:
            oldest = next(iter(entries.values()))
            if now - oldest.at <= self._ttl:
                break
            _, entry = entries.popitem(last=False)
            self.bytes -= entry.size
            self.evicted += 1
