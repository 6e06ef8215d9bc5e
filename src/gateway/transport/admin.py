"""Thin servicer for ``onnxgate.admin.v1.AdminService``: deployments, promotion, rollback.

Decodes each request into a call of the operations core (:class:`gateway.operations.Deployments`:
every change is ``change_deployment`` -- preload, one audited registry write, catalog re-sync)
and encodes the answer. Authentication is applied around these methods when the server
registers them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc

from gateway._proto import admin_pb2 as pb
from gateway._proto import admin_pb2_grpc as pb_grpc
from gateway.errors import InvalidArgument
from gateway.operations import Deployments, DeploymentView
from gateway.registry_facade import Promote, RollBack, SetArms, SetWeights
from gateway.transport.auth import principal
from registry.deployment import Arm, Deployment, Role, Shadow

__all__ = ["AdminServicer", "deployment_to_proto"]

Context = grpc.aio.ServicerContext[Any, Any]


def _role(name: str, version: str) -> Role:
    try:
        return Role(name)
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise InvalidArgument(f"version '{version}': role '{name}' is not one of {roles}") from None


def deployment_to_proto(dep: Deployment, loaded: Iterable[str] = ()) -> pb.Deployment:
    return pb.Deployment(
        model=dep.model,
        revision=dep.revision,
        arms=[pb.Arm(version=a.version, role=str(a.role), weight=a.weight) for a in dep.arms],
        shadows=[pb.Shadow(version=s.version, fraction=s.fraction) for s in dep.shadows],
        loaded_versions=sorted(loaded),
    )


class AdminServicer(pb_grpc.AdminServiceServicer):
    def __init__(self, deployments: Deployments) -> None:
        self._ops = deployments

    @staticmethod
    def _response(view: DeploymentView) -> pb.DeploymentResponse:
        return pb.DeploymentResponse(deployment=deployment_to_proto(view.deployment, view.loaded))

    async def ListModels(
        self, request: pb.ListModelsRequest, context: Context
    ) -> pb.ListModelsResponse:
        models = await self._ops.list_models()
        return pb.ListModelsResponse(
            models=[
                pb.ModelSummary(
                    name=m.name, versions=m.versions, champion=m.champion or "", revision=m.revision
                )
                for m in models
            ]
        )

    async def GetDeployment(
        self, request: pb.GetDeploymentRequest, context: Context
    ) -> pb.DeploymentResponse:
        return self._response(await self._ops.deployment(request.model))

    async def SetDeployment(
        self, request: pb.SetDeploymentRequest, context: Context
    ) -> pb.DeploymentResponse:
        if not request.model:
            raise InvalidArgument("model is required")
        arms = [Arm(a.version, _role(a.role, a.version), a.weight) for a in request.arms]
        shadows = [Shadow(s.version, s.fraction) for s in request.shadows]
        view = await self._ops.change_deployment(
            request.model,
            SetArms(arms, shadows),
            actor=principal.get(),
            reason=request.reason,
            expected_revision=request.expected_revision or None,
        )
        return self._response(view)

    async def SetWeights(
        self, request: pb.SetWeightsRequest, context: Context
    ) -> pb.DeploymentResponse:
        if not request.model:
            raise InvalidArgument("model is required")
        if not request.weights:
            raise InvalidArgument("weights: give at least one version=weight")
        roles = {v: _role(r, v) for v, r in request.roles.items()}
        unknown_roles = sorted(set(roles) - set(request.weights))
        if unknown_roles:
            raise InvalidArgument(f"roles: version(s) {unknown_roles} have no weight")
        view = await self._ops.change_deployment(
            request.model,
            SetWeights(dict(request.weights), roles or None),
            actor=principal.get(),
            reason=request.reason,
            expected_revision=request.expected_revision or None,
        )
        return self._response(view)

    async def Promote(self, request: pb.PromoteRequest, context: Context) -> pb.DeploymentResponse:
        if not request.model:
            raise InvalidArgument("model is required")
        if not request.version:
            raise InvalidArgument("version is required")
        view = await self._ops.change_deployment(
            request.model,
            Promote(request.version, keep_old=request.keep_old),
            actor=principal.get(),
            reason=request.reason,
        )
        return self._response(view)

    async def Rollback(
        self, request: pb.RollbackRequest, context: Context
    ) -> pb.DeploymentResponse:
        view = await self._ops.change_deployment(
            request.model, RollBack(), actor=principal.get(), reason=request.reason
        )
        return self._response(view)

    async def AddShadow(
        self, request: pb.AddShadowRequest, context: Context
    ) -> pb.DeploymentResponse:
        view = await self._ops.add_shadow(
            request.model,
            request.version,
            request.fraction,
            actor=principal.get(),
            reason=request.reason,
        )
        return self._response(view)

    async def RemoveShadow(
        self, request: pb.RemoveShadowRequest, context: Context
    ) -> pb.DeploymentResponse:
        view = await self._ops.remove_shadow(
            request.model, request.version, actor=principal.get(), reason=request.reason
        )
        return self._response(view)

    async def ListHistory(
        self, request: pb.ListHistoryRequest, context: Context
    ) -> pb.ListHistoryResponse:
        history = await self._ops.history(request.model, request.limit)
        return pb.ListHistoryResponse(
            entries=[
                pb.HistoryEntry(
                    deployment=deployment_to_proto(h.deployment),
                    actor=h.actor,
                    reason=h.reason,
                    created_at=h.created_at.isoformat(),
                )
                for h in history
            ]
        )
