"""Rollout by policy on a real gateway: a version approved by two people (four eyes)
becomes a canary by itself, the governor promotes it with no failed request, and the next
approved version, queued meanwhile, starts after it."""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as triton
from shared import clear_onnxgate_env, wait_for

from gateway import cli
from gateway.tools import modelzoo
from registry.deployment import Role
from registry.governance_policy import GovernancePolicy
from registry.registry import Registry

FAST = {"governor_interval_s": 0.05, "poll_interval_s": 0.1, "monitoring": False}
POLICY = """
[start]
on = "approved"
strategy = "canary"

[canary]
steps = [50]
interval_s = 0.15
min_requests = 15

[gates]
max_p99_ratio = false  # loopback latency on a loaded 2-core box is noise, not evidence
min_requests = 10
"""


@pytest.fixture(autouse=True)
def _no_onnxgate_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_onnxgate_env(monkeypatch)


class Load:
    """Two tritonclient (gRPC) clients sending single rows until stopped."""

    def __init__(self, target: str, model: str) -> None:
        self.target, self.model = target, model
        self.ok: list[str] = []
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(2)]

    def _run(self, seed: int) -> None:
        client = triton.InferenceServerClient(self.target)
        rng = np.random.default_rng(seed)
        while not self._stop.is_set():
            x = rng.standard_normal((1, 4)).astype(np.float32)
            inp = triton.InferInput("x", [1, 4], "FP32")
            inp.set_data_from_numpy(x)
            try:
                result = client.infer(self.model, [inp], client_timeout=10)
            except Exception as exc:  # noqa: BLE001 - every failure is counted
                self.failed.append(repr(exc))
            else:
                self.ok.append(result.get_response().model_version)
        client.close()

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)


def _evaluations(registry: Registry, model: str) -> int:
    state = registry.governor.get_state(model)
    return 0 if state is None else int(state.state.get("evaluations", 0))


def _canary(registry: Registry, model: str) -> str | None:
    arms = registry.get_deployment(model).arms
    return next((a.version for a in arms if a.role is Role.CANARY), None)


def _status(registry_url: str, tmp_path: Any, capsys: Any) -> dict[str, Any]:
    flags = ["--registry", registry_url, "--artifact-dir", str(tmp_path / "artifacts"), "--json"]
    assert cli.main(["rollout", "status", "m", *flags]) == 0
    return dict(json.loads(capsys.readouterr().out))


def test_approved_version_becomes_a_canary_by_policy_and_is_promoted(
    registry: Registry, make_gateway, registry_url, tmp_path, capsys
):
    registry.register_version("m", modelzoo.linear(4, 2, seed=1), actor="alice")
    registry.governance.set_policy(GovernancePolicy(approvals_required=2), actor="admin")
    registry.register_version("m", modelzoo.linear(4, 2, seed=2), actor="alice")
    registry.register_version("m", modelzoo.linear(4, 2, seed=3), actor="alice")
    registry.governor.set_policy("m", POLICY, actor="admin")
    gw = make_gateway(**FAST)

    # One approval is not enough: the governor evaluates and starts nothing.
    registry.governance.approve("m", "2", approver="bob")
    assert registry.get_version("m", "2").status == "validated"
    seen = _evaluations(registry, "m")
    wait_for(lambda: _evaluations(registry, "m") >= seen + 3)
    assert _canary(registry, "m") is None
    status = _status(registry_url, tmp_path, capsys)
    assert status["on_trial"] is None and status["queue"] == []

    with Load(gw.target, "m") as load:
        registry.governance.approve("m", "2", approver="carol")  # four eyes: now approved
        wait_for(lambda: _canary(registry, "m") == "2")
        for approver in ("bob", "carol"):
            registry.governance.approve("m", "3", approver=approver)
        status = _status(registry_url, tmp_path, capsys)
        assert status["on_trial"] == {"version": "2", "role": "canary"}
        assert status["queue"] == ["3"]  # waits for its turn
        wait_for(lambda: registry.get_deployment("m").champion.version == "2", timeout=90)
        wait_for(lambda: _canary(registry, "m") == "3", timeout=30)  # the queue moves on
    assert load.failed == [], load.failed[:3]
    assert {"1", "2"} <= set(load.ok)

    starts = [
        e
        for e in registry.audit_events(subject="m")
        if e.actor == "governor" and (e.after or {}).get("details", {}).get("rule")
    ]
    assert [e.after["details"]["decision"]["candidate"] for e in starts] == ["2", "3"]
    rule = "[start] on = 'approved', strategy = 'canary'"
    assert all(e.after["details"]["rule"] == rule and rule in e.reason for e in starts)
    assert starts[0].after["details"]["queue"] == []
    promote = [e for e in registry.audit_events(subject="m") if e.action == "deployment.promote"]
    assert promote and promote[-1].actor == "governor"
    assert registry.verify_audit_chain() == []


def test_right_after_approval_both_statuses_say_starting_at_the_next_evaluation(
    registry: Registry, make_gateway, registry_url, tmp_path, capsys, monkeypatch
):
    """Until the next evaluation (canary.interval_s), ``rollout status`` said "canary at
    50%" while nothing was on trial, and ``governor status`` "candidate none" while the
    canary the governor had started took traffic."""
    from shared import ADMIN_TOKEN

    slow = POLICY.replace("interval_s = 0.15", "interval_s = 120")
    registry.register_version("m", modelzoo.linear(4, 2, seed=1), actor="alice")
    registry.register_version("m", modelzoo.linear(4, 2, seed=2), actor="alice")
    registry.governor.set_policy("m", slow, actor="admin")
    gw = make_gateway(**FAST)
    wait_for(lambda: _evaluations(registry, "m") >= 1)  # nothing approved: next in 120 s

    registry.governance.approve("m", "2", approver="bob")
    status = _status(registry_url, tmp_path, capsys)
    assert status["on_trial"] is None
    assert status["note"].startswith("starting at the next evaluation (in 1"), status["note"]
    assert status["next_evaluation_in_s"] > 60

    gw.gateway.governor.evaluate_now("m")  # the evaluation starts the canary, then waits
    wait_for(lambda: _canary(registry, "m") == "2")
    monkeypatch.setenv("ONNXGATE_ADMIN_TOKEN", ADMIN_TOKEN)
    assert cli.main(["governor", "status", "m", "--target", gw.target]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "candidate none" not in lines
    line = next(x for x in lines if x.startswith("candidate "))
    assert line.startswith("candidate 2 (canary at 50%), starting at the next evaluation (in 1")
    assert cli.main(["governor", "status", "m", "--target", gw.target, "--json"]) == 0
    starting = json.loads(capsys.readouterr().out)["starting"]
    assert starting["version"] == "2" and starting["next_evaluation_in_s"] > 60
