"""The HTTP face as a part of the gateway: its setting, its status table, and a real
``onnxgate serve`` process that serves HTTP and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from shared import wait_for

from gateway import errors
from gateway.settings import Settings, SettingsError
from gateway.tools import modelzoo
from gateway.transport.http.status import http_status
from registry import errors as reg


def test_http_port_setting_from_env_and_its_range() -> None:
    assert Settings().http_port == 8000
    assert Settings.load(environ={"ONNXGATE_HTTP_PORT": "9000"}).http_port == 9000
    assert Settings.load(environ={}, overrides={"http_port": -1}).http_port == -1
    with pytest.raises(SettingsError, match="http_port must be in -1..65535"):
        Settings(http_port=70000)


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (errors.InvalidArgument("x"), 400),
        (errors.Unauthenticated("x"), 401),
        (errors.PermissionDenied("x"), 403),
        (errors.NotFound("x"), 404),
        (errors.FailedPrecondition("x"), 409),
        (errors.MessageTooLarge("x"), 413),
        (errors.ResourceExhausted("x"), 429),
        (errors.InferenceFailed("x"), 500),
        (errors.Unavailable("x"), 503),
        (errors.DeadlineExceeded("x"), 504),
        (reg.NotFoundError("x"), 404),
        (reg.InvalidName("x"), 400),
        (reg.StaleRevision("m", 1, 2), 409),
        (RuntimeError("secret path /etc/x"), 500),
    ],
)
def test_one_table_from_the_error_tree_to_http(exc: Exception, status: int) -> None:
    code, message = http_status(exc)
    assert code == status
    assert "secret" not in message  # the unexpected never shows its text


def test_http_off_binds_nothing(registry, make_gateway) -> None:
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    gw = make_gateway(http_port=-1)
    assert gw.gateway.http is None and gw.gateway.http_port == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_process_answers_http_and_stops_cleanly_on_sigterm(
    registry, registry_url: str, tmp_path: Path
) -> None:
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    port, http_port = _free_port(), _free_port()
    cmd = [
        sys.executable, "-m", "gateway.cli", "serve",
        "--registry", registry_url, "--artifact-dir", str(tmp_path / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--metrics-port", "-1",
        "--http-port", str(http_port),
    ]  # fmt: skip
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        url = f"http://127.0.0.1:{http_port}"

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return proc.poll() is not None  # ends the wait; asserted below

        wait_for(ready, timeout=60, every=0.2)
        assert proc.poll() is None, log.read_text()
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1] * 4}]}
        response = httpx.post(f"{url}/v2/models/lin/infer", json=body, timeout=10)
        assert response.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = log.read_text()
    assert "Traceback" not in text
    assert f"HTTP :{http_port}" in text
