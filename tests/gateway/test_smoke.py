"""The shortest path through the product: register, serve, infer with tritonclient."""

from __future__ import annotations

import numpy as np
import tritonclient.grpc as triton

from gateway.tools import modelzoo


def test_tritonclient_infers_against_registered_model(registry, make_gateway):
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    gw = make_gateway()
    client = triton.InferenceServerClient(gw.target)
    x = np.random.default_rng(0).random((5, 4), dtype=np.float32)
    inp = triton.InferInput("x", [5, 4], "FP32")
    inp.set_data_from_numpy(x)
    result = client.infer("lin", [inp], request_id="req-1")
    expected = x @ modelzoo.linear_weights(4, 2, seed=3)
    np.testing.assert_allclose(result.as_numpy("y"), expected, rtol=1e-5)
    response = result.get_response()
    assert response.id == "req-1"
    assert response.model_version == "1"
    client.close()
