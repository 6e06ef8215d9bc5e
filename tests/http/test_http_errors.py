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
    # Hostile text and structure (issue 21): each named, none a 500.
    (_body(name="x\ud800"), {}, "inputs[0].name: character 1 is a lone UTF-16 surrogate"),
    ({**_body(), "id": "\udfff"}, {}, "id: character 0 is a lone UTF-16 surrogate"),
    ({**_body(), "id": "i" * 257}, {}, "id: 257 bytes is longer than the limit of 256"),
    ({**_body(), "outputs": [{"name": "y\ud800"}]}, {}, "outputs[0].name: character 1"),
    ({**_body(), "parameters": {"routing_key": "\ud800"}}, {}, "parameters.'routing_key'"),
    ({**_body(), "parameters": {f"p{i}": 1 for i in range(65)}}, {}, "more than the limit of 64"),
    (_body(shape=[1] * 33, data=[0]), {}, "shape has 33 dimensions; at most 32"),
    (_body(shape=[1] * 70, data=[0]), {}, "shape has 70 dimensions"),
    (b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}", {}, "nests JSON arrays or objects"),
    (_body(data=[0, 0, "x" * 10_000, 0]), {}, "FP32 data must hold numbers"),
    (_body(data=[0, 0, True, 0]), {}, "FP32 data must hold numbers"),
    ({**_body(), "parameters": {"timeout": "soon"}}, {}, "parameters.'timeout'"),
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


def test_bytes_with_a_lone_surrogate_is_400_naming_the_element(registry, make_gateway, caplog):
    registry.register_version("text", modelzoo.identity("BYTES"), actor="test")
    gw = make_gateway()
    body = {
        "inputs": [
            {"name": "x", "datatype": "BYTES", "shape": [1, 3], "data": ["a", "b\ud800", "c"]}
        ]
    }
    with caplog.at_level(logging.DEBUG):
        response = httpx.post(
            f"{gw.http_url}/v2/models/text/infer", content=json.dumps(body).encode(), timeout=30
        )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == (
        "input 'x': BYTES element 1 holds a lone UTF-16 surrogate, not valid Unicode text"
    )
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_a_body_that_is_not_json_or_binary_is_415(gw, content_type):
    # A cross-site page can POST these without a CORS preflight; inference must not run.
    response = httpx.post(
        f"{gw.http_url}/v2/models/lin/infer",
        content=json.dumps(_body()).encode(),
        headers={"content-type": content_type},
        timeout=30,
    )
    assert response.status_code == 415, response.text
    assert "Content-Type" in response.json()["error"]
    for accepted in ("application/json", "application/json; charset=utf-8", None):
        headers = {} if accepted is None else {"content-type": accepted}
        response = httpx.post(
            f"{gw.http_url}/v2/models/lin/infer",
            content=json.dumps(_body()).encode(),
            headers=headers,
            timeout=30,
        )
        assert response.status_code == 200, (accepted, response.text)


def test_an_expired_timeout_is_504_and_not_run(gw):
    response = httpx.post(
        f"{gw.http_url}/v2/models/lin/infer",
        json={**_body(), "parameters": {"timeout": 0}},
        timeout=30,
    )
    assert response.status_code == 504, response.text
    metrics = gw.gateway.metrics.registry
    assert (
        metrics.get_sample_value("onnxgate_rejected_requests_total", {"code": "DEADLINE_EXCEEDED"})
        == 1
    )
    # A generous timeout runs as usual.
    response = httpx.post(
        f"{gw.http_url}/v2/models/lin/infer",
        json={**_body(), "parameters": {"timeout": 10_000_000}},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def test_non_finite_outputs_are_strict_json(registry, make_gateway):
    registry.register_version("same", modelzoo.identity("FP32", width=3), actor="test")
    gw = make_gateway()
    body = b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}'
    response = httpx.post(f"{gw.http_url}/v2/models/same/infer", content=body, timeout=30)
    assert response.json()["outputs"][0]["data"] == [1, 2, 3]
    # NaN cannot be sent in JSON either; the binary extension carries it in and out.
    x = np.array([[np.nan, np.inf, -np.inf]], np.float32)
    content, headers = binary_body("x", "FP32", [1, 3], x.tobytes())
    response = httpx.post(
        f"{gw.http_url}/v2/models/same/infer", content=content, headers=headers, timeout=30
    )
    assert response.status_code == 200, response.text
    # Strict JSON (a parser that refuses NaN reads it): non-finite values as strings.
    data = json.loads(response.text, parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert data["outputs"][0]["data"] == ["NaN", "Infinity", "-Infinity"]
