"""Content-addressed artifact stores: model bytes named by their sha256.

:class:`ArtifactStore` is the interface; :class:`FileArtifactStore` keeps the bytes on a local
(or shared) file system, :class:`registry.s3_store.S3ArtifactStore` in an S3-compatible bucket
behind a bounded local cache; :func:`registry.artifacts.open_store` picks one by location.

File layout is ``root/ab/cdef...`` (first two hex digits as a directory, so no directory holds
more than 1/256 of the files). Writes are atomic (temp file in the same directory, fsync,
``os.replace``) so a reader never sees half a model, and reads re-hash so silent corruption
or tampering surfaces as :class:`ArtifactIntegrityError` instead of a wrong prediction.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path

from registry.errors import ArtifactIntegrityError, ArtifactStoreError
from registry.failpoints import hit

__all__ = ["ArtifactStore", "FileArtifactStore", "check_sha", "verified"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; not every platform can open a directory.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unwritable(root: Path, exc: OSError) -> ArtifactStoreError:
    reason = exc.strerror or type(exc).__name__
    return ArtifactStoreError(f"cannot store the artifact under {root}: {reason}")


def check_sha(sha: str) -> str:
    """``sha`` itself if it is a lowercase sha256 hex digest; ValueError otherwise."""
    # Validating the name also keeps a crafted "sha" from escaping a root or prefix.
    if not _SHA256.match(sha):
        raise ValueError(f"not a lowercase sha256 hex digest: {sha!r}")
    return sha


def verified(sha: str, data: bytes) -> bytes:
    """``data`` if it hashes to ``sha``; :class:`ArtifactIntegrityError` otherwise."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha:
        raise ArtifactIntegrityError(f"artifact {sha} is corrupt: its bytes now hash to {actual}")
    return data


TEMPORARY_MAX_AGE_S = 3600.0
"""A ``.tmp-*.part`` older than this cannot belong to a write still in progress."""


class ArtifactStore(ABC):
    """Stores and returns artifact bytes by sha256; safe for several processes at once.

    Every :meth:`read` re-hashes what it returns, so a corrupt or tampered copy surfaces as
    :class:`ArtifactIntegrityError`, never as a wrong prediction.
    """

    @abstractmethod
    def put(self, data: bytes) -> str:
        """Store ``data`` and return its sha256; storing the same bytes twice is a no-op."""

    @abstractmethod
    def read(self, sha: str) -> bytes:
        """Return the bytes stored under ``sha``, re-hashed to prove they are intact."""

    @abstractmethod
    def exists(self, sha: str) -> bool:
        """Whether the store holds bytes under ``sha`` (not re-hashed)."""

    @abstractmethod
    def shas(self) -> list[str]:
        """Every sha256 the store holds bytes for, sorted."""

    @abstractmethod
    def delete(self, sha: str) -> None:
        """Remove the bytes stored under ``sha``; missing is a no-op."""

    def describe(self) -> str:
        """Where the bytes live, for logs and errors."""
        return type(self).__name__

    def sweep_temporaries(self, older_than_s: float = TEMPORARY_MAX_AGE_S) -> int:
        """Remove partial writes a crash left behind, older than ``older_than_s`` (a live
        writer's are younger); returns how many. Stores that write atomically have none."""
        return 0


class FileArtifactStore(ArtifactStore):
    """The bytes under a directory, ``root/ab/cdef...``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def describe(self) -> str:
        return str(self.root)

    def path(self, sha: str) -> Path:
        """Where the artifact with this sha256 lives (whether or not it exists)."""
        check_sha(sha)
        return self.root / sha[:2] / sha[2:]

    def shas(self) -> list[str]:
        """Every sha256 the store holds bytes for (temporary ``.tmp-*`` files excluded)."""
        found = []
        for shard in self.root.iterdir():
            if not shard.is_dir() or len(shard.name) != 2:
                continue
            for f in shard.iterdir():
                sha = shard.name + f.name
                if _SHA256.match(sha) and f.is_file():
                    found.append(sha)
        return sorted(found)

    def sweep_temporaries(self, older_than_s: float = TEMPORARY_MAX_AGE_S) -> int:
        # A crash between writing and renaming (store.before_rename) leaves a ".tmp-*.part"
        # that nothing loads and nothing else removes.
        cutoff = time.time() - older_than_s
        swept = 0
        for tmp in self.root.glob("*/.tmp-*.part"):
            try:
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
                    swept += 1
            except FileNotFoundError:
                continue  # its writer finished, or another sweep took it
        return swept

    def exists(self, sha: str) -> bool:
        return self.path(sha).is_file()

    def _digest_of_file(self, path: Path) -> str:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def put(self, data: bytes) -> str:
        """Store ``data`` and return its sha256; storing the same bytes twice is a no-op."""
        sha = hashlib.sha256(data).hexdigest()
        target = self.path(sha)
        # An existing file is trusted only if it still hashes right; otherwise rewrite it.
        if target.is_file() and self._digest_of_file(target) == sha:
            return sha
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")
        except OSError as exc:
            raise _unwritable(self.root, exc) from exc
        try:
            with os.fdopen(fd, "wb") as f:
                hit("store.write")
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            # A crash here leaves a ".tmp-*.part" file: no sha256 name, so nothing loads it.
            hit("store.before_rename")
            os.replace(tmp_name, target)
        except BaseException as exc:
            Path(tmp_name).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise _unwritable(self.root, exc) from exc
            raise
        _fsync_dir(target.parent)
        return sha

    def read(self, sha: str) -> bytes:
        """Return the bytes stored under ``sha``, re-hashed to prove they are intact."""
        target = self.path(sha)
        try:
            data = target.read_bytes()
        except FileNotFoundError:
            raise ArtifactIntegrityError(f"artifact {sha} is missing from the store") from None
        return verified(sha, data)

    def delete(self, sha: str) -> None:
        """Overwrite the artifact with zeros, fsync, then unlink it; missing is a no-op.

        NOTE: overwriting defeats casual recovery from the same file system only; on
        copy-on-write file systems and SSDs old blocks may survive. Encrypt at rest if
        that matters.
        """
        target = self.path(sha)
        try:
            size = target.stat().st_size
        except FileNotFoundError:
            return
        with target.open("r+b") as f:
            zeros = bytes(min(size, _CHUNK))
            remaining = size
            while remaining > 0:
                n = min(remaining, len(zeros))
                f.write(zeros[:n])
                remaining -= n
            f.flush()
            os.fsync(f.fileno())
        target.unlink(missing_ok=True)
        _fsync_dir(target.parent)
