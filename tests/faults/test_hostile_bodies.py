"""Random bytes as the body of any RPC: INVALID_ARGUMENT, no traceback, one log line at most.

Every method the gateway serves is probed, health and reflection included (their library
servicers are registered through ``gateway.transport.handlers`` too), before any token is
checked. A flood of such bodies writes one WARNING line per service per interval, with a
count, so an unauthenticated client cannot fill the log.
"""

from __future__ import annotations

import logging

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from gateway._proto import admin_pb2, governance_pb2, governor_pb2, monitoring_pb2
from gateway._proto import grpc_service_pb2 as pb
from gateway.tools import modelzoo
from gateway.transport.handlers import RefusalLog

GARBAGE = bytes(np.random.default_rng(14).integers(0, 256, 96, dtype=np.uint8))
TRUNCATED = b"\x0a\x80"  # field 1, length varint cut short: undecodable for every message
HANDLER_LOG = "gateway.transport.handlers"
INFER = "/inference.GRPCInferenceService/ModelInfer"


def _methods() -> list[tuple[str, bool, bool]]:
    """(path, client streaming, server streaming) for every method the gateway serves."""
    found = []
    for module in (pb, admin_pb2, governance_pb2, governor_pb2, monitoring_pb2, health_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for m in service.methods:
                found.append(
                    (f"/{service.full_name}/{m.name}", m.client_streaming, m.server_streaming)
                )
    service = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"]
    found += [(f"/{service.full_name}/{m.name}", True, True) for m in service.methods]
    return found


@pytest.fixture
def gw(registry, make_gateway):
    registry.register_version("ident", modelzoo.identity("FP32"), actor="test")
    return make_gateway()


def _call(channel: grpc.Channel, path: str, streams: tuple[bool, bool], body: bytes) -> None:
    kinds = {
        (False, False): channel.unary_unary,
        (False, True): channel.unary_stream,
        (True, False): channel.stream_unary,
        (True, True): channel.stream_stream,
    }
    call = kinds[streams](path, request_serializer=None, response_deserializer=None)
    if streams[0]:
        result = call(iter([body]), timeout=10)
    else:
        result = call(body, timeout=10)
    if streams[1]:
        list(result)


def _good(gw) -> None:
    req = pb.ModelInferRequest(model_name="ident")
    req.inputs.add(name="x", datatype="FP32", shape=[1, 3])
    req.raw_input_contents.append(np.array([[1, 2, 3]], np.float32).tobytes())
    out = gw.stub().ModelInfer(req, timeout=10)
    assert np.frombuffer(out.raw_output_contents[0], np.float32).tolist() == [1, 2, 3]


def test_every_method_refuses_random_bytes_as_invalid_argument(gw, caplog):
    methods = _methods()
    paths = {p for p, _, _ in methods}
    assert "/grpc.health.v1.Health/Check" in paths and "/grpc.health.v1.Health/Watch" in paths
    assert any(p.startswith("/grpc.reflection.v1alpha.") for p in paths)
    assert len(methods) > 35
    channel = gw.channel()
    with caplog.at_level(logging.DEBUG):
        for path, client_streams, server_streams in methods:
            for body in (GARBAGE, TRUNCATED):
                with pytest.raises(grpc.RpcError) as info:
                    _call(channel, path, (client_streams, server_streams), body)
                assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (
                    path,
                    info.value.code(),
                    info.value.details(),
                )
                assert "is not a valid" in (info.value.details() or "")
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info]
    # One line per service at most (7 services), however many bodies were refused.
    lines = [r for r in caplog.records if r.name == HANDLER_LOG]
    services = {p.split("/")[1] for p in paths}
    assert 0 < len(lines) <= len(services), [r.getMessage() for r in lines]
    assert all(r.levelno == logging.WARNING for r in lines)
    _good(gw)


def test_a_flood_of_garbage_writes_one_line(gw, caplog):
    channel = gw.channel()
    with caplog.at_level(logging.DEBUG):
        for _ in range(50):
            with pytest.raises(grpc.RpcError) as info:
                _call(
                    channel, "/inference.GRPCInferenceService/ModelInfer", (False, False), GARBAGE
                )
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    lines = [r.getMessage() for r in caplog.records if r.name == HANDLER_LOG]
    assert len(lines) == 1, lines
    # Sizes and names, never the bytes themselves.
    assert "ModelInfer" in lines[0] and "96 bytes" in lines[0]
    assert GARBAGE.hex()[:16] not in caplog.text
    _good(gw)


def test_health_and_reflection_still_answer_valid_requests(gw):
    from grpc_health.v1 import health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2_grpc

    health = health_pb2_grpc.HealthStub(gw.channel())
    status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status
    assert status == health_pb2.HealthCheckResponse.SERVING
    watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    watch.cancel()
    reflect = reflection_pb2_grpc.ServerReflectionStub(gw.channel())
    answers = list(
        reflect.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
        )
    )
    names = {s.name for s in answers[0].list_services_response.service}
    assert "inference.GRPCInferenceService" in names


def test_refusal_log_counts_between_lines(caplog):
    now = [0.0]
    refusals = RefusalLog("svc", interval_s=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger=HANDLER_LOG):
        assert refusals.refused("M", "pkg.Req", 5)
        assert not any(refusals.refused("M", "pkg.Req", 5) for _ in range(9))
        now[0] = 59.9
        assert not refusals.refused("M", "pkg.Req", 5)
        now[0] = 60.0
        assert refusals.refused("M", "pkg.Req", 7)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert messages[0].startswith("refused 1 ") and messages[1].startswith("refused 11 ")
