"""Issue 3's proof: deployment changes under continuous load fail no request.

Four versions of one model (different weights, so each response tells which version
computed it) serve concurrent clients while the test makes 50+ changes through the admin
API: weights, promote, rollback, shadows, and a version that cannot load. Every response
must be correct for the version that says it served it, and that version must have been
deployed at some moment while the request was in flight.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

import grpc
import numpy as np
import pytest
from scipy import stats
from shared import admin_metadata

from gateway._proto import admin_pb2 as apb
from gateway._proto import grpc_service_pb2 as pb
from gateway._proto import grpc_service_pb2_grpc as pb_grpc
from gateway.tools import modelzoo

VERSIONS = ("1", "2", "3", "4")
SEEDS = {v: 10 + int(v) for v in VERSIONS}


@dataclass
class Outcome:
    start: float
    end: float
    version: str | None
    ok: bool
    detail: str = ""


class Load:
    def __init__(self, target: str, clients: int = 6) -> None:
        self.target = target
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)
        ]
        self.weights = {v: modelzoo.linear_weights(4, 2, seed=SEEDS[v]) for v in VERSIONS}

    def _run(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        with grpc.insecure_channel(self.target) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            while not self._stop.is_set():
                x = rng.standard_normal((2, 4)).astype(np.float32)
                req = pb.ModelInferRequest(model_name="m")
                req.inputs.add(name="x", datatype="FP32", shape=[2, 4])
                req.raw_input_contents.append(x.tobytes())
                t0 = time.monotonic()
                try:
                    resp = stub.ModelInfer(req, timeout=10)
                except grpc.RpcError as exc:
                    out = Outcome(t0, time.monotonic(), None, False, f"{exc.code().name}")
                else:
                    t1 = time.monotonic()
                    y = np.frombuffer(resp.raw_output_contents[0], dtype=np.float32).reshape(2, 2)
                    v = resp.model_version
                    correct = v in self.weights and np.allclose(y, x @ self.weights[v], rtol=1e-4)
                    out = Outcome(t0, t1, v, correct, "" if correct else "wrong output")
                with self._lock:
                    self.outcomes.append(out)

    def start(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for t in self._threads:
            t.join(15)
        return self.outcomes


@pytest.fixture
def model_m(registry):
    for v in VERSIONS:
        registry.register_version("m", modelzoo.linear(4, 2, seed=SEEDS[v]), version=v, actor="t")
    registry.register_version("m", modelzoo.failing_at_run(4), version="bad", actor="t")


def _deployed(dep: apb.Deployment) -> frozenset[str]:
    return frozenset(a.version for a in dep.arms if a.weight > 0)


def test_fifty_changes_under_load_fail_no_request(registry, make_gateway, model_m):
    gw = make_gateway()
    admin = gw.admin()
    md = admin_metadata()
    rng = random.Random(42)
    # (call sent, call acknowledged, routable versions): a revision may route from the moment
    # its change was sent until the next change is acknowledged.
    timeline: list[tuple[float, float, frozenset[str]]] = [(0.0, 0.0, frozenset({"1"}))]
    changes = 0
    refused = 0
    load = Load(gw.target).start()
    time.sleep(0.3)
    try:
        for i in range(60):
            kind = i % 7
            t_call = time.monotonic()
            try:
                if kind in (0, 1, 2):
                    chosen = rng.sample(VERSIONS, rng.randint(1, 3))
                    cur = admin.GetDeployment(apb.GetDeploymentRequest(model="m"), metadata=md)
                    champion = next(a.version for a in cur.deployment.arms if a.role == "champion")
                    if champion not in chosen:
                        chosen.append(champion)
                    weights = {v: float(rng.randint(1, 9)) for v in chosen}
                    resp = admin.SetWeights(
                        apb.SetWeightsRequest(model="m", weights=weights, reason=f"step {i}"),
                        metadata=md,
                    )
                elif kind == 3:
                    cur = admin.GetDeployment(apb.GetDeploymentRequest(model="m"), metadata=md)
                    others = [a.version for a in cur.deployment.arms if a.role != "champion"]
                    others += [s.version for s in cur.deployment.shadows]
                    if not others:  # nothing to promote: bring a challenger in instead
                        champion = cur.deployment.arms[0].version
                        spare = next(v for v in VERSIONS if v != champion)
                        weights = {champion: 3.0, spare: 1.0}
                        resp = admin.SetWeights(
                            apb.SetWeightsRequest(model="m", weights=weights), metadata=md
                        )
                    else:
                        resp = admin.Promote(
                            apb.PromoteRequest(
                                model="m", version=rng.choice(others), keep_old=rng.random() < 0.5
                            ),
                            metadata=md,
                        )
                elif kind == 4:
                    resp = admin.Rollback(apb.RollbackRequest(model="m"), metadata=md)
                elif kind == 5:
                    cur = admin.GetDeployment(apb.GetDeploymentRequest(model="m"), metadata=md)
                    arms = {a.version for a in cur.deployment.arms}
                    spare = [v for v in VERSIONS if v not in arms]
                    if cur.deployment.shadows:
                        resp = admin.RemoveShadow(
                            apb.RemoveShadowRequest(
                                model="m", version=cur.deployment.shadows[0].version
                            ),
                            metadata=md,
                        )
                    elif spare:
                        resp = admin.AddShadow(
                            apb.AddShadowRequest(model="m", version=spare[0], fraction=0.5),
                            metadata=md,
                        )
                    else:
                        resp = admin.Rollback(apb.RollbackRequest(model="m"), metadata=md)
                else:
                    # A version that cannot load: the change is refused, traffic unaffected.
                    before = admin.GetDeployment(apb.GetDeploymentRequest(model="m"), metadata=md)
                    with pytest.raises(grpc.RpcError) as err:
                        cur_w = {a.version: a.weight for a in before.deployment.arms}
                        admin.SetWeights(
                            apb.SetWeightsRequest(model="m", weights={**cur_w, "bad": 1.0}),
                            metadata=md,
                        )
                    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
                    assert "bad" in err.value.details() or "load" in err.value.details()
                    after = admin.GetDeployment(apb.GetDeploymentRequest(model="m"), metadata=md)
                    assert after.deployment.revision == before.deployment.revision
                    refused += 1
                    continue
            except grpc.RpcError as exc:  # pragma: no cover - shows which change broke
                pytest.fail(f"change {i} (kind {kind}) refused: {exc.code()} {exc.details()}")
            changes += 1
            timeline.append((t_call, time.monotonic(), _deployed(resp.deployment)))
            # The gateway must route the new revision as soon as the admin call returns.
            assert set(resp.deployment.loaded_versions) >= _deployed(resp.deployment)
            time.sleep(0.03)
    finally:
        outcomes = load.stop()

    assert changes >= 50
    assert refused >= 7
    failed = [o for o in outcomes if not o.ok]
    assert not failed, f"{len(failed)} of {len(outcomes)} requests failed: {failed[:5]}"
    assert len(outcomes) > 500

    # Every response came from a version routable at some moment while it was in flight.
    ends = [ack for _, ack, _ in timeline[1:]] + [float("inf")]
    for o in outcomes:
        allowed = frozenset().union(
            *(
                versions
                for (sent, _, versions), until in zip(timeline, ends, strict=True)
                if sent <= o.end and o.start <= until
            )
        )
        assert o.version in allowed, (o, sorted(allowed))

    # The audit log has every change (plus registration events and the refusals).
    events = registry.audit_events(subject="m")
    deployment_events = [e for e in events if e.action.startswith("deployment.")]
    applied = [e for e in deployment_events if e.action != "deployment.refused"]
    # +1: the first registration made revision 1.
    assert len(applied) == changes + 1
    assert sum(e.action == "deployment.refused" for e in deployment_events) == refused
    assert registry.verify_audit_chain() == []


def test_observed_split_matches_weights(registry, make_gateway, model_m):
    gw = make_gateway()
    gw.admin().SetWeights(
        apb.SetWeightsRequest(model="m", weights={"1": 60, "2": 30, "3": 10}),
        metadata=admin_metadata(),
    )
    load = Load(gw.target, clients=4).start()
    deadline = time.monotonic() + 30
    while len(load.outcomes) < 3000 and time.monotonic() < deadline:
        time.sleep(0.1)
    outcomes = load.stop()
    assert all(o.ok for o in outcomes)
    counts = np.array([sum(o.version == v for o in outcomes) for v in ("1", "2", "3")])
    expected = np.array([0.6, 0.3, 0.1]) * counts.sum()
    assert stats.chisquare(counts, expected).pvalue > 0.001, counts


def test_sticky_routing_key_pins_each_key_to_one_version(registry, make_gateway, model_m):
    gw = make_gateway()
    gw.admin().SetWeights(
        apb.SetWeightsRequest(model="m", weights={"1": 50, "2": 50}), metadata=admin_metadata()
    )
    stub = gw.stub()
    x = np.zeros((1, 4), dtype=np.float32)

    def served(key: str, via_metadata: bool) -> str:
        req = pb.ModelInferRequest(model_name="m")
        req.inputs.add(name="x", datatype="FP32", shape=[1, 4])
        req.raw_input_contents.append(x.tobytes())
        md: tuple[tuple[str, str], ...] = ()
        if via_metadata:
            md = (("x-routing-key", key),)
        else:
            req.parameters["routing_key"].string_param = key
        return stub.ModelInfer(req, metadata=md, timeout=5).model_version

    seen = {}
    for k in range(40):
        key = f"user-{k}"
        first = served(key, via_metadata=False)
        assert all(served(key, via_metadata=bool(r % 2)) == first for r in range(4))
        seen[key] = first
    assert set(seen.values()) == {"1", "2"}  # 40 keys at 50/50 land on both arms

    # An explicit version beats the key.
    req = pb.ModelInferRequest(model_name="m", model_version="2")
    req.inputs.add(name="x", datatype="FP32", shape=[1, 4])
    req.raw_input_contents.append(x.tobytes())
    req.parameters["routing_key"].string_param = next(k for k, v in seen.items() if v == "1")
    resp = stub.ModelInfer(req, timeout=5)
    assert resp.model_version == "2"
    assert resp.parameters["role"].string_param == "challenger"
