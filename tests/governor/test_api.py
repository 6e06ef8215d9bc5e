"""The governor's operator surface on a real server: CLI (policy, status, pause, resume,
approve, feedback), authentication, Prometheus, and the leader lease."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
from govtools import (
    FAST,
    Load,
    admin_metadata,
    admin_token,
    decisions,
    governor,
    normal_rows,
    set_policy,
    threshold_model,
)
from shared import wait_for

from gateway._proto import governor_pb2 as gpb
from gateway._proto import grpc_service_pb2 as pb
from gateway._proto import grpc_service_pb2_grpc as pb_grpc
from gateway.cli import main as cli
from registry.deployment import Role

POLICY = """
require_approval = true

[canary]
steps = [10, 50]
interval_s = 0.1
min_requests = 10

[gates]
max_p99_ratio = false
"""


@pytest.fixture
def canary(registry):
    registry.register_version("m", threshold_model(1), version="1", actor="t")
    registry.register_version("m", threshold_model(1, scale=2.0), version="2", actor="t")
    registry.set_weights("m", {"1": 90, "2": 10}, {"2": Role.CANARY}, actor="t")


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = cli(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_operator_flow_through_the_cli(
    registry, make_gateway, canary, capsys, monkeypatch, tmp_path
):
    gw = make_gateway(**FAST)
    t = ("--target", gw.target)
    monkeypatch.setenv("ONNXGATE_ADMIN_TOKEN", admin_token(gw))
    bad = tmp_path / "bad.toml"
    bad.write_text("[canary]\nsteps = [50, 10]\n")
    code, _, err = _cli(capsys, "policy", "set", "m", str(bad), *t)
    assert code == 1 and "canary.steps" in err
    good = tmp_path / "policy.toml"
    good.write_text(POLICY)
    code, out, _ = _cli(capsys, "policy", "set", "m", str(good), "--reason", "ramp", *t)
    assert code == 0 and "policy v1 of m" in out
    code, out, _ = _cli(capsys, "policy", "show", "m", "--json", *t)
    shown = json.loads(out)
    assert shown["version"] == 1 and shown["effective"]["canary"]["steps"] == [10.0, 50.0]

    load = Load(gw.target, "m", normal_rows).start()
    try:
        stub = governor(gw)

        def waiting() -> bool:
            s = stub.GetStatus(gpb.GetStatusRequest(model="m"), metadata=admin_metadata(gw))
            return s.last_decision == "await_approval"

        wait_for(waiting, timeout=30)
        code, out, _ = _cli(capsys, "governor", "status", "m", *t)
        assert code == 0 and "await_approval" in out and "step 2/2" in out
        assert "error_rate" in out and "<= 0.02" in out and "pass" in out
        code, out, _ = _cli(capsys, "governor", "status", "m", "--json", *t)
        status = json.loads(out)
        assert status["candidate"] == "2" and status["figures"]["2"]["weight"] == 50.0
        assert status["next_evaluation_in_s"] <= 0.2

        assert _cli(capsys, "governor", "pause", "m", "--reason", "look", *t)[0] == 0
        assert json.loads(_cli(capsys, "governor", "status", "m", "--json", *t)[1])["mode"] == (
            "paused"
        )
        assert _cli(capsys, "governor", "approve", "m", "2", *t)[0] == 0
        time.sleep(0.5)  # paused: approval alone changes nothing
        assert registry.get_deployment("m").champion.version == "1"
        assert _cli(capsys, "governor", "resume", "m", *t)[0] == 0
        wait_for(lambda: registry.get_deployment("m").champion.version == "2", timeout=20)
    finally:
        load.stop()
    actions = [e.action for e in registry.audit_events(subject="m")]
    for action in ("governor.policy", "governor.pause", "governor.approve", "governor.resume"):
        assert action in actions
    kinds = [d["kind"] for d in decisions(registry, "m") if d["kind"] != "hold"]
    assert kinds == ["advance", "await_approval", "promote"]
    operator = next(e for e in registry.audit_events(subject="m") if e.action == "governor.pause")
    assert (operator.actor, operator.reason) == ("test-operator", "look")


def _predict(target: str, n: int, model: str = "m") -> list[tuple[str, int]]:
    """n single-row requests with ids; returns (id, predicted label)."""
    out = []
    rng = np.random.default_rng(1)
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for i in range(n):
            x = rng.standard_normal((1, 4)).astype(np.float32)
            req = pb.ModelInferRequest(model_name=model, id=f"r{i}")
            req.inputs.add(name="x", datatype="FP32", shape=[1, 4])
            req.raw_input_contents.append(x.tobytes())
            resp = stub.ModelInfer(req, timeout=10)
            label = int(np.frombuffer(resp.raw_output_contents[0], dtype=np.int64)[0])
            out.append((req.id, label))
    return out


def test_feedback_file_joins_labels_and_counts_unknown_ids(
    registry, make_gateway, capsys, monkeypatch, tmp_path
):
    registry.register_version("m", threshold_model(1), version="1", actor="t")
    gw = make_gateway(**FAST)
    set_policy(gw, "m", 'mode = "enforce"\n')  # the defaults, spelled out
    wait_for(lambda: "m" in gw.gateway.feedback.configured(), timeout=10)
    predicted = _predict(gw.target, 30)
    lines = ["id,label"] + [
        f"{rid},{label if i < 20 else 1 - label}" for i, (rid, label) in enumerate(predicted)
    ]
    lines += ["nobody,1", "r0,1"]  # an id never served; r0 again (duplicate)
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join(lines) + "\n")
    monkeypatch.delenv("ONNXGATE_PREDICT_TOKEN", raising=False)
    code, out, err = _cli(
        capsys,
        "feedback",
        "m",
        "--file",
        str(labels),
        "--batch",
        "7",
        "--json",
        "--target",
        gw.target,
    )
    assert code == 0
    assert json.loads(out) == {
        "joined": 30,
        "unknown": 1,
        "expired": 0,
        "duplicate": 1,
        "invalid": 0,
    }
    assert "unknown ids were never served by this gateway, which is not in a fleet" in err
    quality = gw.gateway.feedback.quality("m")["1"]
    assert (quality.labelled, quality.correct) == (30, 20)
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c,d\n")
    code, _, err = _cli(capsys, "feedback", "m", "--file", str(bad), "--target", gw.target)
    assert code == 1 and "expected id,label" in err


def test_feedback_that_joins_nothing_fails_and_says_why(
    registry, make_gateway, capsys, monkeypatch, tmp_path
):
    """Only unknown ids exited 0 ("joined 0, unknown 2"); labels for a model without a
    rollout policy came back unknown without saying the model has no policy."""
    registry.register_version("m", threshold_model(1), version="1", actor="t")
    registry.register_version("p", threshold_model(1), version="1", actor="t")
    gw = make_gateway(**FAST)
    set_policy(gw, "p", 'mode = "enforce"\n')
    monkeypatch.delenv("ONNXGATE_PREDICT_TOKEN", raising=False)
    monkeypatch.setenv("ONNXGATE_ADMIN_TOKEN", admin_token(gw))
    wait_for(lambda: "p" in gw.gateway.feedback.configured(), timeout=10)
    labels = tmp_path / "labels.csv"
    labels.write_text("nobody,1\nnoone,0\n")
    code, out, err = _cli(capsys, "feedback", "p", "--file", str(labels), "--target", gw.target)
    assert code == 1 and "joined 0, unknown 2" in out
    assert "no label joined a prediction (2 of 2)" in err and "infer --id" in err
    predicted = _predict(gw.target, 2, model="m")
    labels.write_text("".join(f"{rid},{label}\n" for rid, label in predicted))
    code, out, err = _cli(capsys, "feedback", "m", "--file", str(labels), "--target", gw.target)
    assert code == 1
    assert "model 'm' has no rollout policy" in err and "policy set m" in err
    # Without an admin token the policy cannot be asked about: the general reason is given.
    monkeypatch.delenv("ONNXGATE_ADMIN_TOKEN")
    code, out, err = _cli(capsys, "feedback", "m", "--file", str(labels), "--target", gw.target)
    assert code == 1 and "no label joined a prediction" in err


def test_pause_or_resume_without_a_policy_fails_like_policy_show(
    registry, make_gateway, capsys, monkeypatch
):
    registry.register_version("m", threshold_model(1), version="1", actor="t")
    gw = make_gateway(**FAST)
    monkeypatch.setenv("ONNXGATE_ADMIN_TOKEN", admin_token(gw))
    assert _cli(capsys, "policy", "show", "m", "--target", gw.target)[0] == 1
    for command in ("pause", "resume"):
        code, _, err = _cli(capsys, "governor", command, "m", "--target", gw.target)
        assert code == 1 and f"has no governor policy: nothing to {command}" in err
    assert "governor.pause" not in [e.action for e in registry.audit_events(subject="m")]


def test_authentication(registry, make_gateway, canary):
    open_gw = make_gateway(**FAST)
    stub = governor(open_gw)
    for call in (
        lambda md: stub.GetStatus(gpb.GetStatusRequest(model="m"), metadata=md),
        lambda md: stub.Pause(gpb.PauseRequest(model="m"), metadata=md),
        lambda md: stub.SetPolicy(gpb.SetPolicyRequest(model="m", toml=""), metadata=md),
        lambda md: stub.GetPolicy(gpb.GetPolicyRequest(model="m"), metadata=md),
    ):
        with pytest.raises(grpc.RpcError) as err:
            call((("authorization", "Bearer wrong"),))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # Feedback follows ModelInfer: open here...
    feedback = gpb.FeedbackRequest(model="m", items=[gpb.FeedbackItem(id="x", label="1")])
    assert stub.Feedback(feedback).unknown == 1
    # ...and needs a predict token where predictions do.
    closed = governor(make_gateway(**FAST, predict_tokens={"p-token": "app"}))
    with pytest.raises(grpc.RpcError) as err:
        closed.Feedback(feedback)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert closed.Feedback(feedback, metadata=(("authorization", "Bearer p-token"),)).unknown == 1
    with pytest.raises(grpc.RpcError) as err:
        stub.SetPolicy(
            gpb.SetPolicyRequest(model="m", toml="mode = 'x'"), metadata=admin_metadata(open_gw)
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "mode" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stub.GetStatus(gpb.GetStatusRequest(model="nope"), metadata=admin_metadata(open_gw))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_prometheus_exports_governor_state(registry, make_gateway, canary):
    gw = make_gateway(**FAST)
    # Approval required: the canary waits at its last step, re-evaluated with every gate
    # each interval, so the gate gauges hold still while they are read (after a promotion
    # there is no candidate, and the next evaluation clears them).
    set_policy(gw, "m", POLICY)
    waiting = 'onnxgate_governor_decisions_total{kind="await_approval",mode="enforce",model="m"}'
    passed = 'onnxgate_governor_gate_passed{gate="error_rate",model="m",version="2"} 1.0'
    promoted = 'onnxgate_governor_decisions_total{kind="promote",mode="enforce",model="m"} 1.0'

    def scrape_with(*lines: str) -> str:
        text = urllib.request.urlopen(gw.metrics_url, timeout=5).read().decode()
        return text if all(line in text for line in lines) else ""

    load = Load(gw.target, "m", normal_rows).start()
    try:
        text = wait_for(lambda: scrape_with(waiting, passed), timeout=30)
        assert 'onnxgate_governor_decisions_total{kind="advance",mode="enforce",model="m"} 1.0' in (
            text
        )
        assert "onnxgate_governor_leader 1.0" in text
        assert 'onnxgate_governor_mode{mode="enforce",model="m"} 1.0' in text
        threshold = 'onnxgate_governor_gate_threshold{gate="error_rate",model="m",version="2"}'
        assert f"{threshold} 0.02" in text
        assert 'onnxgate_governor_step{candidate="2",model="m"} 2.0' in text
        governor(gw).Approve(
            gpb.ApproveRequest(model="m", version="2"), metadata=admin_metadata(gw)
        )
        # The promotion is written to the registry before the decision is counted: wait on
        # the scraped counter itself, not on the deployment it follows.
        wait_for(lambda: scrape_with(promoted), timeout=30)
    finally:
        load.stop()
    assert registry.get_deployment("m").champion.version == "2"


def test_one_governor_at_a_time(registry):
    store = registry.governor
    assert store.acquire("a", 5)
    assert not store.acquire("b", 5)
    assert store.acquire("a", 5)  # renewal
    assert store.leader()[0] == "a"
    store.release("a")
    assert store.acquire("a", 0.2)
    time.sleep(1.0)
    assert store.leader()[0] == ""  # expired
    assert store.acquire("b", 5)
    assert not store.acquire("a", 5)
    store.release("b")
    assert store.acquire("a", 5)


def test_two_gateways_share_one_leader(registry, make_gateway, canary):
    first, second = make_gateway(**FAST), make_gateway(**FAST)
    set_policy(first, "m", POLICY)
    wait_for(lambda: first.gateway.governor.is_leader or second.gateway.governor.is_leader)
    time.sleep(0.3)
    leaders = [g.gateway.governor.is_leader for g in (first, second)]
    assert leaders.count(True) == 1


def test_status_without_policy(registry, make_gateway, canary):
    gw = make_gateway(**FAST)
    status = governor(gw).GetStatus(gpb.GetStatusRequest(model="m"), metadata=admin_metadata(gw))
    assert status.policy_version == 0 and status.last_decision == ""
    with pytest.raises(grpc.RpcError) as err:
        governor(gw).GetPolicy(gpb.GetPolicyRequest(model="m"), metadata=admin_metadata(gw))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_cli_paths(tmp_path: Path) -> None:
    from gateway.cli.governor import read_labels

    f = tmp_path / "l.csv"
    f.write_text("request_id,label,row\na,1,0\nb,cat,2\n\n")
    assert list(read_labels(f)) == [("a", "1", 0), ("b", "cat", 2)]
