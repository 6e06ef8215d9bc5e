"""The image's install, as shipped: the Dockerfile's own ``pip wheel`` and ``pip install``
commands (its extras included), run in a clean venv, give an ``onnxgate`` that registers a
model into a throwaway PostgreSQL registry and an S3 bucket (moto_server), and serves it
over HTTP from a directory that never saw the artifact file.

This is what failed before: the image had no PostgreSQL driver, so the manifests' DSN died
at start. Slow (it installs every dependency; pip's cache helps on later runs).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from pg_cluster import wipe
from s3_server import S3Server, _free_port
from shared import wait_for

from gateway.tools import modelzoo

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(900)]


def _dockerfile_pip_commands(wheels: Path, source: Path) -> list[list[str]]:
    """The Dockerfile's pip commands, its build arguments expanded and its paths local."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.MULTILINE))
    commands = []
    for line in re.findall(r"^RUN (.*)$", text, re.MULTILINE):
        for part in line.split("&&"):
            words = shlex.split(re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], part))
            if words[:1] != ["pip"]:
                continue
            # --no-cache-dir keeps the image small; here the cache makes reruns fast.
            words = [w for w in words if w != "--no-cache-dir"]
            words = [str(wheels) if w == "/wheels" else w for w in words]
            words = [str(source) + w[1:] if w.startswith(".[") else w for w in words]
            commands.append(words)
    assert [c[:2] for c in commands] == [["pip", "wheel"], ["pip", "install"]], commands
    assert args["ONNXGATE_EXTRAS"].split(",") == ["postgres", "s3"]
    return commands


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except OSError:
        return 0, ""


def test_the_images_install_serves_from_postgres_and_s3(
    tmp_path: Path, postgres_server: str, s3_server: S3Server
) -> None:
    wipe(postgres_server)
    source = tmp_path / "src"  # what the build stage copies in
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ONNXGATE_", "AWS_", "PYTHON", "VIRTUAL_ENV"))
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    for words in _dockerfile_pip_commands(tmp_path / "wheels", source):
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", *words], check=True, cwd=tmp_path, env=env,
            capture_output=True, timeout=600,
        )  # fmt: skip
    bucket = s3_server.new_bucket()
    env.update(s3_server.env)
    env.update(
        ONNXGATE_REGISTRY=postgres_server,
        ONNXGATE_ARTIFACT_STORE=f"s3://{bucket}/models",
    )
    laptop = tmp_path / "laptop"  # registers; shares nothing with the pod but URL and bucket
    laptop.mkdir()
    (laptop / "m.onnx").write_bytes(modelzoo.linear(4, 2, seed=1))
    onnxgate = str(venv / "bin" / "onnxgate")
    subprocess.run(
        [onnxgate, "models", "register", "m", "m.onnx"], check=True, cwd=laptop, env=env,
        capture_output=True, timeout=120,
    )  # fmt: skip
    pod = tmp_path / "pod"
    pod.mkdir()
    http, grpc_port, metrics = _free_port(), _free_port(), _free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [onnxgate, "serve", "--host", "127.0.0.1", "--port", str(grpc_port),
         "--metrics-port", str(metrics), "--http-port", str(http)],
        cwd=pod, env={**env, "ONNXGATE_ARTIFACT_DIR": str(pod / "cache")},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{http}"
        wait_for(
            lambda: proc.poll() is not None or _get(f"{base}/v2/models/m/ready")[0] == 200,
            timeout=120,
        )
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
        body = json.dumps(
            {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
        ).encode()
        request = urllib.request.Request(
            f"{base}/v2/models/m/infer", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            (output,) = json.loads(response.read())["outputs"]
        assert output["shape"] == [1, 2]
        status, text = _get(f"http://127.0.0.1:{metrics}/metrics")
        assert status == 200 and "onnxgate_inflight_requests" in text
        assert any((pod / "cache").rglob("*"))  # loaded from the bucket through the cache
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
