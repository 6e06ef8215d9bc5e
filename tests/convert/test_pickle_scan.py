"""Pickles are scanned before anything in them is unpickled: joblib dumps (any suffix, any
compression) register with ``--trust-pickle``; a pickle importing ``os.system`` does not,
even trusted, and its payload never runs."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import joblib
import pytest

from convert.support import one_error_line, write_pickle
from registry.convert.pickles import PickleRefused, scan_pickle
from registry.registry import Registry


class _Payload:
    """Unpickling this runs ``touch MARKER`` (the scan must stop it before it can)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("bz2", 3), ("xz", 3)])
def test_joblib_dumped_sklearn_model_registers_with_trust_pickle(
    onnxgate, registry: Registry, tmp_path, sample_file, sklearn_pipeline, compress
):
    path = tmp_path / "model.pkl"  # joblib's format under pickle's suffix (issue 26)
    joblib.dump(sklearn_pipeline, path, compress=compress)
    args = ("models", "register", "jl", str(path), "--sample", str(sample_file))
    assert onnxgate(*args, "--trust-pickle") == 0
    scan = registry.get_version("jl", "1").lineage.tags["source.scan"]
    assert scan.startswith("joblib") and "all allowed" in scan


def test_plain_pickle_under_joblib_suffix_registers(
    onnxgate, tmp_path, sample_file, sklearn_pipeline
):
    path = write_pickle(tmp_path / "model.joblib", sklearn_pipeline)
    args = ("models", "register", "pl", str(path), "--sample", str(sample_file))
    assert onnxgate(*args, "--trust-pickle") == 0


@pytest.mark.parametrize("dump", ["pickle", "joblib"])
def test_os_system_pickle_is_refused_even_trusted_and_never_runs(
    onnxgate, tmp_path, sample_file, capfd, dump
):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pkl"
    payload = {"model": _Payload(marker)}
    if dump == "joblib":
        joblib.dump(payload, path)
    else:
        write_pickle(path, payload)
    args = ("models", "register", "evil", str(path), "--sample", str(sample_file))
    assert onnxgate(*args, "--trust-pickle", "--allow-pickle-module", "posix") == 1
    line = one_error_line(capfd)
    assert "refused global(s) posix.system" in line  # os.system pickles as posix.system
    assert "the file imports: " in line
    assert not marker.exists()


def test_scan_lists_globals_and_honours_named_modules() -> None:
    from collections import OrderedDict

    raw = pickle.dumps(OrderedDict(a=Path("x")))
    with pytest.raises(PickleRefused) as refused:
        scan_pickle(raw)
    assert "refused global(s) pathlib.PosixPath" in str(refused.value)
    assert "collections.OrderedDict, pathlib.PosixPath" in str(refused.value)
    # pathlib is on the always-refused list; a harmless module named by the operator passes.
    raw = pickle.dumps({"f": pytest.approx(1.0)})
    with pytest.raises(PickleRefused):
        scan_pickle(raw)
    assert scan_pickle(raw, allow=["_pytest"]).globals


@pytest.mark.parametrize(
    "name", ["builtins.eval", "builtins.exec", "subprocess.Popen", "nt.system"]
)
def test_always_refused_globals_stay_refused_when_named(name: str) -> None:
    module, _, attr = name.rpartition(".")

    raw = f"c{module}\n{attr}\n(S'1'\ntR.".encode()  # protocol 0: GLOBAL then REDUCE
    with pytest.raises(PickleRefused, match=f"refused global\\(s\\) {name}"):
        scan_pickle(raw, allow=[module, name])
