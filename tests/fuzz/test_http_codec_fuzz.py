"""The HTTP face's codec and the cross-request promise, fuzzed (issue 21).

* ``decode_infer`` on any body — arbitrary JSON documents, hostile text (lone surrogates),
  deep nesting, many dimensions, binary-extension tails of any length — either returns a
  request or raises ``InvalidArgument``; never anything else (a 500 on the wire). Pure: no
  server, so hundreds of cases cost a second.
* Whatever decodes, ``encode_infer`` of its tensors as outputs is strict JSON.
* Under batching, random hostile requests interleaved with valid ones never change a valid
  request's answer (each equals the answer it gets alone), and what clients name never
  becomes a metric label: the ``/metrics`` series count stays bounded.
"""

from __future__ import annotations

import json
import math
import string
from concurrent.futures import ThreadPoolExecutor
from typing import Any, get_args

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.domain import InferResult
from gateway.errors import InvalidArgument, StatusName
from gateway.tools import modelzoo
from gateway.transport.http import codec

DATATYPES = ["FP32", "FP64", "INT8", "INT64", "UINT64", "BOOL", "BYTES", "FP16", "BF16", "X"]
SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udc00b"])
text = st.one_of(st.text(max_size=20), SURROGATES, st.text(max_size=300))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), text
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=6), st.dictionaries(text, inner, max_size=4)),
    max_leaves=40,
)


@st.composite
def tensors(draw: st.DrawFn) -> dict[str, Any]:
    rank = draw(st.integers(0, 40))
    shape = draw(st.lists(st.integers(-1, 4), min_size=rank, max_size=rank))
    tensor: dict[str, Any] = {
        "name": draw(st.one_of(st.just("x"), text)),
        "datatype": draw(st.sampled_from(DATATYPES)),
        "shape": draw(st.one_of(st.just(shape), json_values)),
    }
    if draw(st.booleans()):
        tensor["data"] = draw(json_values)
    else:
        tensor["parameters"] = {"binary_data_size": draw(st.integers(-1, 64))}
    return tensor


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, str | None]:
    doc: dict[str, Any] = {"inputs": draw(st.lists(tensors(), max_size=3))}
    for key, value in (
        ("id", st.one_of(text, json_values)),
        ("parameters", st.dictionaries(text, scalars, max_size=70)),
        ("outputs", st.lists(st.dictionaries(st.just("name"), text), max_size=3)),
    ):
        if draw(st.booleans()):
            doc[key] = draw(value)
    head = json.dumps(doc).encode()
    depth = draw(st.sampled_from([0, 0, 0, 100, 3000]))
    if depth:
        head = b'{"inputs": [{"data": ' + b"[" * depth + b"]" * depth + b"}]}"
    tail = draw(st.binary(max_size=64))
    with_tail = draw(st.booleans())
    return head + (tail if with_tail else b""), (str(len(head)) if with_tail else None)


@given(bodies(), st.sampled_from(["m", "m\ud800", "x" * 300]))
@example(
    (b'{"inputs":[{"name":"x","datatype":"BYTES","shape":[1],"data":["\\ud800"]}]}', None), "m"
)
@example((b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":["1"]}]}', None), "m")
def test_any_body_decodes_or_is_refused_as_invalid(body: tuple[bytes, str | None], model: str):
    content, header = body
    try:
        decoded = codec.decode_infer(model, "", content, header)
    except InvalidArgument as exc:
        assert exc.message.encode("utf-8")  # a message any client can read
        return
    # Whatever decodes is clean text and well-shaped, and encodes back as strict JSON.
    request = decoded.request
    for name, arr in request.inputs.items():
        name.encode("utf-8")
        assert arr.ndim <= 32
    result = InferResult(model, "1", "champion", request.id, dict(request.inputs), 1)
    out, length = codec.encode_infer(result, decoded, {})
    json.loads(out[:length] if length else out, parse_constant=_no)


def _no(constant: str) -> None:
    raise AssertionError(f"non-strict JSON constant {constant}")


def _outcome(decode: Any) -> Any:
    try:
        d = decode()
    except InvalidArgument as exc:
        return ("refused", exc.message)
    r = d.request
    inputs = {
        k: (v.dtype.str, v.shape, v.tolist() if v.dtype.kind in "OU" else v.tobytes())
        for k, v in r.inputs.items()
    }
    params = {k: (type(v), v) for k, v in r.parameters.items()}
    return ("ok", r.id, inputs, params, r.requested_outputs, d.binary_outputs, d.all_binary)


BIG_INTEGER_BODY = (
    b'{"inputs":[{"name":"x","datatype":"UINT64","shape":[1],"data":[18446744073709551616]}]}'
)
# Floats an FP32 tensor holds (a larger one overflows its cast, refused elsewhere), the
# non-finite ones, and integers beyond 64 bits (orjson reads those as floats).
numbers = st.one_of(
    st.floats(-1e30, 1e30),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.integers(-(2**80), 2**80),
)


@given(bodies(), st.lists(numbers, max_size=6))
@example((BIG_INTEGER_BODY, None), [])
@example((BIG_INTEGER_BODY, None), [0.0, -(2**70), 1])  # a float tensor, a small parameter
@example((b'{"inputs":[{"name":"x","datatype":"FP32","shape":[0],"data":[]}]}', None), [2**64])
def test_the_fast_reading_equals_the_standard_one(body: tuple[bytes, str | None], extra):
    """orjson first (codec.decode_infer) reads and refuses every body as ``json`` alone
    does: same tensors, same parameters with the same types, same refusal messages."""
    content, header = body
    for datatype in ("FP32", "INT64", "UINT64"):
        tensor = {"name": "x", "datatype": datatype, "shape": [len(extra)], "data": extra}
        doc = {"inputs": [tensor], "parameters": {"p": extra[-1] if len(extra) > 1 else 0}}
        for raw, length in ((content, header), (json.dumps(doc).encode(), None)):
            fast = _outcome(lambda: codec.decode_infer("m", "", raw, length))  # noqa: B023
            slow = _outcome(lambda: codec._decode_infer("m", "", raw, length, json.loads))  # noqa: B023
            assert fast == slow


# -- across requests: hostile ones never change a valid one's answer ----------------------------


@pytest.fixture
def gw(registry, make_gateway):
    registry.register_version("lookup", modelzoo.lookup(), actor="test")
    return make_gateway(max_delay_us=3000)


hostile_bodies = st.one_of(
    bodies().map(lambda b: b[0]),
    st.floats(1e3, 1e9).map(
        lambda v: json.dumps(
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [v, 0]}]}
        ).encode()
    ),
    st.text(string.printable, max_size=40).map(
        lambda name: json.dumps(
            {
                "id": name,
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, 0]}],
            }
        ).encode()
    ),
)


@settings(max_examples=15)  # each example is ~20 HTTP calls against a live gateway
@given(
    st.lists(hostile_bodies, min_size=4, max_size=12),
    st.lists(st.integers(0, 9), min_size=8, max_size=8),
)
def test_hostile_neighbours_never_change_a_valid_answer(
    gw, hostile: list[bytes], indices: list[int]
):
    url = gw.http_url

    def valid(index: int) -> list[float]:
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [index, 0]}]}
        response = httpx.post(f"{url}/v2/models/lookup/infer", json=body, timeout=30)
        assert response.status_code == 200, response.text
        return list(response.json()["outputs"][0]["data"])

    def bad(content: bytes) -> int:
        response = httpx.post(
            f"{url}/v2/models/lookup/infer",
            content=content,
            headers={"content-type": "application/json"},
            timeout=30,
        )
        assert response.status_code < 500, response.text
        assert "error" in response.json() or response.status_code == 200
        return response.status_code

    with ThreadPoolExecutor(8) as pool:
        goods = [pool.submit(valid, i) for i in indices]
        bads = [pool.submit(bad, c) for c in hostile]
        answers = [f.result() for f in goods]
        [f.result() for f in bads]
    assert answers == [[i * 10.0, i * 10.0 + 1] for i in indices]
    metrics = gw.gateway.metrics.registry
    assert not metrics.get_sample_value(
        "onnxgate_requests_total",
        {"model": "lookup", "version": "1", "role": "champion", "code": "INTERNAL"},
    )
    # Labels come from the catalog, never from what clients name: one model, one version,
    # one role, and status names from the protocol's fixed set.
    labels = [
        s.labels
        for family in metrics.collect()
        for s in family.samples
        if s.name.startswith("onnxgate_requests")
    ]
    assert {lb["model"] for lb in labels} == {"lookup"}
    assert {lb["version"] for lb in labels} == {"1"}
    assert {lb["role"] for lb in labels} == {"champion"}
    assert {lb["code"] for lb in labels} <= {"OK", *get_args(StatusName)}
