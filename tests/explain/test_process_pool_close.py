"""Closing the explanation workers stops a job in progress: a gateway stopped during an
explanation exited 10-30 s after "drained; exiting", the interpreter's exit waiting for the
pool's running job (the pool had been shut down without waiting, not stopped)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from shared import wait_for

from gateway.explain.process import ProcessPool, WorkerStopped, _run_job


class SlowJob:
    """Stands in for a long Kernel SHAP job (picklable: the worker imports this module)."""

    def __init__(self, started: Path) -> None:
        self.started = started

    def run(self) -> None:
        self.started.touch()
        time.sleep(120)


def test_closing_the_pool_stops_a_running_job_and_its_worker(tmp_path: Path) -> None:
    pool = ProcessPool(1)
    future = pool._pool.submit(_run_job, SlowJob(tmp_path / "started"))
    wait_for(lambda: (tmp_path / "started").exists(), timeout=60)
    workers = list(pool._pool._processes.values())
    began = time.monotonic()
    pool.close()
    assert time.monotonic() - began < 15
    assert not any(w.is_alive() for w in workers)
    with pytest.raises(WorkerStopped):
        future.result(timeout=5)
