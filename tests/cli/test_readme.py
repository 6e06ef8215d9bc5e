"""The README's ``sh`` blocks, run as written, in order, in one shell, against a real
``onnxgate serve`` started by the README itself (conventions: the README's "How this README
is tested"). A failing command fails the test with the script's output."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from cli_support import clean_env

from gateway.tools import modelzoo

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _demo_shaped(seed: int) -> bytes:
    """A linear model shaped like the demo's credit models: one input ``X`` of 8 features
    (the name the README's HTTP example sends)."""
    model = onnx.load_from_string(modelzoo.linear(8, 2, seed=seed))
    (graph_input,) = model.graph.input
    old = graph_input.name
    graph_input.name = "X"
    for node in model.graph.node:
        node.input[:] = ["X" if name == old else name for name in node.input]
    return model.SerializeToString()


def _stand_in_for_make_demo(root: Path) -> None:
    """What the README's steps take from ``make demo``: .venv, two models and five rows."""
    (root / ".venv").symlink_to(Path(sys.prefix))
    demo = root / "onnxgate-data" / "demo"
    demo.mkdir(parents=True)
    for version, seed in (("1", 1), ("2", 2)):
        (demo / f"credit-v{version}.onnx").write_bytes(_demo_shaped(seed))
    rows = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    np.save(demo / "five-rows.npy", rows)


def test_readme_blocks_extract() -> None:
    blocks = BLOCK.findall(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 4
    script = "\n".join(blocks)
    assert "onnxgate serve" in script and "onnxgate infer" in script


def test_every_sh_block_of_the_readme_works_as_written(tmp_path: Path) -> None:
    _stand_in_for_make_demo(tmp_path)
    blocks = BLOCK.findall(README.read_text(encoding="utf-8"))
    script = "set -e -o pipefail\n" + "\n".join(
        f"echo '>>> README block {n}'\n{block}" for n, block in enumerate(blocks, start=1)
    )
    port, metrics, http = _free_port(), _free_port(), _free_port()
    script = script.replace("localhost:8000", f"localhost:{http}")
    env = clean_env(
        {
            "ONNXGATE_PORT": str(port),
            "ONNXGATE_METRICS_PORT": str(metrics),
            "ONNXGATE_HTTP_PORT": str(http),
            "ONNXGATE_TARGET": f"localhost:{port}",
        }
    )
    env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
    transcript = tmp_path / "transcript.txt"
    with transcript.open("w") as out_file:
        proc = subprocess.Popen(
            ["bash", "-c", script],
            cwd=tmp_path,
            env=env,
            stdout=out_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the README's background gateway is in this group
        )
    try:
        proc.wait(timeout=150)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the gateway the README left running
        except ProcessLookupError:
            pass
    out = transcript.read_text()
    log = tmp_path / "onnxgate-data" / "gateway.log"
    log_text = log.read_text() if log.exists() else "(no gateway log)"
    assert proc.returncode == 0, f"{out}\n--- gateway log ---\n{log_text[-3000:]}"
    assert "served by fraud:1 (champion)" in out
    assert '"model_name":"fraud"' in out  # the HTTP face answered the README's curl
    assert "served by fraud:2 (canary)" in out
    assert "1        champion  90.0%\n2        canary    10.0%" in out


def test_the_wait_loop_stops_with_the_reason_when_its_gateway_cannot_start(
    tmp_path: Path, make_gateway
) -> None:
    """The loop waited on ``traffic show``, which any gateway already on the port answers:
    it went on against that one while the new gateway had died at start (and waited a
    silent 60 s when none answered). It waits for its own gateway and shows why not."""
    import time

    earlier = make_gateway(metrics_port=-1)  # the gateway already on the port
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    (tmp_path / "onnxgate-data").mkdir()
    block = next(b for b in BLOCK.findall(README.read_text(encoding="utf-8")) if "serve" in b)
    port = earlier.target.rsplit(":", 1)[1]
    env = clean_env(
        {
            "ONNXGATE_PORT": port,
            "ONNXGATE_METRICS_PORT": "-1",
            "ONNXGATE_TARGET": f"localhost:{port}",
        }
    )
    env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
    began = time.monotonic()
    done = subprocess.run(
        ["bash", "-c", "set -e -o pipefail\n" + block], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=90, start_new_session=True,
    )  # fmt: skip
    assert done.returncode != 0, done.stdout + done.stderr
    shown = done.stdout.strip().splitlines()
    assert shown and f":{port}" in shown[-1] and "gRPC" in shown[-1], done.stdout + done.stderr
    assert time.monotonic() - began < 45
