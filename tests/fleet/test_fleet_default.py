"""The fleet is on by default wherever the registry is shared: a PostgreSQL registry or
``--workers > 1``; ``fleet = false`` opts out, ``fleet = true`` forces it. A gateway on
PostgreSQL with no fleet setting joins the fleet, and a Feedback reply with unknown ids
says where to look."""

from __future__ import annotations

import grpc
import pytest
from governor.govtools import threshold_model
from pg_cluster import wipe
from shared import wait_for

from gateway._proto import governor_pb2 as gpb
from gateway._proto import governor_pb2_grpc as gpb_grpc
from gateway.settings import Settings
from registry import Registry

PG = "postgresql+psycopg://u@db/onnxgate"


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"ONNXGATE_REGISTRY": PG}, True),
        ({"ONNXGATE_WORKERS": "2"}, True),
        ({"ONNXGATE_REGISTRY": PG, "ONNXGATE_FLEET": "false"}, False),
        ({"ONNXGATE_WORKERS": "2", "ONNXGATE_FLEET": "false"}, False),
        ({"ONNXGATE_FLEET": "true"}, True),
    ],
)
def test_fleet_is_on_where_the_registry_is_shared(environ: dict[str, str], on: bool) -> None:
    assert Settings.load(environ).fleet_on is on


@pytest.fixture
def registry_url(postgres_server: str) -> str:
    wipe(postgres_server)
    return postgres_server


@pytest.mark.postgres
def test_a_gateway_on_postgres_joins_the_fleet_unasked(registry: Registry, make_gateway) -> None:
    registry.register_version("m", threshold_model(1), version="1", actor="t")
    gw = make_gateway(fleet=None, fleet_publish_s=0.2)
    assert gw.gateway.fleet is not None
    wait_for(lambda: registry.fleet.members(), timeout=30)
    stub = gpb_grpc.GovernorServiceStub(grpc.insecure_channel(gw.target))
    items = [gpb.FeedbackItem(id="never-served", label="1")]
    reply = stub.Feedback(gpb.FeedbackRequest(model="m", items=items), timeout=30)
    assert reply.unknown == 1
    assert "unknown to every member of this fleet" in reply.hint
