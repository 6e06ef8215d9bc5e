"""The operations core: every operator and governor use case, once, over the registry facade.

gRPC servicers, the console and the governor loop call these; they decode their own
requests and encode the domain values returned here, and never reach the registry
themselves. Nothing here imports a transport (an import contract checks it).

==================  ===============================================================
:class:`Deployments`   read deployments; ``change_deployment`` (preload, write, sync),
                       shadows
:class:`Governance`    sign-off approvals, governance policy, validate, retire, audit
:class:`GovernorOps`   governor status, pause/resume, rollout approvals and policies
:class:`Labels`        ``join_labels`` and the settled request-id lookup Explain uses
:class:`Observations`  drift reports and shadow comparisons
:class:`Contracts`     show and edit versions' data contracts (revisions, audited)
==================  ===============================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.operations.contracts import Contracts, ContractView
from gateway.operations.deployments import Deployments, DeploymentView
from gateway.operations.governance import AuditCheck, Governance
from gateway.operations.governor import GovernorOps, GovernorStatus, PolicyView
from gateway.operations.labels import MAX_LABELS, Label, Labels
from gateway.operations.observations import DriftAnswer, Observations, ShadowAnswer

__all__ = [
    "MAX_LABELS",
    "AuditCheck",
    "ContractView",
    "Contracts",
    "DeploymentView",
    "Deployments",
    "DriftAnswer",
    "Governance",
    "GovernorOps",
    "GovernorStatus",
    "Label",
    "Labels",
    "Observations",
    "Operations",
    "PolicyView",
    "ShadowAnswer",
]


@dataclass(frozen=True)
class Operations:
    """Every use case family, built once by the composition root."""

    deployments: Deployments
    governance: Governance
    governor: GovernorOps
    labels: Labels
    observations: Observations
    contracts: Contracts
