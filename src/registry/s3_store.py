"""Artifacts in an S3-compatible bucket (AWS S3, MinIO, Ceph, GCS's S3 interface), with a
bounded local cache.

Objects are content-addressed: ``PREFIX/sha256/<hex>``. Nothing is ever overwritten with
other bytes, so any number of gateways and registering machines share one bucket without
coordination; the registry database says which shas are in use.

The endpoint, region and credentials come from the standard AWS configuration (boto3's own
chain: ``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``/
``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, a web-identity token or an instance role). With a
custom endpoint, path-style addressing is used, which every S3-compatible server accepts.

Every read is verified: a cached copy is re-hashed on each load (and fetched again if it no
longer matches), a downloaded one before it is cached. The cache keeps at most
``cache_bytes`` (the least recently used copies go first); a version bigger than the whole
cache is served without being cached.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from registry.errors import ArtifactIntegrityError, ArtifactStoreError
from registry.schema import missing_extra
from registry.store import ArtifactStore, FileArtifactStore, check_sha, verified

__all__ = ["DEFAULT_CACHE_BYTES", "S3ArtifactStore", "s3_client"]

DEFAULT_CACHE_BYTES = 2 << 30
_MISSING = {"404", "NoSuchKey", "NotFound"}


def _boto3() -> Any:
    try:
        import boto3
    except ModuleNotFoundError as exc:
        raise missing_extra(exc, "an s3:// artifact store") from None
    return boto3


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def s3_client() -> Any:
    """A boto3 S3 client from the standard AWS environment (see the module docstring):
    the one configuration for every object-storage user (artifacts, the prediction log)."""
    boto3 = _boto3()
    from botocore.config import Config

    custom = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    config = Config(
        retries={"mode": "standard", "max_attempts": 3},
        s3={"addressing_style": "path" if custom else "auto"},
        # Some S3-compatible servers reject the newer default checksum headers.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.session.Session().client("s3", config=config)


class S3ArtifactStore(ArtifactStore):
    """Artifact bytes in ``s3://bucket/prefix``, read through a local cache directory."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        *,
        cache_dir: Path,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        client: Any = None,
    ) -> None:
        if not bucket:
            raise ValueError("an s3:// artifact store needs a bucket: s3://BUCKET/PREFIX")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.cache = FileArtifactStore(Path(cache_dir))
        self.cache_bytes = cache_bytes
        self._client = client
        self._client_pid = os.getpid() if client is not None else -1
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, *, cache_dir: Path) -> S3ArtifactStore:
        """``s3://BUCKET/PREFIX``; ``?cache_mb=N`` bounds the local cache (default 2048)."""
        parsed = urlparse(url)
        cache_bytes = DEFAULT_CACHE_BYTES
        for item in filter(None, parsed.query.split("&")):
            key, _, value = item.partition("=")
            if key != "cache_mb" or not value.isdigit():
                raise ValueError(f"artifact store {url!r}: unknown option {item!r}")
            cache_bytes = int(value) << 20
        return cls(parsed.netloc, parsed.path, cache_dir=cache_dir, cache_bytes=cache_bytes)

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def client(self) -> Any:
        # A client is not safe across fork (its connection pool), so each process makes its own.
        with self._lock:
            if self._client is None or self._client_pid != os.getpid():
                self._client = self._make_client()
                self._client_pid = os.getpid()
            return self._client

    def _make_client(self) -> Any:
        return s3_client()

    def key(self, sha: str) -> str:
        """The object key of the artifact with this sha256."""
        check_sha(sha)
        return f"{self.prefix}/sha256/{sha}" if self.prefix else f"sha256/{sha}"

    def _unavailable(self, what: str, exc: Exception) -> ArtifactStoreError:
        reason = _error_code(exc) or str(exc) or type(exc).__name__
        return ArtifactStoreError(f"cannot {what} {self.describe()}: {reason}")

    def exists(self, sha: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(sha))
        except Exception as exc:
            if _error_code(exc) in _MISSING:
                return False
            raise self._unavailable("reach", exc) from exc
        return True

    def put(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        if not self.exists(sha):
            try:
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=self.key(sha),
                    Body=data,
                    ContentType="application/octet-stream",
                    Metadata={"sha256": sha},
                )
            except Exception as exc:
                raise self._unavailable("store the artifact in", exc) from exc
        self._cache(sha, data)
        return sha

    def read(self, sha: str) -> bytes:
        try:
            data = self.cache.read(sha)
        except ArtifactIntegrityError:
            pass  # missing or corrupt in the cache: the bucket is the truth
        else:
            os.utime(self.cache.path(sha))  # most recently used
            return data
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.key(sha))
            fetched: bytes = response["Body"].read()
        except Exception as exc:
            if _error_code(exc) in _MISSING:
                raise ArtifactIntegrityError(
                    f"artifact {sha} is missing from the store ({self.describe()})"
                ) from None
            raise self._unavailable("read from", exc) from exc
        verified(sha, fetched)
        self._cache(sha, fetched)
        return fetched

    def shas(self) -> list[str]:
        found: list[str] = []
        start = self.key("0" * 64)[:-64]
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start
            )
            for page in pages:
                for item in page.get("Contents", []):
                    name = str(item["Key"])[len(start) :]
                    try:
                        found.append(check_sha(name))
                    except ValueError:
                        continue
        except Exception as exc:
            raise self._unavailable("list", exc) from exc
        return sorted(found)

    def delete(self, sha: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key(sha))
        except Exception as exc:
            if _error_code(exc) not in _MISSING:
                raise self._unavailable("delete from", exc) from exc
        self.cache.delete(sha)

    # -- the local cache ----------------------------------------------------------------

    def cached_bytes(self) -> int:
        """Bytes the local cache holds now."""
        return sum(self.cache.path(sha).stat().st_size for sha in self.cache.shas())

    def _cache(self, sha: str, data: bytes) -> None:
        if len(data) > self.cache_bytes:
            return
        try:
            self.cache.put(data)
            self._evict(keep=sha)
        except (ArtifactStoreError, OSError):
            pass  # a cache that cannot be written only costs a download next time

    def _evict(self, keep: str) -> None:
        entries = []
        for sha in self.cache.shas():
            try:
                st = self.cache.path(sha).stat()
            except FileNotFoundError:
                continue  # another process evicted it meanwhile
            entries.append((st.st_mtime, st.st_size, sha))
        total = sum(size for _, size, _ in entries)
        for _, size, sha in sorted(entries):
            if total <= self.cache_bytes:
                break
            if sha == keep:
                continue
            # Plain unlink: the bucket keeps the bytes, so there is nothing to scrub here.
            self.cache.path(sha).unlink(missing_ok=True)
            total -= size
