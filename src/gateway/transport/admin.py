"""Thin servicer for ``onnxgate.admin.v1.AdminService``: deployments, promotion, rollback.

Every change follows one path: work out which versions the change needs, have the catalog
load and warm them (a version that fails to load refuses the change, audited), commit the
change in one registry transaction (which audits it and bumps the revision), then re-sync
the catalog so this gateway routes the new revision at once; other gateways converge by
polling. Authentication is applied around these methods by the server.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterable
from typing import Any

import grpc

from gateway._proto import admin_pb2 as pb
from gateway._proto import admin_pb2_grpc as pb_grpc
from gateway.concurrency import run_blocking
from gateway.errors import InvalidArgument
from gateway.serving.catalog import Catalog
from gateway.transport.auth import principal
from registry import Registry
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
    def __init__(
        self, registry: Registry, catalog: Catalog, *, io_executor: concurrent.futures.Executor
    ) -> None:
        self._registry = registry
        self._catalog = catalog
        self._io = io_executor

    def _response(self, dep: Deployment) -> pb.DeploymentResponse:
        entry = self._catalog.entry(dep.model)
        loaded = entry.served.keys() if entry is not None else ()
        return pb.DeploymentResponse(deployment=deployment_to_proto(dep, loaded))

    async def _current(self, model: str) -> Deployment:
        return await run_blocking(self._io, self._registry.get_deployment, model)

    async def _applied(self, dep: Deployment) -> pb.DeploymentResponse:
        await self._catalog.sync()
        return self._response(dep)

    @staticmethod
    def _require_model(model: str) -> None:
        if not model:
            raise InvalidArgument("model is required")

    async def ListModels(
        self, request: pb.ListModelsRequest, context: Context
    ) -> pb.ListModelsResponse:
        models = await run_blocking(self._io, self._registry.list_models)
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
        self._require_model(request.model)
        return self._response(await self._current(request.model))

    async def SetDeployment(
        self, request: pb.SetDeploymentRequest, context: Context
    ) -> pb.DeploymentResponse:
        self._require_model(request.model)
        arms = [Arm(a.version, _role(a.role, a.version), a.weight) for a in request.arms]
        shadows = [Shadow(s.version, s.fraction) for s in request.shadows]
        await self._catalog.preload(
            request.model, [a.version for a in arms] + [s.version for s in shadows]
        )
        dep = await run_blocking(
            self._io,
            self._registry.set_deployment,
            request.model,
            arms,
            shadows,
            actor=principal.get(),
            reason=request.reason,
            expected_revision=request.expected_revision or None,
        )
        return await self._applied(dep)

    async def SetWeights(
        self, request: pb.SetWeightsRequest, context: Context
    ) -> pb.DeploymentResponse:
        self._require_model(request.model)
        if not request.weights:
            raise InvalidArgument("weights: give at least one version=weight")
        roles = {v: _role(r, v) for v, r in request.roles.items()}
        unknown_roles = sorted(set(roles) - set(request.weights))
        if unknown_roles:
            raise InvalidArgument(f"roles: version(s) {unknown_roles} have no weight")
        await self._catalog.preload(request.model, request.weights.keys())
        dep = await run_blocking(
            self._io,
            self._registry.set_weights,
            request.model,
            dict(request.weights),
            roles or None,
            actor=principal.get(),
            reason=request.reason,
            expected_revision=request.expected_revision or None,
        )
        return await self._applied(dep)

    async def Promote(self, request: pb.PromoteRequest, context: Context) -> pb.DeploymentResponse:
        self._require_model(request.model)
        if not request.version:
            raise InvalidArgument("version is required")
        await self._catalog.preload(request.model, [request.version])
        dep = await run_blocking(
            self._io,
            self._registry.promote,
            request.model,
            request.version,
            actor=principal.get(),
            reason=request.reason,
            keep_old=request.keep_old,
        )
        return await self._applied(dep)

    async def Rollback(
        self, request: pb.RollbackRequest, context: Context
    ) -> pb.DeploymentResponse:
        self._require_model(request.model)
        history = await run_blocking(self._io, self._registry.history, request.model)
        if len(history) >= 2:
            previous = history[-2].deployment
            await self._catalog.preload(request.model, previous.versions())
        dep = await run_blocking(
            self._io,
            self._registry.rollback,
            request.model,
            actor=principal.get(),
            reason=request.reason,
        )
        return await self._applied(dep)

    async def _replace_shadows(
        self, current: Deployment, shadows: list[Shadow], reason: str
    ) -> pb.DeploymentResponse:
        """Same arms, new shadow list; fails if someone changed the deployment meanwhile."""
        dep = await run_blocking(
            self._io,
            self._registry.set_deployment,
            current.model,
            list(current.arms),
            shadows,
            actor=principal.get(),
            reason=reason,
            expected_revision=current.revision,
        )
        return await self._applied(dep)

    async def AddShadow(
        self, request: pb.AddShadowRequest, context: Context
    ) -> pb.DeploymentResponse:
        self._require_model(request.model)
        current = await self._current(request.model)
        shadows = [s for s in current.shadows if s.version != request.version]
        shadows.append(Shadow(request.version, request.fraction))
        await self._catalog.preload(request.model, [request.version])
        reason = request.reason or f"shadow {request.version} at {request.fraction:g}"
        return await self._replace_shadows(current, shadows, reason)

    async def RemoveShadow(
        self, request: pb.RemoveShadowRequest, context: Context
    ) -> pb.DeploymentResponse:
        self._require_model(request.model)
        current = await self._current(request.model)
        if all(s.version != request.version for s in current.shadows):
            raise InvalidArgument(
                f"version '{request.version}' is not a shadow of '{request.model}'"
            )
        shadows = [s for s in current.shadows if s.version != request.version]
        reason = request.reason or f"remove shadow {request.version}"
        return await self._replace_shadows(current, shadows, reason)

    async def ListHistory(
        self, request: pb.ListHistoryRequest, context: Context
    ) -> pb.ListHistoryResponse:
        self._require_model(request.model)
        history = await run_blocking(self._io, self._registry.history, request.model)
        if request.limit > 0:
            history = history[-request.limit :]
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
