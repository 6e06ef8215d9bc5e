"""Large bodies decode off the event loop and still answer exactly as small ones do.

JSON bodies from ``decode_process_bytes`` parse in the decode process; BYTES-heavy bodies
decode on a thread (gateway.transport.decoding). The answer, and every refusal's status and
message, must be those of the inline decode; the decode process must not outlive the gateway.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest

from gateway._proto import grpc_service_pb2 as pb
from gateway.tools import modelzoo

ROWS = 20_000  # about 1 MB of JSON: over the 256 KiB process threshold


@pytest.fixture
def gw(registry, make_gateway):
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    registry.register_version("text", modelzoo.identity("BYTES"), actor="test")
    return make_gateway(metrics_port=-1)


def _children() -> set[int]:
    """Live (not zombie) child processes of this one, read from /proc."""
    me = str(os.getpid())
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def test_a_large_json_body_parses_in_the_decode_process(gw) -> None:
    before = _children()
    x = np.random.default_rng(0).random((ROWS, 4)).astype(np.float32)
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [ROWS, 4], "data": x.tolist()}]}
    content = json.dumps(body).encode()
    assert len(content) > 256 * 1024
    response = httpx.post(f"{gw.http_url}/v2/models/lin/infer", content=content, timeout=60)
    assert response.status_code == 200, response.text[:300]
    y = np.array(response.json()["outputs"][0]["data"], np.float32).reshape(ROWS, 2)
    np.testing.assert_allclose(y, x @ modelzoo.linear_weights(4, 2, seed=3), rtol=1e-4)
    decode = _children() - before
    assert decode, "no decode process was started for a large body"
    # The body parsed there and the 20,000-row answer was encoded there too.
    assert gw.gateway.decoder.offloaded["process"] == 2
    # A refusal raised in the decode process arrives as the same 400 naming the field.
    body["inputs"][0]["data"][5] = [1, 2]  # type: ignore[index]
    response = httpx.post(f"{gw.http_url}/v2/models/lin/infer", json=body, timeout=60)
    assert response.status_code == 400
    assert response.json()["error"] == "input 'x': data is ragged or holds values of mixed kinds"
    gw.stop()
    assert not decode & _children()


def test_a_large_bytes_request_decodes_on_a_thread(gw) -> None:
    count = 100_000
    req = pb.ModelInferRequest(model_name="text")
    req.inputs.add(name="x", datatype="BYTES", shape=[count // 3, 3])
    items = [f"w{i}".encode() for i in range(count // 3 * 3)]
    req.raw_input_contents.append(b"".join(len(b).to_bytes(4, "little") + b for b in items))
    response = gw.stub().ModelInfer(req, timeout=60)
    raw = response.raw_output_contents[0]
    assert raw == req.raw_input_contents[0]
    # Decoded on a thread, and its 100,000-string answer encoded on one.
    assert gw.gateway.decoder.offloaded == {"thread": 2, "process": 0}
    # Invalid UTF-8 deep in a large request: the same refusal as inline.
    items[-1] = b"\xff"
    bad = pb.ModelInferRequest()
    bad.CopyFrom(req)
    bad.raw_input_contents[0] = b"".join(len(b).to_bytes(4, "little") + b for b in items)
    with pytest.raises(grpc.RpcError) as info:
        gw.stub().ModelInfer(bad, timeout=60)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not valid UTF-8" in info.value.details()
