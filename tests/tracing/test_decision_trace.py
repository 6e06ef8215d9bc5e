"""A governor evaluation is a trace of its own: its span reaches the OTLP receiver and its
audit event carries the same trace id."""

from __future__ import annotations

from otlp_receiver import OtlpReceiver
from shared import admin_metadata, wait_for

from gateway._proto import governor_pb2 as gpb
from gateway._proto import governor_pb2_grpc
from gateway.tools import modelzoo
from registry.deployment import Role

POLICY = """
mode = "dry-run"
[canary]
steps = [5, 50]
interval_s = 0.1
min_requests = 1000
"""


def test_governor_decision_audit_carries_its_trace_id(registry, make_gateway) -> None:
    registry.register_version("m", modelzoo.linear(4, 2, seed=1), version="1", actor="t")
    registry.register_version("m", modelzoo.linear(4, 2, seed=2), version="2", actor="t")
    registry.set_weights("m", {"1": 95, "2": 5}, {"2": Role.CANARY}, actor="t", reason="canary")
    with OtlpReceiver() as receiver:
        gw = make_gateway(
            otel_endpoint=receiver.url,
            governor_interval_s=0.05,
            poll_interval_s=0.1,
            monitoring=False,
        )
        stub = governor_pb2_grpc.GovernorServiceStub(gw.channel())
        stub.SetPolicy(gpb.SetPolicyRequest(model="m", toml=POLICY), metadata=admin_metadata())

        def audited() -> list[str]:
            events = registry.audit_events(subject="m")
            return [e.after["trace_id"] for e in events if e.action == "governor.decision"]

        trace_ids = wait_for(audited, timeout=30)

        def exported() -> list[object]:
            return [
                s for s in receiver.of_trace(trace_ids[0]) if s.name == "onnxgate.governor.decision"
            ]

        span = wait_for(exported, timeout=30)[0]
        attributes = {a.key: a.value.string_value for a in span.attributes}
        assert attributes == {"onnxgate.model": "m", "onnxgate.decision": "hold"}
        assert span.parent_span_id == b""  # a root: nothing called the governor
        gw.stop()
