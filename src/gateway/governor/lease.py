"""Renewing the governor's leader lease on a thread of its own.

The loop takes the lease on its tick, but a tick can be late: a busy event loop, a slow
evaluation, two cores shared with other work. Renewed only there, the lease lapsed under CPU
pressure and another member took over mid-window. The keeper renews it every quarter of its
time to live from its own thread, so the lease holds while the loop is slow; it never takes
a lease another member holds (``acquire`` only renews ours or takes a free or lapsed one),
and the loop's writes stay fenced by ``expected_revision`` in case it still lapses.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

__all__ = ["LeaseKeeper"]

log = logging.getLogger(__name__)


class _Lease(Protocol):
    def acquire(self, holder: str, ttl_s: float) -> bool: ...


class LeaseKeeper:
    """Renews ``holder``'s lease every ``ttl_s / 4`` seconds until :meth:`stop`."""

    def __init__(self, store: _Lease, holder: str, ttl_s: float) -> None:
        self._store = store
        self._holder = holder
        self._ttl_s = ttl_s
        self._stop = threading.Event()
        self.held = True
        self._thread = threading.Thread(target=self._run, name="governor-lease", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._ttl_s / 4):
            try:
                self.held = self._store.acquire(self._holder, self._ttl_s)
            except Exception as exc:  # noqa: BLE001 - the loop's next tick reports outages
                log.debug("lease renewal failed: %s", exc)
                self.held = False
            if not self.held:
                return  # lost (or unreachable): the loop's tick decides what happens next

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stop renewing; waits at most one time-to-live for a renewal in flight (a write
        queued behind a busy SQLite file must not hold up the drain)."""
        self._stop.set()
        self._thread.join(self._ttl_s)
