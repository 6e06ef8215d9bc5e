"""The Explain RPC on a real gateway: closed forms of linear models, additivity of
non-linear ones, explaining an earlier prediction by id, and the documented errors."""

from __future__ import annotations

import sys
import urllib.request

import grpc
import numpy as np
import pytest
from explain_support import attributions, explain, explain_request, infer, onnx_of, register
from shared import wait_for
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression

from gateway._proto import explain_pb2_grpc as epb_grpc
from gateway.explain import kernel
from gateway.tools import modelzoo

FEATURES = 6


def _data(seed: int = 0, rows: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, FEATURES)) * np.arange(1, FEATURES + 1) + np.arange(FEATURES)
    return x, rng.normal(size=(12, FEATURES)) * 2.0


def test_linear_regression_gets_the_closed_form(registry, make_gateway) -> None:
    ref, rows = _data()
    y = ref @ np.linspace(-2, 3, FEATURES) + 0.5
    model = LinearRegression().fit(ref, y + np.random.default_rng(1).normal(size=len(y)))
    register(registry, "lin", onnx_of(model, FEATURES), ref)
    gw = make_gateway()

    resp = explain(gw, explain_request("lin", rows))

    expected = model.coef_ * (rows - ref.mean(axis=0))
    phi = attributions(resp)
    np.testing.assert_allclose(phi, expected, atol=1e-6, rtol=0)
    np.testing.assert_allclose(resp.output_value, model.predict(rows), atol=1e-6, rtol=0)
    np.testing.assert_allclose(
        np.asarray(resp.base_value) + phi.sum(axis=1), resp.output_value, atol=1e-9
    )
    assert (resp.model, resp.version, resp.method) == ("lin", "1", "kernel")
    assert resp.output == "variable[0]"
    assert list(resp.features) == [f"x[{i}]" for i in range(FEATURES)]


@pytest.mark.parametrize("processes", [0, 1], ids=["threads", "worker-process"])
def test_logistic_regression_gets_the_closed_form_in_margin_space(
    registry, make_gateway, processes: int
) -> None:
    ref, rows = _data(2)
    y = (ref @ np.array([1.0, -0.5, 0.25, 0.0, 0.3, -0.2]) > 1.0).astype(int)
    model = LogisticRegression(C=0.5).fit(ref, y)
    register(registry, "logit", onnx_of(model, FEATURES), ref)
    gw = make_gateway(explain_processes=processes)

    resp = explain(gw, explain_request("logit", rows))

    w = model.coef_[0]
    np.testing.assert_allclose(attributions(resp), w * (rows - ref.mean(axis=0)), atol=1e-6)
    np.testing.assert_allclose(resp.output_value, model.decision_function(rows), atol=1e-6)
    assert resp.output == "logit(probabilities[1])"
    # Class 0 is the same margin, negated.
    other = explain(gw, explain_request("logit", rows, output="probabilities", index=0))
    np.testing.assert_allclose(attributions(other), -w * (rows - ref.mean(axis=0)), atol=1e-6)


@pytest.mark.parametrize("kind", ["mlp", "gbt"])
def test_non_linear_models_are_additive(registry, make_gateway, kind: str) -> None:
    ref, rows = _data(3)
    if kind == "mlp":
        data = modelzoo.mlp((FEATURES, 16, 2), seed=4)
        ref, rows = ref.astype(np.float32), rows.astype(np.float32)
    else:
        target = np.sin(ref[:, 0]) + ref[:, 1] * ref[:, 2]
        gbt = GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0)
        data = onnx_of(gbt.fit(ref, target), FEATURES, double=False)
    register(registry, kind, data, ref)
    gw = make_gateway()

    resp = explain(gw, explain_request(kind, rows, index=0))

    phi = attributions(resp)
    assert phi.shape == (len(rows), FEATURES)
    assert np.abs(phi).sum() > 0
    np.testing.assert_allclose(
        np.asarray(resp.base_value) + phi.sum(axis=1), resp.output_value, atol=1e-4
    )


def test_explain_an_earlier_prediction_by_request_id(registry, make_gateway) -> None:
    ref, rows = _data(5)
    model = LinearRegression().fit(ref, ref @ np.arange(FEATURES, dtype=float))
    register(registry, "byid", onnx_of(model, FEATURES), ref)
    gw = make_gateway()
    infer(gw, "byid", rows[:3], "req-42")

    resp = explain(gw, explain_request("byid", request_id="req-42"))

    assert resp.version == "1"
    np.testing.assert_allclose(
        attributions(resp), model.coef_ * (rows[:3] - ref.mean(0)), atol=1e-6
    )

    with pytest.raises(grpc.RpcError) as err:
        explain(gw, explain_request("byid", request_id="never-sent"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "never-sent" in err.value.details()


def test_documented_errors(registry, make_gateway, monkeypatch) -> None:
    ref, rows = _data(6)
    model = LinearRegression().fit(ref, ref[:, 0])
    register(registry, "noref", onnx_of(model, FEATURES), None)
    gw = make_gateway()

    def code_of(request, **kw):
        with pytest.raises(grpc.RpcError) as err:
            explain(gw, request, **kw)
        return err.value.code(), err.value.details()

    code, details = code_of(explain_request("noref", rows))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "reference sample" in details and "--reference" in details
    assert code_of(explain_request("nope", rows))[0] == grpc.StatusCode.NOT_FOUND
    assert code_of(explain_request("noref", rows, version="9"))[0] == grpc.StatusCode.NOT_FOUND
    register(registry, "withref", onnx_of(model, FEATURES), ref)
    # The new model is picked up on the gateway's next registry poll.
    wait_for(lambda: gw.gateway.catalog.entry("withref") is not None)
    code, details = code_of(explain_request("withref", rows[:, :3]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "rows: expected rows x 6 features" in details
    code, details = code_of(explain_request("withref", rows, output="nope"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "output" in details
    bad = explain_request("noref", rows)
    del bad.shape[:]
    bad.shape.extend([5, 5])
    code, details = code_of(bad)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "rows" in details

    # Without shap: FAILED_PRECONDITION naming the extra that installs it.
    monkeypatch.setitem(sys.modules, "shap", None)
    monkeypatch.setattr(kernel, "_shap", None)
    code, details = code_of(explain_request("noref", rows))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "onnxgate[explain]" in details


def test_explain_is_authenticated_like_predict(registry, make_gateway) -> None:
    ref, rows = _data(7)
    model = LinearRegression().fit(ref, ref[:, 1])
    register(registry, "auth", onnx_of(model, FEATURES), ref)
    gw = make_gateway(predict_tokens={"p-token": "app"})
    with pytest.raises(grpc.RpcError) as err:
        explain(gw, explain_request("auth", rows[:1]))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    resp = explain(
        gw, explain_request("auth", rows[:1]), metadata=(("authorization", "Bearer p-token"),)
    )
    assert len(resp.base_value) == 1


def test_overload_and_deadline_free_the_slot(registry, make_gateway) -> None:
    wide = 128
    rng = np.random.default_rng(8)
    ref = rng.normal(size=(300, wide)).astype(np.float32)
    register(registry, "wide", modelzoo.mlp((wide, 32, 2), seed=2), ref)
    gw = make_gateway(explain_queue=1, explain_max_rows=256)
    stub_call = explain_request("wide", rng.normal(size=(256, wide)), index=0)
    stub_call.timeout_s = 3.0  # far less than 256 rows of 128 features take

    first = epb_grpc.ExplainStub(gw.channel()).Explain.future(stub_call, timeout=120)
    wait_for(lambda: "onnxgate_explain_pending 1.0" in scrape(gw))

    with pytest.raises(grpc.RpcError) as err:
        explain(gw, explain_request("wide", ref[:1], index=0))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(grpc.RpcError) as err:
        first.result()
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The expired explanation gives its slot back; the next one is served.
    wait_for(lambda: "onnxgate_explain_pending 0.0" in scrape(gw))
    assert len(explain(gw, explain_request("wide", ref[:1], index=0)).base_value) == 1
    metrics = scrape(gw)
    assert 'onnxgate_explain_requests_total{code="RESOURCE_EXHAUSTED",model="wide"} 1.0' in metrics
    assert 'onnxgate_explain_requests_total{code="OK",model="wide"} 1.0' in metrics


def scrape(gw) -> str:
    return urllib.request.urlopen(gw.metrics_url, timeout=10).read().decode()


def test_unknown_model_names_never_become_metric_labels(registry, make_gateway) -> None:
    """2,000 made-up names once made an 80 MB /metrics page: they all count as one label."""
    gw = make_gateway()
    for i in range(50):
        with pytest.raises(grpc.RpcError) as info:
            explain(gw, explain_request(f"made-up-{i}", np.zeros((1, 2))))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    for request, field in (
        (explain_request("m" * 300, np.zeros((1, 2))), "model: 300 bytes"),
        (explain_request("x", np.zeros((1, 2)), request_id="i" * 257), "id: 257 bytes"),
    ):
        with pytest.raises(grpc.RpcError) as info:
            explain(gw, request)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in info.value.details()
    metrics = gw.gateway.metrics.registry
    assert (
        metrics.get_sample_value(
            "onnxgate_explain_requests_total", {"model": "(unknown)", "code": "NOT_FOUND"}
        )
        == 50
    )
    page = urllib.request.urlopen(gw.metrics_url, timeout=10).read().decode()
    assert "made-up" not in page
