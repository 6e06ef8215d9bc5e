"""Running the real ``onnxgate`` entry point in a subprocess, as a user's shell would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["clean_env", "onnxgate"]


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without any ONNXGATE_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONNXGATE_")}
    env["ONNXGATE_HTTP_PORT"] = "0"  # never the well-known 8000 (see tests/conftest.py)
    env.update(extra or {})
    return env


def onnxgate(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``python -m gateway.cli ARGS`` (what the ``onnxgate`` script runs)."""
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        env=clean_env(env),
        cwd=cwd,
        timeout=timeout,
    )
