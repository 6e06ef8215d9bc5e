"""The one way blocking work (SQLAlchemy, file I/O, model loads) leaves the event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

__all__ = ["run_blocking"]

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
