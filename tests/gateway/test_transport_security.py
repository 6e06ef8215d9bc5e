"""Predict authentication (off by default, on with predict tokens) and TLS / mTLS."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
from pki_support import make_pki

from gateway._proto import grpc_service_pb2 as pb
from gateway._proto import grpc_service_pb2_grpc as pb_grpc
from gateway.tools import modelzoo


def _request() -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name="lin")
    req.inputs.add(name="x", datatype="FP32", shape=[1, 4])
    req.raw_input_contents.append(np.ones((1, 4), np.float32).tobytes())
    return req


@pytest.fixture
def lin(registry):
    registry.register_version("lin", modelzoo.linear(4, 2), actor="t")


def test_predict_is_open_by_default(lin, make_gateway):
    assert make_gateway().stub().ModelInfer(_request(), timeout=5).model_version == "1"


def test_predict_tokens_guard_model_infer_only(lin, make_gateway):
    gw = make_gateway(predict_tokens={"app-token": "billing-app"})
    stub = gw.stub()
    for metadata in ((), (("authorization", "Bearer nope"),)):
        with pytest.raises(grpc.RpcError) as err:
            stub.ModelInfer(_request(), metadata=metadata, timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "app-token" not in err.value.details()
    ok = stub.ModelInfer(_request(), metadata=(("authorization", "Bearer app-token"),), timeout=5)
    assert ok.model_version == "1"
    # Health-style calls stay open so load balancers and probes need no secret.
    assert stub.ServerLive(pb.ServerLiveRequest(), timeout=5).live


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    return make_pki(tmp_path / "pki")


def test_mtls_requires_a_client_certificate(lin, make_gateway, pki):
    gw = make_gateway(
        tls_cert=pki / "server.pem", tls_key=pki / "server.key", tls_client_ca=pki / "ca.pem",
        metrics_port=-1,
    )  # fmt: skip
    ca = (pki / "ca.pem").read_bytes()
    with_cert = grpc.ssl_channel_credentials(
        root_certificates=ca,
        private_key=(pki / "client.key").read_bytes(),
        certificate_chain=(pki / "client.pem").read_bytes(),
    )
    with grpc.secure_channel(gw.target, with_cert) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        assert stub.ModelInfer(_request(), timeout=10).model_version == "1"
    without_cert = grpc.ssl_channel_credentials(root_certificates=ca)
    with grpc.secure_channel(gw.target, without_cert) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.ModelInfer(_request(), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    # Plaintext is refused too.
    with grpc.insecure_channel(gw.target) as channel:
        with pytest.raises(grpc.RpcError):
            pb_grpc.GRPCInferenceServiceStub(channel).ServerLive(pb.ServerLiveRequest(), timeout=5)
