"""Helpers shared by the monitoring tests: raw-FP32 requests, the monitoring stub, a
version registered with a reference profile."""

from __future__ import annotations

from typing import Any

import numpy as np
from shared import ADMIN_TOKEN

from gateway._proto import grpc_service_pb2 as pb
from gateway._proto import monitoring_pb2 as mpb
from gateway._proto import monitoring_pb2_grpc as mpb_grpc
from gateway.monitoring.reference import build_version_profiles, onnx_runner
from registry.registry import Registry

AUTH = (("authorization", f"Bearer {ADMIN_TOKEN}"),)


def infer_request(model: str, x: np.ndarray, version: str = "") -> pb.ModelInferRequest:
    x = np.ascontiguousarray(x, dtype=np.float32)
    req = pb.ModelInferRequest(model_name=model, model_version=version)
    req.inputs.add(name="x", datatype="FP32", shape=list(x.shape))
    req.raw_input_contents.append(x.tobytes())
    return req


def outputs_of(resp: pb.ModelInferResponse) -> dict[str, np.ndarray]:
    dtypes = {"FP32": np.float32, "INT64": np.int64}
    return {
        o.name: np.frombuffer(raw, dtype=dtypes[o.datatype]).reshape(tuple(o.shape))
        for o, raw in zip(resp.outputs, resp.raw_output_contents, strict=True)
    }


def send(gw: Any, model: str, x: np.ndarray, rows_per_call: int = 100) -> None:
    """Send ``x`` in calls of ``rows_per_call`` rows (every call must succeed)."""
    stub = gw.stub()
    for start in range(0, x.shape[0], rows_per_call):
        stub.ModelInfer(infer_request(model, x[start : start + rows_per_call]), timeout=30)


def monitoring(gw: Any) -> mpb_grpc.MonitoringServiceStub:
    return mpb_grpc.MonitoringServiceStub(gw.channel())


def get_drift(
    gw: Any, model: str, version: str = "", *, histograms: bool = False
) -> mpb.GetDriftResponse:
    request = mpb.GetDriftRequest(
        model=model, version=version, refresh=True, include_histograms=histograms
    )
    return monitoring(gw).GetDrift(request, metadata=AUTH, timeout=30)


def register_with_reference(
    registry: Registry, name: str, data: bytes, reference: np.ndarray
) -> str:
    """Register ``data`` and store the profile of ``reference`` (inputs and outputs)."""
    rec = registry.register_version(name, data, actor="test")
    profiles = build_version_profiles(rec.signature, reference, run=onnx_runner(data))
    registry.set_profile(name, rec.version, profiles.to_doc(), source="reference", actor="test")
    return rec.version
