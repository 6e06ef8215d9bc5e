"""Registry changes reach a fleet gateway on PostgreSQL by LISTEN/NOTIFY, not the next
poll: with polling every 60 s, a new deployment is routed as soon as it is committed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from governor.govtools import threshold_model
from pg_cluster import wipe
from shared import wait_for

from registry.deployment import Role

pytestmark = pytest.mark.postgres


@pytest.fixture
def registry_url(postgres_server: str) -> Iterator[str]:
    wipe(postgres_server)
    yield postgres_server


def test_a_change_is_pushed_to_the_catalog(registry, make_gateway) -> None:
    registry.register_version("m", threshold_model(1), version="1", actor="t")
    gw = make_gateway(fleet=True, poll_interval_s=60.0, fleet_publish_s=0.5, monitoring=False)
    catalog = gw.gateway.catalog
    assert catalog.entries()["m"].table.revision == registry.get_deployment("m").revision
    registry.register_version("m", threshold_model(1, scale=2.0), version="2", actor="t")
    registry.set_weights("m", {"1": 90, "2": 10}, {"2": Role.CANARY}, actor="t", reason="r")
    revision = registry.get_deployment("m").revision
    wait_for(lambda: catalog.entries()["m"].table.revision == revision, timeout=10)
    assert gw.gateway.changes is not None and gw.gateway.changes.notified >= 1
