"""Thin servicer for ``onnxgate.governance.v1.GovernanceService``.

Converts requests to calls of the operations core (:class:`gateway.operations.Governance`)
and back; the rules live in the registry, the role decision in :mod:`gateway.access` (applied
when the server registers these methods). The caller's principal, set by the role guard, is
the actor of every change — in particular the approver
of an approval, which is how four-eyes knows who is asking.
"""

from __future__ import annotations

import json
from typing import Any

import grpc

from gateway._proto import governance_pb2 as pb
from gateway._proto import governance_pb2_grpc as pb_grpc
from gateway.errors import InvalidArgument
from gateway.operations import Contracts, ContractView, Governance
from gateway.transport.auth import principal
from gateway.transport.roles import principal_role
from registry import ApprovalRecord, GovernancePolicy, ValidationReport, parse_instant

__all__ = ["GovernanceServicer"]

Context = grpc.aio.ServicerContext[Any, Any]


def _required(**fields: str) -> None:
    for name, value in fields.items():
        if not value:
            raise InvalidArgument(f"{name} is required")


def _instant(name: str, text: str) -> Any:
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise InvalidArgument(f"{name}: {exc}") from None


def _approval(a: ApprovalRecord) -> pb.Approval:
    return pb.Approval(
        model=a.model,
        version=a.version,
        approver=a.approver,
        comment=a.comment,
        created_at=a.created_at.isoformat(),
    )


def _report(model: str, version: str, r: ValidationReport) -> pb.ValidationReport:
    return pb.ValidationReport(
        model=model,
        version=version,
        passed=r.passed,
        at=r.at.isoformat(),
        checks=[pb.Check(name=c.name, passed=c.passed, detail=c.detail) for c in r.checks],
    )


def _contract(v: ContractView) -> pb.DataContract:
    return pb.DataContract(
        model=v.model,
        version=v.version,
        revision=v.revision,
        contract_json=json.dumps(v.contract, sort_keys=True),
        source=v.source,
        created_by=v.created_by,
        created_at=v.created_at.isoformat() if v.created_at is not None else "",
        reason=v.reason,
    )


class GovernanceServicer(pb_grpc.GovernanceServiceServicer):
    def __init__(self, governance: Governance, contracts: Contracts) -> None:
        self._gov = governance
        self._contracts = contracts

    async def GetContract(
        self, request: pb.GetContractRequest, context: Context
    ) -> pb.DataContract:
        return _contract(await self._contracts.show(request.model, request.version))

    async def SetContract(
        self, request: pb.SetContractRequest, context: Context
    ) -> pb.DataContract:
        try:
            doc = json.loads(request.contract_json or "null")
        except ValueError as exc:
            raise InvalidArgument(f"contract_json: {exc}") from None
        view = await self._contracts.set(
            request.model, request.version, doc, actor=principal.get(), reason=request.reason
        )
        return _contract(view)

    async def WhoAmI(self, request: pb.WhoAmIRequest, context: Context) -> pb.WhoAmIResponse:
        return pb.WhoAmIResponse(principal=principal.get(), role=principal_role.get().value)

    async def Approve(self, request: pb.ApproveRequest, context: Context) -> pb.Approval:
        record = await self._gov.approve(
            request.model, request.version, approver=principal.get(), comment=request.comment
        )
        return _approval(record)

    async def ListApprovals(
        self, request: pb.ListApprovalsRequest, context: Context
    ) -> pb.ListApprovalsResponse:
        records = await self._gov.approvals(request.model, request.version or None)
        return pb.ListApprovalsResponse(approvals=[_approval(a) for a in records])

    async def GetPolicy(self, request: pb.GetPolicyRequest, context: Context) -> pb.Policy:
        policy = await self._gov.policy()
        return pb.Policy(policy_json=json.dumps(policy.to_dict(), sort_keys=True))

    async def SetPolicy(self, request: pb.SetPolicyRequest, context: Context) -> pb.Policy:
        try:
            policy = GovernancePolicy.to_set(json.loads(request.policy_json or "{}"))
        except (ValueError, TypeError, AttributeError) as exc:
            raise InvalidArgument(f"policy_json: {exc}") from None
        await self._gov.set_policy(policy, actor=principal.get(), reason=request.reason)
        return pb.Policy(policy_json=json.dumps(policy.to_dict(), sort_keys=True))

    async def ValidateVersion(
        self, request: pb.ValidateVersionRequest, context: Context
    ) -> pb.ValidationReport:
        report = await self._gov.validate(request.model, request.version, actor=principal.get())
        return _report(request.model, request.version, report)

    async def RetireVersion(
        self, request: pb.RetireVersionRequest, context: Context
    ) -> pb.VersionStatus:
        record = await self._gov.retire(
            request.model, request.version, actor=principal.get(), reason=request.reason
        )
        return pb.VersionStatus(model=record.model, version=record.version, status=record.status)

    async def ListAudit(
        self, request: pb.ListAuditRequest, context: Context
    ) -> pb.ListAuditResponse:
        since = _instant("since", request.since) if request.since else None
        events = await self._gov.audit(request.subject, since=since, limit=request.limit)
        return pb.ListAuditResponse(
            events=[
                pb.AuditEvent(
                    seq=e.seq,
                    at=e.at.isoformat(),
                    actor=e.actor,
                    action=e.action,
                    subject=e.subject,
                    before_json=json.dumps(e.before, sort_keys=True),
                    after_json=json.dumps(e.after, sort_keys=True),
                    reason=e.reason,
                    hash=e.hash,
                )
                for e in events
            ]
        )

    async def VerifyAudit(
        self, request: pb.VerifyAuditRequest, context: Context
    ) -> pb.VerifyAuditResponse:
        check = await self._gov.verify_audit()
        return pb.VerifyAuditResponse(intact=check.intact, problems=check.problems)

    async def DeploymentAt(
        self, request: pb.DeploymentAtRequest, context: Context
    ) -> pb.DeploymentAtResponse:
        _required(model=request.model, at=request.at)
        at = _instant("at", request.at)
        found = await self._gov.deployment_at(request.model, at)
        dep = found.record.deployment
        return pb.DeploymentAtResponse(
            model=dep.model,
            revision=dep.revision,
            arms=[
                pb.ArmAt(version=a.version, role=a.role.value, weight=a.weight) for a in dep.arms
            ],
            shadows=[
                pb.ArmAt(version=s.version, role="shadow", weight=s.fraction) for s in dep.shadows
            ],
            actor=found.record.actor,
            reason=found.record.reason,
            since=found.record.created_at.isoformat(),
            until="" if found.until is None else found.until.isoformat(),
        )
