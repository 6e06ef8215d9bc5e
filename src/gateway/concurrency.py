"""The one way blocking work (SQLAlchemy, file I/O, model loads) leaves the event loop; and
how a child process learns that its parent is gone (:func:`watch_parent`)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import select
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

__all__ = ["run_blocking", "watch_parent"]

P = ParamSpec("P")
T = TypeVar("T")


async def run_blocking(
    executor: concurrent.futures.Executor | None,
    fn: Callable[P, T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """Run ``fn`` on ``executor`` (bounded; never the loop's default pool by accident)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, functools.partial(fn, *args, **kwargs))


def _wait_for_exit(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd (old kernel, not Linux): poll instead
        while os.getppid() == pid:
            threading.Event().wait(0.5)
        return
    try:
        select.select([fd], [], [])  # readable once the process has exited
    finally:
        os.close(fd)


def watch_parent(parent: int, on_exit: Callable[[], None]) -> None:
    """Call ``on_exit`` (on a daemon thread) once process ``parent`` has exited — at once if
    it already has. For children that must not outlive a parent killed by SIGKILL, which
    runs no cleanup of its own."""
    if os.getppid() != parent:
        on_exit()
        return

    def watch() -> None:
        _wait_for_exit(parent)
        on_exit()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
