"""Registry changes pushed to the catalog on PostgreSQL (LISTEN/NOTIFY, see
:mod:`registry.notify`): a notification makes the catalog sync now instead of at its next
poll, so every gateway converges on a change within well under a second. Polling goes on
as the fallback (and is all SQLite gets)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable

from registry import listen_for_changes

__all__ = ["ChangeWatcher"]

log = logging.getLogger(__name__)


class ChangeWatcher:
    """One thread blocked on LISTEN; each notification schedules ``sync`` on the loop."""

    def __init__(self, url: str, sync: Callable[[], Awaitable[object]]) -> None:
        self._url = url
        self._sync = sync
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[object]] = set()
        self.notified = 0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        def on_change() -> None:
            self.notified += 1
            loop.call_soon_threadsafe(self._schedule)

        self._thread = threading.Thread(
            target=listen_for_changes,
            args=(self._url, on_change, self._stop),
            name="onnxgate-registry-listen",
            daemon=True,
        )
        self._thread.start()

    def _schedule(self) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(self._sync())
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("registry sync on notification failed: %s", task.exception())

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
