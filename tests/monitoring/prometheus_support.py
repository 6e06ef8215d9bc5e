"""A real Prometheus for the monitoring tests: finding the binaries, running a server that
scrapes one gateway, and querying it.

Prometheus and promtool come from Debian's ``prometheus`` package (installed by
``.ci/run``). Without them the tests that need them skip locally and fail in CI
(``CI=true``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is required in CI (Debian package 'prometheus')")
        # -ra prints only the reason and a line number: say which test and how to run it.
        test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0] or "this test"
        pytest.skip(
            f"{test}: {name} is not installed; `apt-get install prometheus` (or `.ci/run`, "
            "which installs it) to run the real-Prometheus tests"
        )
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def query(base: str, promql: str) -> list[dict[str, Any]]:
    doc = get(f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
    assert doc["status"] == "success", doc
    result: list[dict[str, Any]] = doc["data"]["result"]
    return result


def wait_for_series(
    base: str, promql: str, count: int, timeout: float = 30.0
) -> list[dict[str, Any]]:
    """``promql``'s result once it has ``count`` series (Prometheus scrapes on its own
    clock, so this polls the condition asserted); fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    result: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            result = query(base, promql)
        except OSError:
            result = []  # not listening yet
        if len(result) >= count:
            return result
        time.sleep(0.25)
    raise AssertionError(f"{promql}: {len(result)} series after {timeout}s, wanted {count}")


@contextlib.contextmanager
def running_prometheus(
    tmp_path: Path, metrics_port: int, rule_files: Sequence[Path] = ()
) -> Iterator[str]:
    """A Prometheus scraping ``127.0.0.1:metrics_port`` every second (job ``onnxgate``),
    with ``rule_files``; yields its base URL and stops it afterwards."""
    prometheus = binary("prometheus")
    port = _free_port()
    rules = "".join(f"  - {path}\n" for path in rule_files)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        + (f"rule_files:\n{rules}" if rules else "")
        + "scrape_configs:\n  - job_name: onnxgate\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{metrics_port}']\n"
    )
    with open(tmp_path / "prometheus.log", "wb") as log:
        proc = subprocess.Popen(
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
