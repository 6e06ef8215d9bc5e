"""Registration against a full or unwritable artifact store, and refused registrations:
refused with one clear error, nothing recorded, no bytes left behind.

Disk full is tested twice: with the ``store.write=enospc`` failpoint (always available) and
on a real, tiny tmpfs; unwritable with a read-only remount of that tmpfs (root ignores file
modes, so ``chmod`` would prove nothing). The tmpfs cases need ``mount`` and are skipped
where it is not permitted.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from shared import clear_onnxgate_env
from tmpfs_support import mounted_tmpfs

from gateway import cli
from gateway.tools import modelzoo
from registry.errors import ArtifactStoreError, IncompatibleSignature, NotFoundError
from registry.failpoints import ENV
from registry.lineage import Lineage
from registry.registry import Registry


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_onnxgate_env(monkeypatch)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _nothing_recorded(reg: Registry, counter: int, events: int) -> None:
    assert reg.change_counter() == counter
    assert len(reg.audit_events()) == events
    assert reg.verify_audit_chain() == []


@pytest.fixture
def reg(tmp_path: Path) -> Iterator[Registry]:
    registry = Registry.open(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "artifacts")
    yield registry
    registry.close()


def test_disk_full_by_failpoint_is_refused_and_nothing_recorded(reg, tmp_path, monkeypatch):
    reg.register_version("m", modelzoo.linear(seed=1), actor="test")
    counter, events = reg.change_counter(), len(reg.audit_events())
    before = _files(tmp_path / "artifacts")
    monkeypatch.setenv(ENV, "store.write=enospc")
    with pytest.raises(ArtifactStoreError, match="No space left on device"):
        reg.register_version("m", modelzoo.linear(seed=2), actor="test")
    _nothing_recorded(reg, counter, events)
    assert _files(tmp_path / "artifacts") == before  # not even a temporary file
    assert [v.version for v in reg.list_versions("m")] == ["1"]


def test_cli_reports_a_full_store_in_one_line(tmp_path, monkeypatch, capfd):
    model = tmp_path / "m.onnx"
    model.write_bytes(modelzoo.linear(seed=3))
    monkeypatch.setenv(ENV, "store.write=enospc")
    flags = ["--registry", f"sqlite:///{tmp_path / 'r.db'}", "--artifact-dir", str(tmp_path / "a")]
    assert cli.main(["models", "register", "m", str(model), *flags]) != 0
    err = capfd.readouterr().err.strip()
    assert "No space left on device" in err and "Traceback" not in err
    assert len(err.splitlines()) == 1, err


@pytest.fixture
def tiny_store(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "store", "64k") as mount:
        yield mount


def test_real_full_disk_and_read_only_store(tiny_store, tmp_path):
    reg = Registry.open(f"sqlite:///{tmp_path / 'registry.db'}", tiny_store)
    try:
        reg.register_version("m", modelzoo.linear(seed=1), actor="test")
        counter, events = reg.change_counter(), len(reg.audit_events())
        before = _files(tiny_store)
        big = modelzoo.mlp((32, 512, 2), seed=1)  # ~70 KB: more than the store has
        with pytest.raises(ArtifactStoreError, match="No space left on device"):
            reg.register_version("m", big, actor="test", force=True)
        _nothing_recorded(reg, counter, events)
        assert _files(tiny_store) == before

        subprocess.run(["mount", "-o", "remount,ro", str(tiny_store)], check=True)
        with pytest.raises(ArtifactStoreError, match="Read-only file system"):
            reg.register_version("m", modelzoo.linear(seed=2), actor="test")
        _nothing_recorded(reg, counter, events)
        reg.read_artifact("m", "1")  # what is stored still loads

        subprocess.run(["mount", "-o", "remount,rw", str(tiny_store)], check=True)
        assert reg.register_version("m", modelzoo.linear(seed=2), actor="test").version == "2"
    finally:
        reg.close()


def test_refused_registrations_leave_no_bytes(reg, tmp_path):
    """Incompatible signature, an unknown parent, a duplicate version: each refused
    registration takes its bytes back; bytes another version holds stay."""
    reg.register_version("m", modelzoo.linear(seed=1), actor="test")
    kept = _files(tmp_path / "artifacts")
    with pytest.raises(IncompatibleSignature):
        reg.register_version("m", modelzoo.linear(6, 2, seed=1), actor="test")
    assert _files(tmp_path / "artifacts") == kept

    # Refused late, after the version's row was added and flushed (its parent is unknown).
    with pytest.raises(NotFoundError, match="parent version"):
        reg.register_version(
            "m", modelzoo.linear(seed=2), actor="test", lineage=Lineage(parent="nope:9")
        )
    assert _files(tmp_path / "artifacts") == kept

    # The same bytes as version 1, refused (the name is taken): version 1's bytes stay.
    with pytest.raises(Exception, match="already registered"):
        reg.register_version("m", modelzoo.linear(seed=1), version="1", actor="test")
    assert _files(tmp_path / "artifacts") == kept
    reg.read_artifact("m", "1")
