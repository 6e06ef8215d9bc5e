"""Thin servicer for ``onnxgate.explain.v1.Explain``: protobuf in, :class:`Explainer` out.

``GetImportance`` reads the global-importance sampler's per-version means. Both are
authenticated like ``ModelInfer`` (predict tokens when the gateway has any, else open): an
explanation reveals no more than the predictions the same caller may ask for. The work
runs on the explainer's own executor (:mod:`gateway.explain.service`), never on the
inference pool.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import grpc
import numpy as np

from gateway._proto import explain_pb2 as pb
from gateway._proto import explain_pb2_grpc as pb_grpc
from gateway.errors import InvalidArgument
from gateway.explain.service import Explainer
from gateway.governor.evidence import Importance
from gateway.limits import MAX_ID_BYTES, MAX_NAME_BYTES, check_text
from gateway.transport.auth import requires_token
from gateway.transport.handlers import add_service
from gateway.transport.status import grpc_errors

__all__ = ["EXPLAIN_SERVICE", "ExplainServicer"]

Context = grpc.aio.ServicerContext[Any, Any]
EXPLAIN_SERVICE = pb.DESCRIPTOR.services_by_name["Explain"].full_name


def _rows(request: pb.ExplainRequest) -> np.ndarray[Any, np.dtype[np.float64]] | None:
    if not request.rows and not request.shape:
        return None
    shape = tuple(request.shape)
    if len(shape) != 2 or min(shape) < 1:
        raise InvalidArgument(f"shape: expected [rows, features] (both >= 1), got {list(shape)}")
    if shape[0] * shape[1] != len(request.rows):
        raise InvalidArgument(
            f"rows: {len(request.rows)} values do not fill shape {list(shape)} "
            f"({shape[0] * shape[1]} values)"
        )
    return np.asarray(request.rows, dtype=np.float64).reshape(shape)


class ExplainServicer(pb_grpc.ExplainServicer):
    def __init__(
        self,
        explainer: Explainer,
        *,
        default_timeout_s: float,
        importance: Callable[[], Mapping[tuple[str, str], Importance]] | None = None,
    ) -> None:
        self._explainer = explainer
        self._timeout_s = default_timeout_s
        self._importance = importance

    def add_to_server(self, server: grpc.aio.Server, *, predict_tokens: Mapping[str, str]) -> str:
        """Register, each method wrapped (auth like ModelInfer, one error mapping); return the
        service name."""

        def wrap(_name: str, method: Any) -> Any:
            if predict_tokens:
                method = requires_token(predict_tokens)(method)
            return grpc_errors(method)

        return add_service(server, self, pb, "Explain", wrap)

    async def Explain(self, request: pb.ExplainRequest, context: Context) -> pb.ExplainResponse:
        timeout = request.timeout_s if request.timeout_s > 0 else self._timeout_s
        remaining = context.time_remaining()
        if remaining is not None:
            timeout = min(timeout, remaining)
        if request.has_output_index and request.output_index < 0:
            raise InvalidArgument(f"output_index: must be >= 0, got {request.output_index}")
        check_text("model", request.model, MAX_NAME_BYTES)
        check_text("version", request.version, MAX_NAME_BYTES)
        check_text("id", request.id, MAX_ID_BYTES)
        check_text("output", request.output, MAX_NAME_BYTES)
        if not math.isfinite(request.timeout_s):
            raise InvalidArgument(f"timeout_s: must be a finite number, got {request.timeout_s}")
        result = await self._explainer.explain(
            request.model,
            request.version,
            rows=_rows(request),
            request_id=request.id,
            output=request.output,
            output_index=request.output_index if request.has_output_index else -1,
            timeout_s=timeout,
        )
        return pb.ExplainResponse(
            model=result.model,
            version=result.version,
            output=result.output,
            method=result.method,
            features=list(result.features),
            base_value=result.base_value.tolist(),
            attributions=result.attributions.reshape(-1).tolist(),
            output_value=result.output_value.tolist(),
        )

    async def GetImportance(
        self, request: pb.GetImportanceRequest, context: Context
    ) -> pb.GetImportanceResponse:
        if not request.model:
            raise InvalidArgument("model is required")
        found = {} if self._importance is None else self._importance()
        resp = pb.GetImportanceResponse(model=request.model)
        for (model, version), imp in sorted(found.items()):
            if model == request.model and request.version in ("", version):
                resp.versions.add(
                    version=version,
                    rows=imp.rows,
                    features=list(imp.features),
                    mean_abs=list(imp.mean_abs),
                )
        return resp
