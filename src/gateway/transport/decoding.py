"""Where a request body is decoded, so that no single request stalls the others.

Both faces share one event loop with every other request. Most bodies decode in
microseconds (``np.frombuffer`` over raw bytes) and stay on the loop. Two kinds do not:

* bodies whose decoding loops in Python per element -- BYTES tensors (one ``str`` per
  element) and typed ``contents`` lists: a 12 MB request of 3 million empty strings held the
  loop for 1.9 s. These go to a small thread pool; the GIL then changes hands every switch
  interval (5 ms), so the other requests keep being served;
* large JSON bodies: ``json.loads`` is C code that holds the GIL for the whole parse (a
  60 MB body: 7.6 s for every client, and 580 MB of Python objects). A thread cannot help
  there, so they are parsed in a separate process (one, started on first use, niced) and
  come back as numpy arrays; the gateway's memory never holds their Python lists.

The limits are settings (``decode_thread_bytes``, default 64 KiB; ``decode_process_bytes``,
default 256 KiB, about 8 ms of ``json.loads`` here); 0 turns that step off.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import functools
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable
from typing import ParamSpec, TypeVar

__all__ = ["Decoder"]

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

_PR_SET_PDEATHSIG = 1


def _worker_init() -> None:
    """In the decode process: die with the gateway (never an orphan), yield the CPU to it."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:  # not Linux: the pool's own EOF handling still ends the worker
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the gateway handles ^C and stops us
    os.nice(5)


class Decoder:
    """Runs decode functions inline, on a thread, or in the decode process, by body size."""

    def __init__(self, *, thread_bytes: int, process_bytes: int, threads: int = 2) -> None:
        self._thread_bytes = thread_bytes
        self._process_bytes = process_bytes
        self._threads = threads
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._process: concurrent.futures.ProcessPoolExecutor | None = None
        # Decodes and encodes sent off the loop, by where (read on the loop; plain ints).
        self.offloaded = {"thread": 0, "process": 0}

    def where(self, *, json_bytes: int = 0, other_bytes: int = 0) -> str:
        """``inline``, ``thread`` or ``process`` for a body with ``json_bytes`` of JSON to
        parse and ``other_bytes`` of work that loops in Python (BYTES, typed contents)."""
        if self._process_bytes and json_bytes >= self._process_bytes:
            return "process"
        if self._thread_bytes and max(json_bytes, other_bytes) >= self._thread_bytes:
            return "thread"
        return "inline"

    async def run(self, where: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` where :meth:`where` said; exceptions travel back as raised
        (the process pickles them: every ``GatewayError`` takes its message as sole arg)."""
        if where == "inline":
            return fn(*args, **kwargs)
        self.offloaded[where] += 1
        loop = asyncio.get_running_loop()
        call = functools.partial(fn, *args, **kwargs)
        if where == "process":
            try:
                return await loop.run_in_executor(self._process_pool(), call)
            except concurrent.futures.process.BrokenProcessPool:
                # The decode process died (killed, out of memory): start a fresh one next
                # time, and decode this body on a thread rather than fail the request.
                log.warning("the decode process died; starting another on the next large body")
                self._process = None
        return await loop.run_in_executor(self._thread_pool(), call)

    def _thread_pool(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                self._threads, thread_name_prefix="onnxgate-decode"
            )
        return self._pool

    def _process_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._process is None:
            # NOTE: spawn, not fork: the gateway has running threads (grpc, onnxruntime).
            self._process = concurrent.futures.ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init
            )
        return self._process

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._process is not None:
            self._process.shutdown(wait=True, cancel_futures=True)
            self._process = None
