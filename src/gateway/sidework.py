"""Side work: a bounded queue in front of one worker, with a drop counter. One mechanism.

Everything that consumes served requests off the request path is an instance: the tap
queue (:mod:`gateway.serving.taps`), the drift monitor (:mod:`gateway.monitoring.monitor`),
the global-importance sampler (:mod:`gateway.explain.importance`) and the fleet's
prediction outbox (:mod:`gateway.fleet.node`).

* ``SideWork.offer(item)`` appends to a bounded deque (one ``len`` and one ``append``); a
  full queue drops the item and counts it (``dropped``, and ``on_drop``: the consumer's
  Prometheus counter). Producers on one thread pass ``threadsafe=False`` and pay no lock.
* :meth:`SideWork.drain` hands everything queued to ``handle`` in one list, on the calling
  thread (serialised: one drain at a time, in offer order); ``handled`` counts items.
* :meth:`SideWork.start` runs a worker thread that, until :meth:`SideWork.close`, calls
  ``cycle`` (by default :meth:`drain`) and then waits ``poll_s`` or until woken (``wake``,
  or every offer with ``wake_on_offer``). A consumer without a thread of its own (the
  fleet outbox, drained by its publisher) never starts one.
* :meth:`SideWork.close` stops the worker and drains what is left (``drain_on_close``);
  :meth:`flush` / :meth:`settled` wait until what was offered so far was handled.

NOTE: items are references, not copies; the bound on the queue bounds what they keep alive.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["SideWork"]

T = TypeVar("T")

log = logging.getLogger(__name__)


class SideWork(Generic[T]):
    """See the module docstring."""

    def __init__(
        self,
        name: str,
        handle: Callable[[list[T]], None],
        *,
        capacity: int,
        poll_s: float = 0.02,
        on_drop: Callable[[], object] | None = None,
        cycle: Callable[[], object] | None = None,
        threadsafe: bool = False,
        wake_on_offer: bool = False,
        drain_on_close: bool = True,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.name = name
        self.capacity = capacity
        self.poll_s = poll_s
        self._handle = handle
        self._on_drop = on_drop
        self._cycle = cycle or self.drain
        self._wake_on_offer = wake_on_offer
        self._drain_on_close = drain_on_close
        self._items: deque[T] = deque()
        self._offer_lock = threading.Lock()
        # NOTE: an attribute, not a method that tests for the lock: on the event loop (the
        # tap queue) every call level costs.
        self.offer: Callable[[T], bool] = (
            self._offer_locked
            if threadsafe
            else self._offer_waking
            if wake_on_offer
            else self._offer
        )
        self._drain_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.offered = 0  # producers only (one thread, or under the offer lock)
        self.dropped = 0
        self.handled = 0  # drains only

    @property
    def items(self) -> deque[T]:
        """The queue itself (read-only use: depth, inspection in tests)."""
        return self._items

    @property
    def depth(self) -> int:
        return len(self._items)

    @property
    def stopping(self) -> bool:
        """True once :meth:`close` was called: long handlers may stop early."""
        return self._stop.is_set()

    # -- producers ------------------------------------------------------------------------

    def _offer_locked(self, item: T) -> bool:
        with self._offer_lock:
            if self._offer(item):
                if self._wake_on_offer:
                    self._wake.set()
                return True
            return False

    def _offer_waking(self, item: T) -> bool:
        if self._offer(item):
            self._wake.set()
            return True
        return False

    def _offer(self, item: T) -> bool:
        """Enqueue ``item``, or drop and count it when the queue is full."""
        if len(self._items) >= self.capacity:
            self.dropped += 1
            if self._on_drop is not None:
                self._on_drop()
            return False
        self._items.append(item)
        self.offered += 1
        return True

    # -- consumer -------------------------------------------------------------------------

    def drain(self) -> int:
        """Hand everything queued now to ``handle`` on this thread; returns how many."""
        with self._drain_lock:
            items = self._items
            batch = [items.popleft() for _ in range(len(items))]
            if batch:
                try:
                    self._handle(batch)
                finally:
                    self.handled += len(batch)
            return len(batch)

    def wake(self) -> None:
        """Have the worker cycle now instead of at its next poll."""
        self._wake.set()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker, then (``drain_on_close``) hand what is left to ``handle``."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._drain_on_close:
            self.drain()

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until every item offered so far was handled (tests, shutdown)."""
        target, deadline = self._hurry(timeout)
        while self.handled < target:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)
        return True

    async def settled(self, timeout: float = 1.0) -> bool:
        """Like :meth:`flush`, without blocking the event loop."""
        target, deadline = self._hurry(timeout)
        while self.handled < target:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.001)
        return True

    def _hurry(self, timeout: float) -> tuple[int, float]:
        """What has been offered so far, and when to give up waiting for it: drained here
        when no worker runs, else the worker is woken now instead of at its next poll."""
        target = self.offered
        if self._thread is None:
            self.drain()
        self._wake.set()
        return target, time.monotonic() + timeout

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._cycle()
            except Exception:  # side work must outlive its bugs
                log.exception("side work %s failed; it goes on", self.name)
            # NOTE: waiting after every cycle, busy or not, batches the items handed over
            # per wake-up and keeps this thread from contending for the GIL with the event
            # loop on every request.
            self._wake.wait(self.poll_s)
            self._wake.clear()
