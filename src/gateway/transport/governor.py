"""Thin servicer for ``onnxgate.governor.v1.GovernorService``: feedback, status, control.

Decodes requests into the operations core (:class:`gateway.operations.GovernorOps` and
:meth:`gateway.operations.Labels.join_labels`) and encodes its answers. ``Feedback`` joins
delayed labels into this gateway's feedback store (send them to the gateway that served the
predictions: each keeps its own record). The other methods read and write the governor's
tables in the registry, so they answer the same on every gateway whichever one holds the
governor lease.

Authentication is applied around these methods when the server registers them
(:mod:`gateway.transport.grpc_server`): operator methods go through the role guard like every
admin service (the permission each needs is looked up in
:data:`gateway.access.METHOD_PERMISSIONS`; a method not listed there needs ``administer``);
``Feedback`` is authenticated like ``ModelInfer`` (predict tokens when there are any, else
open).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import grpc

from gateway._proto import governor_pb2 as pb
from gateway._proto import governor_pb2_grpc as pb_grpc
from gateway.governor.feedback import LabelOutcome, unknown_hint
from gateway.operations import (
    MAX_LABELS,
    GovernorOps,
    GovernorStatus,
    Label,
    Labels,
    PolicyView,
)
from gateway.transport.auth import principal

__all__ = ["GOVERNOR_SERVICE", "GovernorServicer", "MAX_FEEDBACK_ITEMS"]

Context = grpc.aio.ServicerContext[Any, Any]
_SERVICE = pb.DESCRIPTOR.services_by_name["GovernorService"]
GOVERNOR_SERVICE = _SERVICE.full_name
METHODS = tuple(m.name for m in _SERVICE.methods)
MAX_FEEDBACK_ITEMS = MAX_LABELS  # per call; the CLI sends files in batches of this size


def _gate(d: Mapping[str, Any]) -> pb.Gate:
    value = d.get("value")
    return pb.Gate(
        name=d["name"],
        version=d["version"],
        status=d["status"],
        has_value=value is not None,
        value=float(value) if value is not None else 0.0,
        threshold=float(d["threshold"]),
        op=d["op"],
        hard=bool(d["hard"]),
        detail=d.get("detail", ""),
    )


def status_to_proto(st: GovernorStatus) -> pb.StatusResponse:
    out = pb.StatusResponse(model=st.model, leader=st.leader, mode=st.mode)
    out.policy_version = st.policy_version
    out.steps.extend(st.steps)
    out.paused = st.paused
    out.candidate = st.candidate
    out.step = st.step
    out.consecutive_failures = st.consecutive_failures
    out.rolled_back.extend(st.rolled_back)
    out.approved.extend(st.approved)
    out.p_value = st.p_value
    out.last_decision = st.last_decision
    out.reasons.extend(st.reasons)
    out.gates.extend(_gate(g) for g in st.gates)
    out.last_evaluated_at = st.last_evaluated_at
    if st.figures is not None:
        out.figures_json = json.dumps(st.figures, sort_keys=True)
    out.next_evaluation_in_s = st.next_evaluation_in_s
    return out


def policy_to_proto(view: PolicyView) -> pb.PolicyResponse:
    return pb.PolicyResponse(
        model=view.model,
        version=view.version,
        toml=view.toml,
        created_at=view.created_at,
        actor=view.actor,
        effective_json=json.dumps(view.effective, sort_keys=True),
    )


class GovernorServicer(pb_grpc.GovernorServiceServicer):
    def __init__(self, governor: GovernorOps, labels: Labels) -> None:
        self._ops = governor
        self._labels = labels

    async def Feedback(self, request: pb.FeedbackRequest, context: Context) -> pb.FeedbackResponse:
        items = [
            Label(
                item.id,
                row=item.row,
                label=item.label or None,
                value=item.value if item.HasField("value") else None,
            )
            for item in request.items
        ]
        counts = await self._labels.join_labels(request.model, items)
        return pb.FeedbackResponse(
            joined=counts[LabelOutcome.JOINED],
            unknown=counts[LabelOutcome.UNKNOWN],
            expired=counts[LabelOutcome.EXPIRED],
            duplicate=counts[LabelOutcome.DUPLICATE],
            invalid=counts[LabelOutcome.INVALID],
            hint=unknown_hint(counts[LabelOutcome.UNKNOWN], fleet=self._labels.in_fleet),
        )

    async def GetStatus(self, request: pb.GetStatusRequest, context: Context) -> pb.StatusResponse:
        return status_to_proto(await self._ops.status(request.model))

    async def Pause(self, request: pb.PauseRequest, context: Context) -> pb.StatusResponse:
        st = await self._ops.pause(request.model, actor=principal.get(), reason=request.reason)
        return status_to_proto(st)

    async def Resume(self, request: pb.ResumeRequest, context: Context) -> pb.StatusResponse:
        st = await self._ops.resume(
            request.model,
            actor=principal.get(),
            reason=request.reason,
            clear_rolled_back=list(request.clear_rolled_back),
        )
        return status_to_proto(st)

    async def Approve(self, request: pb.ApproveRequest, context: Context) -> pb.StatusResponse:
        st = await self._ops.approve(
            request.model, request.version, actor=principal.get(), reason=request.reason
        )
        return status_to_proto(st)

    async def SetPolicy(self, request: pb.SetPolicyRequest, context: Context) -> pb.PolicyResponse:
        view = await self._ops.set_policy(
            request.model, request.toml, actor=principal.get(), reason=request.reason
        )
        return policy_to_proto(view)

    async def GetPolicy(self, request: pb.GetPolicyRequest, context: Context) -> pb.PolicyResponse:
        return policy_to_proto(await self._ops.get_policy(request.model, request.version or None))
