"""The CloudEvents sink: every record as the events KServe's payload logger sends.

For each record, one ``org.kubeflow.serving.inference.request`` event (the inputs, as an
Open Inference Protocol JSON request) and one ``org.kubeflow.serving.inference.response``
event (the outputs), both in CloudEvents' *binary* HTTP mode with ``ce-id`` the request id
and ``ce-inferenceservicename`` the model — what consumers of KServe's logger read. The
log's own facts ride as extension attributes (``ce-onnxgateversion``, ``…status``,
``…role``, ``…sha256``, ``…revision``, ``…principal``). A failed call sends its request
event and a response event whose body is ``{"error": STATUS}``.

dict[str, Any]s wait in a bounded buffer (full: dropped and counted); one sender thread drains it in
batches over one kept-alive connection, retrying each event ``retries`` times with
backoff before dropping it (counted). Nothing here blocks or raises to the writer.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from gateway.predictionlog.record import decode_tensors
from gateway.predictionlog.sink import Batch

__all__ = ["CloudEventsSink", "events_of"]

log = logging.getLogger(__name__)

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
SOURCE = "onnxgate"


def _json_tensors(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for name, array in decode_tensors(entries).items():
        entry = next(e for e in entries if e["name"] == name)
        flat: Any
        if entry["datatype"] == "BYTES":
            flat = [b.decode("utf-8", "replace") for b in array.reshape(-1)]
        else:
            flat = np.asarray(array).reshape(-1).tolist()
        out.append({"name": name, "datatype": entry["datatype"], "shape": entry["shape"],
                    "data": flat})  # fmt: skip
    return out


def events_of(row: dict[str, Any]) -> list[tuple[dict[str, str], bytes]]:
    """The (headers, body) of the request and response events of one record."""
    common = {
        "ce-specversion": "1.0",
        "ce-id": row["request_id"],
        "ce-source": SOURCE,
        "ce-time": row["time"].isoformat(),  # RFC 3339, UTC, microseconds
        "ce-inferenceservicename": row["model"],
        "ce-component": "predictor",
        "ce-endpoint": "default" if row["role"] == "champion" else row["role"],
        "ce-onnxgateversion": row["version"],
        "ce-onnxgatestatus": row["status"],
        "ce-onnxgaterole": row["role"],
        "ce-onnxgatesha256": row["artifact_sha256"],
        "ce-onnxgaterevision": str(row["revision"]),
        "ce-onnxgateprincipal": row["principal"],
        "content-type": "application/json",
    }
    request = {"id": row["request_id"], "inputs": _json_tensors(row["inputs"])}
    if row["status"] == "OK":
        response: dict[str, Any] = {
            "model_name": row["model"],
            "model_version": row["version"],
            "id": row["request_id"],
            "outputs": _json_tensors(row["outputs"]),
        }
    else:
        response = {"error": row["status"]}
    return [
        ({**common, "ce-type": REQUEST_TYPE}, json.dumps(request).encode()),
        ({**common, "ce-type": RESPONSE_TYPE}, json.dumps(response).encode()),
    ]


class CloudEventsSink:
    """See the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        capacity: int = 10_000,
        batch: int = 64,
        retries: int = 3,
        backoff_s: float = 0.2,
        timeout_s: float = 5.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        # The name labels metrics and logs: never a password the URL may carry.
        self.name = url if parts.password is None else url.replace(parts.password, "***", 1)
        self._parts = parts
        self._capacity = capacity
        self._batch = batch
        self._retries = retries
        self._backoff_s = backoff_s
        self._timeout_s = timeout_s
        self._buffer: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._conn: http.client.HTTPConnection | None = None
        self.written = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="onnxgate-cloudevents", daemon=True)
        self._thread.start()

    def write(self, batch: Batch) -> None:
        rows = batch.table.to_pylist()
        with self._lock:
            room = max(0, self._capacity - len(self._buffer))
            self._buffer.extend(rows[:room])
            self.dropped += len(rows) - min(room, len(rows))
        self._wake.set()

    def tick(self, now: float) -> None:
        self._wake.set()

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        with self._lock:
            self.dropped += len(self._buffer)
            self._buffer.clear()
        if self._conn is not None:
            self._conn.close()

    def _run(self) -> None:
        while True:
            with self._lock:
                batch = [self._buffer.popleft() for _ in range(min(self._batch, len(self._buffer)))]
            if batch:
                for row in batch:
                    self._send_row(row)
                continue
            if self._stop.is_set():
                return
            self._wake.wait(0.5)
            self._wake.clear()

    def _send_row(self, row: dict[str, Any]) -> None:
        try:
            events = events_of(row)
        except Exception:
            log.exception("prediction log: record %s cannot be sent", row.get("request_id"))
            self._count_drop()
            return
        for headers, body in events:
            if not self._send(headers, body):
                self._count_drop()
                return
        self.written += 1

    def _count_drop(self) -> None:
        with self._lock:  # write() counts buffer overflows from the writer thread
            self.dropped += 1

    def _send(self, headers: dict[str, str], body: bytes) -> bool:
        path = self._parts.path or "/"
        for attempt in range(self._retries + 1):
            try:
                conn = self._connection()
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status < 300:
                    return True
                retryable = response.status >= 500 or response.status == 429
            except (OSError, http.client.HTTPException):
                retryable = True
                self._reset()
            if not retryable or attempt == self._retries:
                break
            # Returns at once while stopping: what is left is still tried, without the wait.
            self._stop.wait(self._backoff_s * 2**attempt)
        return False

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            host, port = self._parts.hostname or "", self._parts.port
            if self._parts.scheme == "https":
                self._conn = http.client.HTTPSConnection(host, port, timeout=self._timeout_s)
            else:
                self._conn = http.client.HTTPConnection(host, port, timeout=self._timeout_s)
        return self._conn

    def _reset(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
