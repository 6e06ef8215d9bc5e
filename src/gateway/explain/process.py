"""Explanations in worker processes of their own (setting ``explain_processes`` > 0).

Kernel SHAP is CPU-heavy Python: run on a thread of the serving process it holds that
process's GIL and competes with the event loop and the inference pool (measured in
``benchmarks/explain_load.py``). In a worker process it has its own interpreter, and the
process runs at the lowest CPU priority (nice 19), so under contention the scheduler gives
the cores to serving first. A thread still does the parent's part (version model, output
choice, row checks) and waits for the worker's answer without holding the GIL.

Each job carries the version's artifact bytes and what the worker needs to rebuild the
black box; workers keep a session per artifact (by sha256), so the model is loaded once
per worker. Workers are started with ``spawn`` (a fork of a process running grpc threads
is not safe) and import shap as they start, off the request path.

Workers die with the gateway, even one killed by SIGKILL: each watches its parent (a pidfd,
or polling ``getppid`` where there is none) and exits when it is gone. Without that they
lived on, waiting on the pool's queue (each holds a write end of it, so it never reads
EOF), and kept multiprocessing's resource tracker alive with them.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import signal
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gateway.concurrency import watch_parent
from gateway.domain import Tensors
from gateway.explain.background import Background
from gateway.explain.kernel import Runner, explain_rows, require_shap
from gateway.explain.outputs import OutputChoice
from gateway.monitoring.layout import FeatureLayout

__all__ = ["Job", "start_pool"]

FloatArray = npt.NDArray[np.float64]
MAX_SESSIONS = 16  # per worker: sessions of recently explained versions
LOW_PRIORITY = 19

_sessions: dict[str, Runner] = {}


@dataclass(frozen=True)
class Job:
    model: str
    sha256: str
    artifact: bytes
    layout: FeatureLayout
    dtypes: dict[str, np.dtype[np.generic]]
    background: Background
    features: tuple[str, ...]
    choice: OutputChoice
    rows: FloatArray
    nsamples: int | str
    deadline: float  # time.monotonic(): one clock for every process on the machine

    def run(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """In the worker: (base value, attributions, output value) per row."""
        return explain_rows(
            _runner(self),
            self.rows,
            self.choice,
            self.background,
            self.features,
            nsamples=self.nsamples,
            deadline=self.deadline,
            model=self.model,
        )


def _runner(job: Job) -> Runner:
    run = _sessions.get(job.sha256)
    if run is None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(
            job.artifact, sess_options=options, providers=["CPUExecutionProvider"]
        )
        names = [o.name for o in session.get_outputs()]
        layout, dtypes = job.layout, job.dtypes

        def run(rows: FloatArray) -> Tensors:
            return dict(zip(names, session.run(None, layout.split(rows, dtypes)), strict=True))

        while len(_sessions) >= MAX_SESSIONS:
            _sessions.pop(next(iter(_sessions)))
        _sessions[job.sha256] = run
    return run


class WorkerStopped(Exception):
    """The pool was closed while this job ran (the gateway is stopping)."""


_busy = False  # in a worker: whether a job is running (what SIGTERM interrupts)


def _run_job(job: Job) -> tuple[FloatArray, FloatArray, FloatArray]:
    global _busy
    _busy = True
    try:
        return job.run()
    finally:
        _busy = False


def _stop_job(signum: int, frame: object) -> None:
    # An idle worker ignores it: the pool's shutdown sentinel ends it cleanly.
    if _busy:
        raise WorkerStopped("the gateway is stopping")


def _exit_now() -> None:
    os._exit(1)  # nothing to flush: the jobs' answers have nowhere to go now


def _start_worker(parent: int) -> None:
    watch_parent(parent, _exit_now)
    try:
        os.nice(LOW_PRIORITY)
    except OSError:
        pass
    signal.signal(signal.SIGTERM, _stop_job)
    require_shap()  # imported here, as the worker starts, not by its first job


class ProcessPool:
    """A spawn-started pool of niced explanation workers."""

    def __init__(self, processes: int) -> None:
        self._pool = concurrent.futures.ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(os.getpid(),),
        )

    def run(self, job: Job) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Blocking (on an explanation thread): the worker's answer or its exception."""
        return self._pool.submit(_run_job, job).result()

    def close(self) -> None:
        """Stop the workers now, a job in progress included (its caller gets an error).

        NOTE: ``shutdown(wait=False)`` alone leaves a running job running, and the
        interpreter's exit joins the pool's manager thread, which waits for it: a gateway
        stopped during an explanation exited 10-30 s after "drained; exiting". SIGTERM
        makes a busy worker's job raise :class:`WorkerStopped` (see ``_stop_job``), so the
        worker answers, then takes the shutdown sentinel and exits as usual (a worker
        killed outright leaks the queue's semaphore, which Python then warns about).
        """
        processes = list((getattr(self._pool, "_processes", None) or {}).values())
        for process in processes:
            process.terminate()
        self._pool.shutdown(wait=True, cancel_futures=True)


def start_pool(processes: int) -> ProcessPool | None:
    return ProcessPool(processes) if processes > 0 else None
