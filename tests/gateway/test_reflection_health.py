"""grpc.health.v1 and server reflection, as grpc_health_probe and grpcurl use them."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from gateway.tools import modelzoo

INFERENCE = "inference.GRPCInferenceService"
ADMIN = "onnxgate.admin.v1.AdminService"


@pytest.fixture
def gw(registry, make_gateway):
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    return make_gateway(metrics_port=-1)


def test_health_is_serving_for_server_and_inference_service(gw):
    with gw.channel() as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", INFERENCE):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
        with pytest.raises(grpc.RpcError) as info:
            health.Check(health_pb2.HealthCheckRequest(service="no.Such"), timeout=10)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_services_and_resolves_messages(gw):
    with gw.channel() as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        services = set(db.get_services())
        assert {INFERENCE, ADMIN, "grpc.health.v1.Health"} <= services

        pool = descriptor_pool.DescriptorPool(db)
        request = pool.FindMessageTypeByName("inference.ModelInferRequest")
        assert request.fields_by_name["raw_input_contents"].number == 7
        tensor = request.nested_types_by_name["InferInputTensor"]
        assert tensor.fields_by_name["contents"].message_type.full_name == (
            "inference.InferTensorContents"
        )

        inference = pool.FindServiceByName(INFERENCE)
        infer = inference.methods_by_name["ModelInfer"]
        assert infer.input_type.full_name == "inference.ModelInferRequest"
        assert infer.output_type.full_name == "inference.ModelInferResponse"
        assert "RepositoryIndex" in inference.methods_by_name

        admin = pool.FindServiceByName(ADMIN)
        assert len(admin.methods) > 0
        for method in admin.methods:  # every request/response type resolves as well
            assert method.input_type.fields is not None
            assert method.output_type.fields is not None

        with pytest.raises(KeyError):
            pool.FindMessageTypeByName("inference.NoSuchMessage")
