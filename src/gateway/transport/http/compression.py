"""HTTP compression both ways: gzip and deflate request bodies, responses by Accept-Encoding.

What tritonclient.http sends with ``request_compression_algorithm`` (``Content-Encoding:
gzip`` or ``deflate``) is inflated before any route reads it, bounded by the body limit
(a small body that inflates past ``max_body_bytes`` is refused 413, so a compression bomb
costs one limit's worth of memory); an encoding we do not speak is 415. A response is
compressed when the request's ``Accept-Encoding`` asks for gzip or deflate (what
``response_compression_algorithm`` sets) and the body is at least :data:`MIN_COMPRESS_BYTES`,
and left alone otherwise, so uncompressed clients pay nothing. (aiohttp, requests and
browsers send ``Accept-Encoding: gzip, deflate`` on every call: compressing a 200-byte
inference answer cost CPU on every call and saved no bytes.) ``deflate`` is the zlib format,
as HTTP defines it; a raw deflate stream (what some clients send instead) is accepted too.
"""

from __future__ import annotations

import functools
import gzip
import json
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["MIN_COMPRESS_BYTES", "CompressionMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

ENCODINGS = ("gzip", "deflate")
MIN_COMPRESS_BYTES = 1024
"""Smaller response bodies go out as they are (gzip's own framing is 18 bytes)."""


class _Refusal(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """``body`` decoded, at most ``limit`` bytes; _Refusal when it is more or undecodable."""
    candidates = (31,) if encoding == "gzip" else (15, -15)
    for wbits in candidates:
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(body, limit + 1)
        except zlib.error:
            continue
        if len(out) > limit or inflater.unconsumed_tail:
            raise _Refusal(413, f"request body inflates past max_message_bytes ({limit:,} bytes)")
        return out
    raise _Refusal(400, f"the request body is not valid {encoding} data")


# NOTE: clients send the same header on every call; the cache is bounded, so odd headers
# from a hostile client only ever cost a parse each.
@functools.lru_cache(maxsize=64)
def _accepted(header: str) -> str | None:
    """The first of gzip/deflate that ``Accept-Encoding`` accepts (q > 0), or None."""
    wanted: dict[str, float] = {}
    for item in header.split(","):
        name, _, params = item.strip().partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        wanted[name.strip().lower()] = q
    for encoding in ENCODINGS:
        if wanted.get(encoding, 0.0) > 0:
            return encoding
    return None


def _compress(body: bytes, encoding: str) -> bytes:
    # Level 1: the wire saving is most of level 6's at a fraction of its CPU.
    return gzip.compress(body, 1) if encoding == "gzip" else zlib.compress(body, 1)


class CompressionMiddleware:
    """Pure ASGI middleware; see the module docstring."""

    def __init__(self, app: App, *, max_body_bytes: int) -> None:
        self.app = app
        self._limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_encoding = ""
        accept = ""
        for name, value in scope["headers"]:
            if name == b"content-encoding":
                request_encoding = value.decode("latin-1").strip().lower()
            elif name == b"accept-encoding":
                accept = value.decode("latin-1")
        if request_encoding and request_encoding != "identity":
            try:
                scope, receive = await self._inflated(scope, receive, request_encoding)
            except _Refusal as refusal:
                await _error(send, refusal.status, refusal.message)
                return
        response_encoding = _accepted(accept) if accept else None
        if response_encoding is None:
            await self.app(scope, receive, send)
        else:
            await self.app(scope, receive, _CompressingSend(send, response_encoding))

    async def _inflated(
        self, scope: Scope, receive: Receive, encoding: str
    ) -> tuple[Scope, Receive]:
        if encoding not in ENCODINGS:
            raise _Refusal(
                415, f"Content-Encoding {encoding[:40]!r} is not supported (gzip, deflate)"
            )
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Refusal(400, "the client went away mid-body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._limit:
                raise _Refusal(413, f"request body exceeds max_message_bytes ({self._limit:,})")
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = _inflate(b"".join(chunks), encoding, self._limit)
        headers = [
            (n, v) for n, v in scope["headers"] if n not in (b"content-encoding", b"content-length")
        ]
        headers.append((b"content-length", str(len(body)).encode()))
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return {**scope, "headers": headers}, replay


class _CompressingSend:
    """Buffers one response and sends it compressed (whole: our responses are one body)."""

    def __init__(self, send: Send, encoding: str) -> None:
        self._send = send
        self._encoding = encoding
        self._start: Message | None = None
        self._chunks: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(n.lower(), v) for n, v in message.get("headers", [])]
            if any(n == b"content-encoding" for n, _ in headers):
                self._encoding = ""  # already encoded: pass through
                await self._send(message)
                return
            self._start = {**message, "headers": headers}
            return
        if message["type"] != "http.response.body" or self._start is None:
            await self._send(message)
            return
        self._chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = b"".join(self._chunks)
        if len(body) < MIN_COMPRESS_BYTES:
            await self._send(self._start)
            await self._send({"type": "http.response.body", "body": body, "more_body": False})
            return
        body = _compress(body, self._encoding)
        headers = [(n, v) for n, v in self._start["headers"] if n != b"content-length"]
        headers += [
            (b"content-encoding", self._encoding.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"vary", b"Accept-Encoding"),
        ]
        await self._send({**self._start, "headers": headers})
        await self._send({"type": "http.response.body", "body": body, "more_body": False})


async def _error(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
