"""Constants and helpers shared by test modules (conftest.py holds only fixtures).

NOTE: import these from here, not from ``conftest``: with several conftest.py files in
the tree, ``import conftest`` can resolve to the wrong one.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ADMIN_TOKEN = "test-admin-token"
# Console screenshots (git-ignored), for a person to look at.
CONSOLE_ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "console"


HOLDING_POLICY = """
[canary]
steps = [20, 50]
interval_s = 0.2
min_requests = 1000000  # never met: the canary holds at its first step for the whole test

[gates]
max_p99_ratio = false  # loopback latency on a loaded box is noise, not evidence
"""
"""A governor policy that decides every 0.2 s and never moves the canary: decisions (and
their metrics) without traffic changes."""


def admin_metadata(token: str = ADMIN_TOKEN) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, every: float = 0.05) -> Any:
    """Poll ``predicate`` until it is truthy and return its value; fail after ``timeout`` s.

    Tests wait on the condition they assert, never on a sleep or a neighbouring condition.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s")


def assert_no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing logged a traceback: bad input is answered with a status, never an exception
    in the log."""
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]


def clear_onnxgate_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset every ONNXGATE_* variable for one test: the CLI reads them, and these tests say
    everything they mean as flags."""
    for key in list(os.environ):
        if key.startswith("ONNXGATE_"):
            monkeypatch.delenv(key)


GRAFANA_DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "onnxgate.json"


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of the shipped dashboard, ``$model`` matching all."""
    doc = json.loads(GRAFANA_DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"].replace("$model", ".+"))
        for panel in doc["panels"]
        for target in panel["targets"]
    ]
