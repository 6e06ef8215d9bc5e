"""``serve --workers 2`` killed with SIGKILL (no chance to forward SIGTERM) leaves no worker
behind: each worker watches its parent and drains itself when it is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from fleettools import ENV, Fleet, free_port
from governor.govtools import threshold_model
from procs import descendants, live_processes
from shared import wait_for

from registry import Registry


def test_sigkill_of_the_parent_stops_every_worker(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    registry = Registry.open(url, tmp_path / "artifacts")
    registry.register_version("w", threshold_model(1), version="1", actor="t")
    fleet = Fleet(url, registry)
    env = {**os.environ, **{k: v for k, v in ENV.items() if k != "ONNXGATE_FLEET"}}
    cmd = [
        sys.executable, "-m", "gateway.cli", "serve", "--workers", "2", "--registry", url,
        "--artifact-dir", str(tmp_path / "artifacts"), "--host", "127.0.0.1",
        "--port", str(free_port()), "--metrics-port", "-1", "--http-port", "-1",
    ]  # fmt: skip
    with open(tmp_path / "serve.log", "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    left: set[int] = set()
    try:
        wait_for(lambda: len(fleet.live()) == 2, timeout=120, every=0.2)
        left = descendants(proc.pid)
        assert len(left) >= 2
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    try:
        wait_for(lambda: not (left & set(live_processes())), timeout=60, every=0.2)
    finally:
        for pid in left & set(live_processes()):  # only what this test started
            os.kill(pid, signal.SIGKILL)
        registry.close()
