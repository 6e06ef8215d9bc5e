"""The content-addressed artifact store on a real directory."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from registry.errors import ArtifactIntegrityError
from registry.store import FileArtifactStore as ArtifactStore


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "store")


def test_put_is_content_addressed_and_idempotent(store: ArtifactStore) -> None:
    data = b"model bytes"
    sha = store.put(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert store.path(sha) == store.root / sha[:2] / sha[2:]
    assert store.put(data) == sha
    assert store.exists(sha) and store.read(sha) == data
    # No temp files left behind.
    assert [p.name for p in store.path(sha).parent.iterdir()] == [sha[2:]]


def test_read_detects_tampering(store: ArtifactStore) -> None:
    sha = store.put(b"abcdef")
    path = store.path(sha)
    path.write_bytes(b"abcdeF")
    with pytest.raises(ArtifactIntegrityError, match=sha):
        store.read(sha)
    # Putting the right bytes again repairs the file.
    store.put(b"abcdef")
    assert store.read(sha) == b"abcdef"


def test_read_missing_raises_integrity_error(store: ArtifactStore) -> None:
    sha = hashlib.sha256(b"never stored").hexdigest()
    with pytest.raises(ArtifactIntegrityError, match=f"{sha} is missing"):
        store.read(sha)


def test_delete_removes_file(store: ArtifactStore) -> None:
    sha = store.put(b"x" * 3_000_000)
    store.delete(sha)
    assert not store.exists(sha)
    store.delete(sha)  # already gone: no error


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ABC", "g" * 64, "a" * 63])
def test_path_rejects_non_digests(store: ArtifactStore, bad: str) -> None:
    with pytest.raises(ValueError, match="sha256"):
        store.path(bad)
