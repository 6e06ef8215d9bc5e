"""A gateway loads a signed version only while its signature verifies: the check runs
again whenever the version is loaded from the artifact store."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from registry.registration import Trust
from registry.registry import Registry
from supply_chain.conftest import sign_with_key, trust


def test_gateway_serves_a_signed_version_and_refuses_it_once_untrusted(
    registry: Registry, make_gateway, keys, model_file: Path
):
    private, public = keys["alice"]
    trust(registry, trusted_keys={"alice": str(public)})
    bundle = sign_with_key(model_file, private).read_bytes()
    registry.register_version("m", model_file.read_bytes(), trust=Trust(bundle=bundle))
    x = np.ones((1, 4), dtype=np.float32)
    inp = triton.InferInput("x", [1, 4], "FP32")
    inp.set_data_from_numpy(x)

    gw = make_gateway()
    client = triton.InferenceServerClient(gw.target)
    assert client.infer("m", [inp]).as_numpy("y").shape == (1, 2)

    # A gateway started after the key lost its trust cannot load the version.
    trust(registry, trusted_keys={"other": str(keys["mallory"][1])})
    later = make_gateway()
    fresh = triton.InferenceServerClient(later.target)
    assert not fresh.is_model_ready("m")
    with pytest.raises(InferenceServerException, match="no version with traffic"):
        fresh.infer("m", [inp])
    with urllib.request.urlopen(later.metrics_url) as resp:
        metrics = resp.read().decode()
    assert 'onnxgate_load_failures_total{model="m",version="1"} 1.0' in metrics
