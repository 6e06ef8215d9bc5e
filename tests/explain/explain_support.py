"""Helpers of the explanation tests: models built here (skl2onnx, float64 so the closed
forms hold to 1e-6), registered with a reference sample, and the Explain stub."""

from __future__ import annotations

from typing import Any

import numpy as np
from skl2onnx import to_onnx
from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

from gateway._proto import explain_pb2 as epb
from gateway._proto import explain_pb2_grpc as epb_grpc
from gateway._proto import grpc_service_pb2 as pb
from gateway.monitoring.reference import build_version_profiles, onnx_runner
from registry.registry import Registry

OPSET = 17


def onnx_of(model: Any, features: int, *, double: bool = True, zipmap: bool = False) -> bytes:
    kind = DoubleTensorType if double else FloatTensorType
    options = {"zipmap": False} if zipmap is False and hasattr(model, "classes_") else None
    proto = to_onnx(
        model, initial_types=[("x", kind([None, features]))], options=options, target_opset=OPSET
    )
    return proto.SerializeToString()


def register(registry: Registry, name: str, data: bytes, reference: np.ndarray | None) -> str:
    """Register ``data``; store the reference profile of ``reference`` when given."""
    rec = registry.register_version(name, data, actor="test")
    if reference is not None:
        profiles = build_version_profiles(rec.signature, reference, run=onnx_runner(data))
        registry.set_profile(name, rec.version, profiles.to_doc(), source="reference", actor="test")
    return rec.version


def explain_request(
    model: str,
    rows: np.ndarray | None = None,
    *,
    version: str = "",
    request_id: str = "",
    output: str = "",
    index: int | None = None,
) -> epb.ExplainRequest:
    req = epb.ExplainRequest(model=model, version=version, id=request_id, output=output)
    if rows is not None:
        req.rows.extend(np.asarray(rows, dtype=np.float64).reshape(-1).tolist())
        req.shape.extend(rows.shape)
    if index is not None:
        req.output_index = index
        req.has_output_index = True
    return req


def explain(gw: Any, request: epb.ExplainRequest, **kw: Any) -> epb.ExplainResponse:
    return epb_grpc.ExplainStub(gw.channel()).Explain(request, timeout=120, **kw)


def attributions(resp: epb.ExplainResponse) -> np.ndarray:
    return np.asarray(resp.attributions).reshape(len(resp.base_value), len(resp.features))


def infer(
    gw: Any,
    model: str,
    x: np.ndarray,
    request_id: str = "",
    dtype: Any = np.float64,
    version: str = "",
) -> None:
    x = np.ascontiguousarray(x, dtype=dtype)
    req = pb.ModelInferRequest(model_name=model, model_version=version, id=request_id)
    req.inputs.add(name="x", datatype="FP64" if dtype == np.float64 else "FP32", shape=x.shape)
    req.raw_input_contents.append(x.tobytes())
    gw.stub().ModelInfer(req, timeout=30)
