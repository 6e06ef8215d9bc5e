"""Helpers for the governor's end-to-end tests: tiny classifiers, a load generator that
sends delayed labels, and reading decisions back from the audit log.

Every test runs a real gateway (tests/conftest.py ``make_gateway``, with :data:`FAST`
settings: short governor ticks); the load runs in background threads with ordinary
blocking gRPC clients.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from gateway._proto import governor_pb2 as gpb
from gateway._proto import governor_pb2_grpc
from gateway._proto import grpc_service_pb2 as pb
from gateway._proto import grpc_service_pb2_grpc as pb_grpc

N_FEATURES = 4
FAST = {"governor_interval_s": 0.05, "poll_interval_s": 0.1, "monitoring": False}


def _finish(graph: Any) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def threshold_model(feature: int, *, scale: float = 1.0) -> bytes:
    """``label = int64(x[:, feature] > 0)``; ``scale`` changes the bytes, not the labels."""
    w = np.zeros((N_FEATURES, 1), np.float32)
    w[feature, 0] = scale
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["score2d"]),
            helper.make_node("Squeeze", ["score2d", "axes"], ["score"]),
            helper.make_node("Greater", ["score", "zero"], ["positive"]),
            helper.make_node("Cast", ["positive"], ["label"], to=TensorProto.INT64),
        ],
        "threshold",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", N_FEATURES])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
            helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"]),
        ],
        initializer=[
            numpy_helper.from_array(w, "W"),
            numpy_helper.from_array(np.array([1], np.int64), "axes"),
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        ],
    )
    return _finish(graph)


def fragile_model() -> bytes:
    """Same signature; labels like ``threshold_model(1)``, but a row whose ``x[:, 3]`` is
    10 or more makes the run fail (a Gather out of bounds): warm-up (zeros) passes."""
    w = np.zeros((N_FEATURES, 1), np.float32)
    w[1, 0] = 1.0
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["score2d"]),
            helper.make_node("Squeeze", ["score2d", "axes"], ["raw"]),
            helper.make_node("Greater", ["raw", "zero"], ["positive"]),
            helper.make_node("Cast", ["positive"], ["label"], to=TensorProto.INT64),
            helper.make_node("Gather", ["x", "col"], ["x3_2d"], axis=1),
            helper.make_node("Squeeze", ["x3_2d", "axes"], ["x3"]),
            helper.make_node("Cast", ["x3"], ["idx"], to=TensorProto.INT64),
            helper.make_node("Gather", ["table", "idx"], ["probe"], axis=0),
            helper.make_node("Mul", ["probe", "zero"], ["nothing"]),
            helper.make_node("Add", ["raw", "nothing"], ["score"]),
        ],
        "fragile",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", N_FEATURES])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
            helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"]),
        ],
        initializer=[
            numpy_helper.from_array(w, "W"),
            numpy_helper.from_array(np.array([1], np.int64), "axes"),
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
            numpy_helper.from_array(np.array([3], np.int64), "col"),
            numpy_helper.from_array(np.zeros(10, np.float32), "table"),
        ],
    )
    return _finish(graph)


@dataclass
class Outcome:
    ok: bool
    version: str | None
    code: str = ""


@dataclass
class Load:
    """Clients sending single-row requests with ids (and segments), and labels for them.

    ``inputs(rng, i)`` makes each request's (x, segment); ``truth(x)`` is the delayed
    label, sent by Feedback every ``label_every`` responses (None: no labels).
    """

    target: str
    model: str
    inputs: Callable[[np.random.Generator, int], tuple[np.ndarray, str]]
    truth: Callable[[np.ndarray], str] | None = None
    clients: int = 2
    label_every: int = 20
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    errors: list[BaseException] = field(default_factory=list)

    def _run(self, seed: int) -> None:
        # A client that dies would silently stop traffic and labels, and a test asserting
        # "not promoted" would then pass without testing anything: record and re-raise.
        try:
            self._loop(seed)
        except BaseException as exc:
            with self._lock:
                self.errors.append(exc)
            raise

    def _loop(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        pending: list[gpb.FeedbackItem] = []
        with grpc.insecure_channel(self.target) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            gov = governor_pb2_grpc.GovernorServiceStub(channel)
            i = 0
            while not self._stop.is_set():
                i += 1
                x, segment = self.inputs(rng, i)
                req = pb.ModelInferRequest(model_name=self.model, id=f"c{seed}-{i}")
                req.inputs.add(name="x", datatype="FP32", shape=list(x.shape))
                req.raw_input_contents.append(x.astype(np.float32).tobytes())
                if segment:
                    req.parameters["segment"].string_param = segment
                try:
                    resp = stub.ModelInfer(req, timeout=10)
                except grpc.RpcError as exc:
                    out = Outcome(False, None, exc.code().name)
                else:
                    out = Outcome(True, resp.model_version)
                    if self.truth is not None:
                        pending.append(gpb.FeedbackItem(id=req.id, label=self.truth(x)))
                with self._lock:
                    self.outcomes.append(out)
                if len(pending) >= self.label_every:
                    gov.Feedback(gpb.FeedbackRequest(model=self.model, items=pending), timeout=10)
                    pending = []

    def start(self) -> Load:
        for n in range(self.clients):
            t = threading.Thread(target=self._run, args=(n,), daemon=True)
            self._threads.append(t)
            t.start()
        return self

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for t in self._threads:
            t.join(15)
        assert not self.errors, f"a load client died: {self.errors[0]!r}"
        assert not any(t.is_alive() for t in self._threads), "a load client did not stop"
        assert self.outcomes, "the load sent no request"
        return self.outcomes

    def failures(self) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if not o.ok]


def normal_rows(rng: np.random.Generator, i: int) -> tuple[np.ndarray, str]:
    return rng.standard_normal((1, N_FEATURES)).astype(np.float32), ""


def admin_token(gw: Any) -> str:
    """The running gateway's admin token (read from its settings, not imported from a
    conftest: several test directories have one)."""
    return str(next(iter(gw.gateway.settings.admin_tokens)))


def admin_metadata(gw: Any) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {admin_token(gw)}"),)


def set_policy(gw: Any, model: str, toml: str) -> gpb.PolicyResponse:
    stub = governor_pb2_grpc.GovernorServiceStub(gw.channel())
    return stub.SetPolicy(gpb.SetPolicyRequest(model=model, toml=toml), metadata=admin_metadata(gw))


def governor(gw: Any) -> governor_pb2_grpc.GovernorServiceStub:
    return governor_pb2_grpc.GovernorServiceStub(gw.channel())


def decisions(registry: Any, model: str) -> list[dict[str, Any]]:
    """Every governor decision in the audit log, applied or recorded, oldest first."""
    out = []
    for e in registry.audit_events(subject=model):
        if e.action == "governor.decision":
            out.append(e.after["decision"])
        elif e.actor == "governor" and isinstance(e.after, dict) and "details" in e.after:
            out.append(e.after["details"]["decision"])
    return out


def governor_changes(registry: Any, model: str) -> list[Any]:
    """Audit events of deployment changes the governor applied, oldest first."""
    return [
        e
        for e in registry.audit_events(subject=model)
        if e.actor == "governor" and isinstance(e.after, dict) and "details" in e.after
    ]
