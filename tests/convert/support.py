"""Helpers for the conversion tests (fixtures are in conftest.py)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest


def write_pickle(path: Path, model: Any) -> Path:
    with path.open("wb") as fh:
        pickle.dump(model, fh)
    return path


def one_error_line(capfd: pytest.CaptureFixture[str]) -> str:
    out, err = capfd.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("onnxgate: ")
    return lines[0]
