"""A registry URL or artifact store whose driver is not installed says, in one line, which
onnxgate extra installs it (not a ModuleNotFoundError traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from registry.artifacts import open_store
from registry.errors import RegistryError
from registry.schema import make_engine, missing_extra


def test_a_registry_url_without_its_driver_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg -> ModuleNotFoundError
    with pytest.raises(RegistryError, match=r"pip install 'onnxgate\[postgres\]'") as caught:
        make_engine("postgresql+psycopg://onnxgate:secret@db/onnxgate")
    assert "secret" not in str(caught.value)


def test_an_s3_store_without_boto3_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "boto3", None)
    store = open_store("s3://bucket/prefix", cache_dir=tmp_path / "cache")
    with pytest.raises(RegistryError, match=r"pip install 'onnxgate\[s3\]'"):
        store.exists("0" * 64)


def test_a_module_no_extra_provides_is_left_alone():
    exc = ModuleNotFoundError("No module named 'nothing'", name="nothing")
    assert missing_extra(exc, "x") is exc


def test_serve_says_it_in_one_line(tmp_path: Path):
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from gateway.cli import main\n"
        "sys.exit(main(['serve', '--registry', 'postgresql+psycopg://u@127.0.0.1:1/db',"
        " '--port', '0', '--metrics-port', '-1', '--http-port', '-1']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "pip install 'onnxgate[postgres]'" in lines[0] and "Traceback" not in done.stderr
