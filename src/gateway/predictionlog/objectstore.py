"""Prediction-log files in object storage: ``prediction_log = s3://BUCKET/PREFIX``.

Why a sink URL of its own, not "wherever ``artifact_store`` points": the log's place is
then said in one setting, like ``file:DIR``, and a gateway may keep artifacts on disk and
records in a bucket (or the reverse). Both use one S3 configuration, the standard AWS
environment through :func:`registry.s3_client` (``AWS_ENDPOINT_URL``, credentials, ...).

:class:`ObjectStoreSink` writes with a :class:`~gateway.predictionlog.parquet.ParquetSink`
into a local *spool* folder; each closed file is uploaded under the same Hive layout,
``PREFIX/model=NAME/date=YYYY-MM-DD/part-….parquet``, removed from the spool, and only then
chained into the audit log (``log.segment``, its path relative to ``PREFIX``): a digest in
the chain names an object that exists. An upload that fails keeps the file in the spool and
is tried again every tick and at close; files an earlier process left in the spool are
uploaded when the sink starts. The spool is ``?spool=DIR`` on the URL, else
``prediction-log-spool/BUCKET/PREFIX`` beside ``artifact_dir``.

Readers (``onnxgate log verify|query|show|erase``, ``audit pack``) :func:`mirror` the
prefix into a local folder and run the file code over it; ``verify`` downloads every object
again, so the digests it checks are the bucket's bytes.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import pyarrow.parquet as pq

from gateway.predictionlog.parquet import ClosedFile, ParquetSink, file_sha256
from gateway.predictionlog.sink import Batch

__all__ = ["ObjectStoreSink", "mirror", "parse_url", "push_back"]

log = logging.getLogger(__name__)


def parse_url(url: str) -> tuple[str, str, Path | None]:
    """``s3://BUCKET/PREFIX[?spool=DIR]`` -> (bucket, prefix without slashes, spool)."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"prediction_log {url!r}: expected s3://BUCKET/PREFIX")
    options = parse_qs(parsed.query)
    unknown = set(options) - {"spool"}
    if unknown:
        raise ValueError(f"prediction_log {url!r}: unknown option {sorted(unknown)[0]!r}")
    spool = Path(options["spool"][0]) if "spool" in options else None
    return parsed.netloc, parsed.path.strip("/"), spool


def _client(client: Any) -> Any:
    if client is not None:
        return client
    from registry import s3_client

    return s3_client()


def _key(prefix: str, relative: str) -> str:
    return f"{prefix}/{relative}" if prefix else relative


def _model_of(relative: str) -> str:
    first = relative.split("/", 1)[0]
    return unquote(first.removeprefix("model="))


class ObjectStoreSink:
    """See the module docstring."""

    def __init__(
        self,
        url: str,
        spool: Path,
        *,
        roll_bytes: int = 128 * 1024 * 1024,
        roll_s: float = 3600.0,
        on_uploaded: Callable[[ClosedFile], None] | None = None,
        client: Any = None,
        retry_s: float = 5.0,
    ) -> None:
        self.name = url.split("?", 1)[0]
        self.bucket, self.prefix, _ = parse_url(url)
        self.spool = spool
        self._on_uploaded = on_uploaded
        self._client = client
        self._files = ParquetSink(
            spool, roll_bytes=roll_bytes, roll_s=roll_s, on_closed=self._pending_append
        )
        self._retry_s = retry_s
        self._lock = threading.Lock()
        self._pending: list[ClosedFile] = list(self._left_behind())
        self._wake = threading.Event()
        if self._pending:
            self._wake.set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.uploaded: list[ClosedFile] = []
        self.upload_failures = 0

    # The Sink protocol's counters are the spool writer's: a record is kept once it is in
    # a file; a file that cannot be uploaded yet waits in the spool, not dropped.
    @property
    def written(self) -> int:
        return self._files.written

    @written.setter
    def written(self, value: int) -> None:
        self._files.written = value

    @property
    def dropped(self) -> int:
        return self._files.dropped

    @dropped.setter
    def dropped(self, value: int) -> None:
        self._files.dropped = value

    def _left_behind(self) -> Iterable[ClosedFile]:
        if not self.spool.is_dir():
            return
        for path in sorted(self.spool.rglob("*.parquet")):
            relative = path.relative_to(self.spool).as_posix()
            try:
                rows = pq.ParquetFile(path).metadata.num_rows
                sha, size = file_sha256(path), path.stat().st_size
            except Exception:  # noqa: BLE001 - not whole, or gone (another worker's upload)
                log.warning("prediction log: %s in the spool is unreadable; not uploaded", path)
                continue
            yield ClosedFile(relative, _model_of(relative), sha, rows, size)

    def _pending_append(self, closed: ClosedFile) -> None:
        with self._lock:
            self._pending.append(closed)
        self._wake.set()

    def _uploads(self) -> None:
        # NOTE: its own thread: an upload of a 128 MB file must not hold the log's lock,
        # which the tap worker needs for every record.
        while not self._stop.is_set():
            self._wake.wait(self._retry_s)
            self._wake.clear()
            self._upload_pending()

    def _ensure_thread(self) -> None:
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(
                target=self._uploads, name="onnxgate-predlog-upload", daemon=True
            )
            self._thread.start()

    def _upload_pending(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    return
                closed = self._pending[0]
            local = self.spool / closed.path
            if not local.exists():
                # NOTE: workers share a spool; one that started later may have taken a file
                # another left waiting and uploaded it first. Nothing left to do for it.
                with self._lock:
                    self._pending.pop(0)
                log.warning("prediction log: %s left the spool before its upload", closed.path)
                continue
            try:
                _client_of(self).upload_file(
                    str(local), self.bucket, _key(self.prefix, closed.path),
                    ExtraArgs={"Metadata": {"sha256": closed.sha256}},
                )  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - kept in the spool, tried again
                self.upload_failures += 1
                log.warning("prediction log: uploading %s to %s failed (kept, retried): %s",
                            closed.path, self.name, exc)  # fmt: skip
                return
            with self._lock:
                self._pending.pop(0)
            local.unlink(missing_ok=True)
            self.uploaded.append(closed)
            if self._on_uploaded is not None:
                try:
                    self._on_uploaded(closed)
                except Exception:
                    log.exception("prediction log: chaining %s failed", closed.path)

    @property
    def waiting(self) -> int:
        """Closed files in the spool not uploaded yet."""
        with self._lock:
            return len(self._pending)

    def write(self, batch: Batch) -> None:
        self._ensure_thread()
        self._files.write(batch)

    def tick(self, now: float) -> None:
        self._ensure_thread()
        self._files.tick(now)

    def close(self) -> None:
        """Close the open files, then upload what waits (one last try; what still fails
        stays in the spool for the next start)."""
        self._files.close()
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._upload_pending()


def _client_of(sink: ObjectStoreSink) -> Any:
    if sink._client is None:
        sink._client = _client(None)
    return sink._client


def mirror(url: str, cache: Path, *, fresh: bool = False, client: Any = None) -> Path:
    """Make ``cache`` hold exactly the ``.parquet`` objects under the URL's prefix (same
    relative paths) and return it. An object whose size and time match its copy is not
    downloaded again, unless ``fresh`` (``verify``: digests of the bucket's bytes)."""
    bucket, prefix, _ = parse_url(url)
    s3 = _client(client)
    start = f"{prefix}/" if prefix else ""
    listed: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=start):
        for item in page.get("Contents", []):
            key = str(item["Key"])
            if not key.endswith(".parquet"):
                continue
            relative = key[len(start) :]
            listed.add(relative)
            local = cache / relative
            stamp = item["LastModified"].timestamp()
            if not fresh and local.is_file():
                st = local.stat()
                if st.st_size == item["Size"] and st.st_mtime == stamp:
                    continue
            local.parent.mkdir(parents=True, exist_ok=True)
            partial = local.with_name(local.name + ".download")
            s3.download_file(bucket, key, str(partial))
            os.replace(partial, local)
            os.utime(local, (stamp, stamp))
    if cache.is_dir():
        for path in cache.rglob("*.parquet"):
            if path.relative_to(cache).as_posix() not in listed:
                path.unlink()
    return cache


def push_back(
    url: str, cache: Path, rewritten: Iterable[str], removed: Iterable[str], client: Any = None
) -> None:
    """After an erasure over a :func:`mirror`: upload the rewritten files over their objects
    and delete the objects of removed ones."""
    bucket, prefix, _ = parse_url(url)
    s3 = _client(client)
    for relative in rewritten:
        s3.upload_file(str(cache / relative), bucket, _key(prefix, relative))
    for relative in removed:
        s3.delete_object(Bucket=bucket, Key=_key(prefix, relative))
