"""``onnxgate serve`` as a newcomer starts it: a busy port is one line naming the setting;
the start-up line says plainly whether /metrics is on; no admin token is warned about."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import pytest
from cli_support import clean_env, onnxgate
from shared import wait_for


@pytest.fixture
def busy_port():
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize(
    ("flag", "setting", "env"),
    [
        ("--port", "port", "ONNXGATE_PORT"),
        ("--metrics-port", "metrics_port", "ONNXGATE_METRICS_PORT"),
    ],
)
def test_a_busy_port_is_one_line_naming_the_setting(busy_port, tmp_path, flag, setting, env):
    other = "--metrics-port" if flag == "--port" else "--port"
    done = onnxgate(
        "serve", flag, str(busy_port), other, "0", "--registry",
        f"sqlite:///{tmp_path / 'r.db'}", "--artifact-dir", str(tmp_path / "a"),
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    line = done.stderr.strip()
    assert line.startswith("onnxgate: cannot listen for ")
    assert f":{busy_port}" in line and flag in line and env in line and f"setting {setting}" in line


def test_start_up_says_metrics_are_off_and_warns_without_an_admin_token(tmp_path):
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--port", "0", "--metrics-port", "-1",
             "--registry", f"sqlite:///{tmp_path / 'r.db'}", "--artifact-dir", str(tmp_path / "a")],
            stdout=out, stderr=subprocess.STDOUT, env=clean_env(),
        )  # fmt: skip
    try:
        wait_for(lambda: "no admin token configured" in log.read_text(), timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    text = log.read_text()
    assert "no /metrics)" in text and "metrics :" not in text
    assert "ONNXGATE_ADMIN_TOKEN" in text
    assert "alembic" not in text
