"""``explain --id`` falls back to the prediction log: a request served by a gateway that
has since stopped is explained by a new gateway (empty request journal), with the version
that served it and the inputs the log kept."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import numpy as np
import pytest
from explain_support import attributions, explain, explain_request, infer, onnx_of, register
from sklearn.linear_model import LogisticRegression

from gateway import cli

FEATURES = 4


def test_explain_by_id_after_a_restart_reads_the_log(
    registry, make_gateway, tmp_path: Path, capsys
) -> None:
    rng = np.random.default_rng(5)
    ref = rng.normal(size=(300, FEATURES))
    model = LogisticRegression().fit(ref, (ref[:, 1] > 0).astype(int))
    register(registry, "logged", onnx_of(model, FEATURES), ref)
    log_dir = tmp_path / "log"
    first = make_gateway(prediction_log=(str(log_dir),))
    served = rng.normal(size=(3, FEATURES))
    infer(first, "logged", served, "req-42")
    first.stop()  # closes the log's files; the request journal goes with the process

    second = make_gateway(prediction_log=(str(log_dir),))
    journal = second.gateway.feedback.journal
    assert journal is not None and journal.inputs_of("logged", "req-42") is None
    by_id = explain(second, explain_request("logged", request_id="req-42"))
    by_rows = explain(second, explain_request("logged", served))
    assert by_id.version == "1"
    np.testing.assert_array_equal(attributions(by_id), attributions(by_rows))
    np.testing.assert_allclose(
        attributions(by_id), model.coef_[0] * (served - ref.mean(axis=0)), atol=1e-6
    )

    # The CLI face too; and the version that served it is the one named.
    by_cli = ["explain", "logged", "--id", "req-42", "--json", "--target", second.target]
    assert cli.main(by_cli) == 0
    assert len(json.loads(capsys.readouterr().out)["base_value"]) == 3
    with pytest.raises(grpc.RpcError) as wrong:
        explain(second, explain_request("logged", version="2", request_id="req-42"))
    assert wrong.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as unknown:
        explain(second, explain_request("logged", request_id="never-served"))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_without_the_log_a_restart_forgets(registry, make_gateway) -> None:
    ref = np.random.default_rng(6).normal(size=(100, FEATURES))
    model = LogisticRegression().fit(ref, (ref[:, 0] > 0).astype(int))
    register(registry, "unlogged", onnx_of(model, FEATURES), ref)
    first = make_gateway()
    infer(first, "unlogged", ref[:1], "req-1")
    first.stop()
    second = make_gateway()
    with pytest.raises(grpc.RpcError) as unknown:
        explain(second, explain_request("unlogged", request_id="req-1"))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
