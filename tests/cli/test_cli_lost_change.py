"""A change whose answer never came is not "cannot reach a gateway" (issue 21).

The gateway commits the change, then dies before answering (a real ``onnxgate serve``
with the ``deployment.after_commit=kill`` failpoint): the CLI must say the change may have
been applied and how to check, and the registry must show that it was.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys

from cli_support import clean_env, onnxgate
from shared import ADMIN_TOKEN, wait_for

from gateway.tools import modelzoo


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_change_committed_before_the_gateway_died_says_it_may_have_applied(
    registry, registry_url, tmp_path
):
    registry.register_version("fraud", modelzoo.linear(4, 2, seed=1), actor="t")
    registry.register_version("fraud", modelzoo.linear(4, 2, seed=2), actor="t")
    port = _free_port()
    env = clean_env(
        {"ONNXGATE_ADMIN_TOKEN": ADMIN_TOKEN, "ONNXGATE_FAILPOINTS": "deployment.after_commit=kill"}
    )
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--host", "127.0.0.1",
             "--port", str(port), "--metrics-port", "-1", "--http-port", "-1",
             "--registry", registry_url, "--artifact-dir", str(tmp_path / "artifacts")],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        wait_for(lambda: "onnxgate serving on" in log.read_text() or proc.poll() is not None, 60)
        target = f"127.0.0.1:{port}"
        done = onnxgate(
            "traffic", "set", "fraud", "1=90", "2=10", "--role", "2=canary",
            "--target", target, env={"ONNXGATE_ADMIN_TOKEN": ADMIN_TOKEN},
        )  # fmt: skip
        assert proc.wait(timeout=30) != 0  # the failpoint killed it after the commit
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert done.returncode == 1, done.stdout
    line = done.stderr.strip()
    assert "cannot reach a gateway" not in line
    assert re.search(r"broke during SetWeights .*the change may have been applied", line), line
    assert "onnxgate traffic show MODEL" in line
    weights = {a.version: a.weight for a in registry.get_deployment("fraud").arms}
    assert weights == {"1": 90.0, "2": 10.0}  # it was
