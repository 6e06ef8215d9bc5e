"""Every error class of the HTTP face: status, ``{"error": ...}`` naming the field, no
traceback in the log, and the gateway keeps serving."""

from __future__ import annotations

import json
import logging

import httpx
import numpy as np
import pytest
from http_support import binary_body

from gateway.tools import modelzoo

TOKEN = "predict-secret"


def _body(**tensor: object) -> dict[str, object]:
    base: dict[str, object] = {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [0] * 4}
    base.update(tensor)
    return {"inputs": [base]}


@pytest.fixture
def gw(registry, make_gateway):
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    return make_gateway(max_message_bytes=64 * 1024)


def _good(url: str) -> None:
    response = httpx.post(f"{url}/v2/models/lin/infer", json=_body(), timeout=30)
    assert response.status_code == 200, response.text


BAD = [
    # (body or raw bytes, headers, the words the error must contain)
    (b"{not json", {}, "not valid JSON"),
    (b"[1, 2]", {}, "JSON object"),
    ({"inputs": []}, {}, "inputs"),
    (_body(name=""), {}, "inputs[0].name"),
    (_body(datatype="FP33"), {}, "unknown datatype 'FP33'"),
    (_body(datatype="BF16"), {}, "BF16 is not served"),
    (_body(shape="1x4"), {}, "shape must be a list of integers"),
    (_body(shape=[1, -4]), {}, "negative dimension"),
    (_body(data=[1, 2, 3]), {}, "data has 3 values, shape [1, 4] needs 4"),
    (_body(data=["a", "b", "c", "d"]), {}, "FP32 data must hold numbers"),
    (_body(data=[[1, 2], [3]]), {}, "ragged"),
    (_body(data=None), {}, "data must be a JSON array"),
    (_body(datatype="INT8", data=[1, 2, 3, 300]), {}, "does not fit INT8"),
    (_body(datatype="INT32", data=[1.5, 2, 3, 4]), {}, "INT32 data must hold integers"),
    (_body(datatype="BOOL", data=[1, 0, 1, 0]), {}, "BOOL data must hold booleans"),
    ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4]}]}, {}, "needs data"),
    (
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [1, 4],
                    "parameters": {"binary_data_size": 16},
                }
            ]
        },
        {},
        "runs past the end",
    ),  # fmt: skip
    (b'{"inputs": []}', {"Inference-Header-Content-Length": "x"}, "Inference-Header-Content"),
    (b'{"inputs": []}', {"Inference-Header-Content-Length": "999"}, "the body has 14 bytes"),
    ({**_body(), "parameters": {"a": {"nested": 1}}}, {}, "parameters.'a'"),
    ({**_body(), "outputs": [{"name": "nope"}]}, {}, "nope"),
    (_body(name="z"), {}, "'z'"),
    (_body(shape=[1, 3], data=[0, 0, 0]), {}, "shape"),
]


@pytest.mark.parametrize(("body", "headers", "words"), BAD)
def test_bad_input_is_400_naming_the_field(gw, caplog, body, headers, words):
    url = gw.http_url
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    with caplog.at_level(logging.DEBUG):
        response = httpx.post(
            f"{url}/v2/models/lin/infer", content=content, headers=headers, timeout=30
        )
    assert response.status_code == 400, response.text
    assert words in response.json()["error"]
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    _good(url)


def test_unknown_model_version_and_route_are_404(gw):
    url = gw.http_url
    for path, words in (
        ("/v2/models/nope/infer", "'nope'"),
        ("/v2/models/lin/versions/9/infer", "version '9'"),
    ):
        response = httpx.post(url + path, json=_body(), timeout=30)
        assert response.status_code == 404
        assert words in response.json()["error"]
    assert httpx.get(url + "/v2/models/nope", timeout=30).status_code == 404
    response = httpx.get(url + "/v3/anything", timeout=30)
    assert response.status_code == 404 and "no route" in response.json()["error"]
    response = httpx.get(url + "/v2/models/lin/infer", timeout=30)
    assert response.status_code == 405 and "not allowed" in response.json()["error"]


def test_a_body_over_the_limit_is_413(gw):
    big = np.zeros((8192, 4), np.float32).tobytes()  # 128 KiB against a 64 KiB limit
    content, headers = binary_body("x", "FP32", [8192, 4], big)
    response = httpx.post(
        f"{gw.http_url}/v2/models/lin/infer", content=content, headers=headers, timeout=30
    )
    assert response.status_code == 413
    assert "max_message_bytes" in response.json()["error"]
    _good(gw.http_url)


def test_a_model_that_failed_to_load_is_refused_and_others_keep_serving(registry, make_gateway):
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    registry.register_version("broken", modelzoo.failing_at_run(), actor="test", force=False)
    gw = make_gateway()
    response = httpx.post(f"{gw.http_url}/v2/models/broken/infer", json=_body(), timeout=30)
    assert response.status_code in (404, 503)  # unknown to routing, or known but not loaded
    assert "'broken'" in response.json()["error"]
    ready = httpx.get(f"{gw.http_url}/v2/models/broken/ready", timeout=30)
    assert ready.status_code == 503 and ready.json()["ready"] is False
    _good(gw.http_url)


def test_predict_tokens_guard_infer_401(registry, make_gateway):
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    gw = make_gateway(predict_tokens={TOKEN: "app"})
    url = f"{gw.http_url}/v2/models/lin/infer"
    missing = httpx.post(url, json=_body(), timeout=30)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "Authorization" in missing.json()["error"]
    wrong = httpx.post(url, json=_body(), headers={"Authorization": "Bearer x"}, timeout=30)
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid token"
    assert TOKEN not in wrong.text
    right = httpx.post(url, json=_body(), headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert right.status_code == 200
    # Health and metadata stay open, as on gRPC.
    assert httpx.get(f"{gw.http_url}/v2/models/lin", timeout=30).status_code == 200
