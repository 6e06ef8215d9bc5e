"""The bare HTTP ceiling: a raw ASGI app under uvicorn doing one onnxruntime run per request.

What a hand-written OIP v2 REST server with nothing else costs per call: parse the JSON body
(or the binary tensor extension), one ``InferenceSession.run``, write JSON (or binary). No
routing table, validation, metrics, batching or middleware. uvicorn picks its fastest parts
present (``loop="auto"``, ``http="auto"``: uvloop and httptools when installed); the first
line of its output says which, and ``http_compare.py --bare-python`` runs it under another
interpreter (e.g. one with uvloop).

    python benchmarks/bare_asgi.py --port 8001 --model mlp_small=/path/mlp_small.onnx
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import uvicorn

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_NUMPY = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32}
_OIP = {"float32": "FP32", "float64": "FP64", "int64": "INT64", "int32": "INT32"}


class BareHttp:
    """The ASGI app: ``/v2/health/ready`` and ``/v2/models/{m}/infer``, nothing else."""

    def __init__(self, paths: dict[str, Path]) -> None:
        self.sessions = {
            name: ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            for name, path in paths.items()
        }
        self.outputs = {n: [o.name for o in s.get_outputs()] for n, s in self.sessions.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path == "/v2/health/ready":
            return await _answer(send, 200, b'{"ready":true}', b"application/json")
        parts = path.split("/")  # ["", "v2", "models", name, "infer"]
        if len(parts) != 5 or parts[4] != "infer" or parts[3] not in self.sessions:
            return await _answer(send, 404, b'{"error":"not found"}', b"application/json")
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        header = dict(scope["headers"]).get(b"inference-header-content-length")
        split = len(body) if header is None else int(header)
        doc = json.loads(body[:split])
        feeds, offset = {}, split
        for t in doc["inputs"]:
            dtype = _NUMPY[t["datatype"]]
            if "data" in t:
                feeds[t["name"]] = np.asarray(t["data"], dtype=dtype).reshape(t["shape"])
            else:
                size = t["parameters"]["binary_data_size"]
                raw = body[offset : offset + size]
                feeds[t["name"]] = np.frombuffer(raw, dtype=dtype).reshape(t["shape"])
                offset += size
        name = parts[3]
        results = self.sessions[name].run(self.outputs[name], feeds)
        binary = bool(doc.get("parameters", {}).get("binary_data_output"))
        outputs, blobs = [], []
        for out, arr in zip(self.outputs[name], results, strict=True):
            spec: dict[str, Any] = {
                "name": out, "datatype": _OIP[str(arr.dtype)], "shape": list(arr.shape)
            }  # fmt: skip
            if binary:
                blobs.append(arr.tobytes())
                spec["parameters"] = {"binary_data_size": len(blobs[-1])}
            else:
                spec["data"] = arr.ravel().tolist()
            outputs.append(spec)
        text = json.dumps({"model_name": name, "model_version": "1", "outputs": outputs}).encode()
        if not binary:
            return await _answer(send, 200, text, b"application/json")
        extra = [(b"inference-header-content-length", str(len(text)).encode())]
        await _answer(send, 200, b"".join([text, *blobs]), b"application/octet-stream", extra)


async def _answer(
    send: Send,
    status: int,
    body: bytes,
    media: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-type", media), (b"content-length", str(len(body)).encode())]
    headers += extra or []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    # NOTE: no _floor import (it needs onnxgate's protobuf stubs): this runs under any
    # interpreter with uvicorn, numpy and onnxruntime.
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--model", action="append", required=True, metavar="NAME=PATH.onnx")
    args = p.parse_args()
    port = args.port
    paths = {name: Path(path) for name, _, path in (m.partition("=") for m in args.model)}
    config = uvicorn.Config(
        BareHttp(paths), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )
    config.load()  # resolves "auto" to the classes it will use
    print(f"bare ASGI on 127.0.0.1:{port}: loop {config.loop}, http {config.http_protocol_class}")
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
