"""The registry watch: poll the registry's change counter and sync the catalog on a change.

While the registry cannot be read, the last routes keep serving; the watch reports each
change between reachable and not (readiness says so), and logs one line when the registry
goes and one when it is back, not one per poll.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from registry.errors import RegistryUnavailable

__all__ = ["watch_registry"]

log = logging.getLogger(__name__)


async def watch_registry(
    sync: Callable[[], Awaitable[object]],
    interval_s: float,
    stop: asyncio.Event,
    on_reachable: Callable[[bool], Awaitable[None]] | None = None,
) -> None:
    """Call ``sync`` every ``interval_s`` until ``stop`` is set."""
    reachable = True
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
        except TimeoutError:
            pass
        if stop.is_set():
            break
        try:
            await sync()
        except Exception as exc:  # a registry hiccup must not stop serving
            if not reachable:
                continue
            reachable = False
            if isinstance(exc, RegistryUnavailable):
                log.warning("%s; serving the last known routes until it is back", exc)
            else:
                log.exception("registry sync failed; serving the last known routes")
            if on_reachable is not None:
                await on_reachable(False)
            continue
        if not reachable:
            reachable = True
            log.warning("the registry is reachable again; routes follow it again")
            if on_reachable is not None:
                await on_reachable(True)
