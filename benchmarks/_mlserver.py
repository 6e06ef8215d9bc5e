"""MLServer 1.7.1, the peer: installed on first use into its own virtualenv, ``.venv-mlserver``
at the repo root (it pins packages that cannot share onnxgate's environment), and a model
repository that serves the benchmark's ONNX files through ``mlserver_runtime.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from pathlib import Path

import _common as c

__all__ = ["MLSERVER_VENV", "MLSERVER_VERSION", "ensure_mlserver", "mlserver_repo"]

MLSERVER_VERSION = "1.7.1"
MLSERVER_VENV = c.REPO / ".venv-mlserver"


def ensure_mlserver(venv: Path = MLSERVER_VENV) -> Path:
    """``mlserver`` from its own virtualenv, installing it the first time; RuntimeError
    (with the reason) when that is not possible here."""
    python, exe = venv / "bin" / "python", venv / "bin" / "mlserver"
    check = [str(python), "-c", "import mlserver, onnxruntime; print(mlserver.__version__)"]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        found = subprocess.run(check, capture_output=True, text=True, timeout=60, check=False)
        if found.returncode == 0 and found.stdout.strip() == MLSERVER_VERSION:
            return exe
    c.log(f"installing MLServer {MLSERVER_VERSION} into {venv} (once; a few minutes)")
    base = getattr(os.sys, "_base_executable", c.PYTHON)  # the interpreter behind .venv
    steps = [
        [base, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", f"mlserver=={MLSERVER_VERSION}"]
        + ["onnxruntime", "numpy"],
    ]
    for argv in steps:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f"{argv[0]} {argv[1]} ...: {exc}") from None
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:4])} failed: {done.stderr.strip()[-500:]}")
    return exe


def mlserver_repo(directory: Path, model_paths: dict[str, Path], ports: dict[str, int]) -> Path:
    """A model repository: settings.json plus one folder with model-settings.json a model."""
    from registry.signature import signature_from_bytes

    settings = {"debug": False, "host": "127.0.0.1", "parallel_workers": 0, **ports}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "settings.json").write_text(json.dumps(settings))
    for name, path in model_paths.items():
        sig = signature_from_bytes(path.read_bytes()).to_dict()
        folder = directory / name
        folder.mkdir(exist_ok=True)
        doc = {
            "name": name,
            "implementation": "mlserver_runtime.OnnxRuntimeModel",
            "parameters": {"uri": str(path), "version": "1"},
            "inputs": sig["inputs"],
            "outputs": sig["outputs"],
        }
        (folder / "model-settings.json").write_text(json.dumps(doc))
    return directory
