"""Data contracts in the governance record: show a version's contract, store an edit.

A version's contract in force is the newest revision an operator stored (kept in the
registry with who, when and why, each audited), else the one derived from its reference
profile with its model's ``[contract] margin`` (revision 0). An edit must be a well-formed
contract (:meth:`gateway.monitoring.contracts.Contract.parse`) over exactly the version's
input features, and says why. Gateways pick the new revision up off the request path
(:class:`gateway.monitoring.contract_guard.ContractGuard`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.errors import InvalidArgument, NotFound
from gateway.monitoring.contracts import Contract
from gateway.monitoring.layout import FeatureLayout
from gateway.monitoring.reference import VersionProfiles
from gateway.operations.deployments import require
from gateway.registry_facade import AsyncRegistry

__all__ = ["ContractView", "Contracts"]


@dataclass(frozen=True)
class ContractView:
    model: str
    version: str
    revision: int  # 0: derived from the reference profile (no edit yet)
    contract: dict[str, Any]
    source: str  # "edited" | "reference"
    created_by: str = ""
    created_at: datetime | None = None
    reason: str = ""


class Contracts:
    """Show and edit versions' data contracts (see module docs)."""

    def __init__(self, registry: AsyncRegistry, margin: Callable[[str], float]) -> None:
        self._registry = registry
        self._margin = margin  # model -> its policy's [contract] margin

    async def show(self, model: str, version: str) -> ContractView:
        require(model=model, version=version)
        rec = await self._registry.contracts.get(model, version)
        if rec is not None:
            return ContractView(model, version, rec.revision, rec.contract, "edited",
                                rec.created_by, rec.created_at, rec.reason)  # fmt: skip
        stored = await self._registry.get_profile(model, version)
        profile = None if stored is None else VersionProfiles.from_doc(stored[0]).inputs
        if profile is None:
            raise NotFound(
                f"model '{model}' version '{version}' has no data contract "
                "(no reference profile; set one with `onnxgate contracts set`)"
            )
        derived = Contract.from_profile(profile, self._margin(model))
        return ContractView(model, version, 0, derived.to_dict(), "reference")

    async def set(
        self, model: str, version: str, doc: Mapping[str, Any], *, actor: str, reason: str
    ) -> ContractView:
        require(model=model, version=version, reason=reason.strip())
        record = await self._registry.get_version(model, version)
        try:
            contract = Contract.parse(doc)
        except ValueError as exc:
            raise InvalidArgument(f"contract: {exc}") from None
        names = FeatureLayout.from_specs(record.signature.inputs).names
        if contract.feature_names != names:
            raise InvalidArgument(
                f"contract: features must be the version's inputs in order: {list(names)}"
            )
        rec = await self._registry.contracts.set(
            model, version, contract.to_dict(), actor=actor, reason=reason
        )
        return ContractView(model, version, rec.revision, rec.contract, "edited",
                            rec.created_by, rec.created_at, rec.reason)  # fmt: skip
