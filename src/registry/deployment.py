"""Deployments as values: which versions of a model serve, in which role, at what weight.

Pure data and validation, no database: the registry stores these, the gateway's router
reads them. Weights are relative (90/10 means 90%/10%); :meth:`Deployment.normalised`
turns them into fractions. Shadows receive a copy of a fraction of traffic and never
answer callers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from registry.errors import InvalidDeployment

__all__ = [
    "Arm",
    "Deployment",
    "Role",
    "Shadow",
    "parse_weights",
    "validate_deployment",
]


class Role(StrEnum):
    """What an arm is for; exactly one arm per deployment is the champion."""

    CHAMPION = "champion"
    CHALLENGER = "challenger"
    CANARY = "canary"


@dataclass(frozen=True)
class Arm:
    """A version that answers callers, with its relative share of traffic."""

    version: str
    role: Role
    weight: float

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "role": self.role.value, "weight": self.weight}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Arm:
        return cls(version=str(d["version"]), role=Role(d["role"]), weight=float(d["weight"]))


@dataclass(frozen=True)
class Shadow:
    """A version that scores a copy of ``fraction`` (0 < fraction <= 1) of the traffic."""

    version: str
    fraction: float

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "fraction": self.fraction}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Shadow:
        return cls(version=str(d["version"]), fraction=float(d["fraction"]))


@dataclass(frozen=True)
class Deployment:
    """One revision of a model's deployment; a higher revision replaces a lower one."""

    model: str
    revision: int
    arms: tuple[Arm, ...]
    shadows: tuple[Shadow, ...] = ()

    @property
    def champion(self) -> Arm:
        for arm in self.arms:
            if arm.role is Role.CHAMPION:
                return arm
        raise InvalidDeployment(f"deployment of model {self.model!r} has no champion")

    def versions(self) -> frozenset[str]:
        """Every version this deployment needs loaded: arms and shadows."""
        return frozenset(a.version for a in self.arms) | {s.version for s in self.shadows}

    def arm(self, version: str) -> Arm | None:
        """The arm serving ``version``, if any."""
        return next((a for a in self.arms if a.version == version), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as written into audit events."""
        return {
            "model": self.model,
            "revision": self.revision,
            "arms": [a.to_dict() for a in self.arms],
            "shadows": [s.to_dict() for s in self.shadows],
        }

    def reweighted(
        self, weights: Mapping[str, float], roles: Mapping[str, Role] | None = None
    ) -> Deployment:
        """The next revision serving exactly the versions in ``weights``.

        Roles are kept from the current arms unless ``roles`` names them; a version new to
        the arms becomes a challenger; naming another version champion demotes the current
        champion to challenger; a shadow that gets a weight stops being a shadow.
        """
        given = {v: Role(r) for v, r in (roles or {}).items()}
        unweighted = sorted(set(given) - set(weights))
        if unweighted:
            raise InvalidDeployment(f"role given for version {unweighted[0]!r} without a weight")
        named_champion = Role.CHAMPION in given.values()
        arms = []
        for version, weight in weights.items():
            role = given.get(version)
            if role is None:
                arm = self.arm(version)
                role = Role.CHALLENGER if arm is None else arm.role
                if role is Role.CHAMPION and named_champion:
                    role = Role.CHALLENGER
            arms.append(Arm(version, role, weight))
        shadows = tuple(s for s in self.shadows if s.version not in weights)
        return Deployment(self.model, self.revision + 1, tuple(arms), shadows)

    def promoted(self, version: str, *, keep_old: bool = False) -> Deployment:
        """The next revision with ``version`` (an arm or shadow) as champion.

        It takes the old champion's weight plus its own; the old champion leaves, or stays
        as a challenger with weight 0 when ``keep_old``.
        """
        old = self.champion
        if old.version == version:
            raise InvalidDeployment(f"version {version!r} is already the champion")
        arm = self.arm(version)
        if arm is None and version not in {s.version for s in self.shadows}:
            raise InvalidDeployment(
                f"version {version!r} is neither an arm nor a shadow of model {self.model!r}"
            )
        weight = old.weight + (arm.weight if arm is not None else 0.0)
        arms = [Arm(version, Role.CHAMPION, weight)]
        arms += [a for a in self.arms if a.version not in (version, old.version)]
        if keep_old:
            arms.append(Arm(old.version, Role.CHALLENGER, 0.0))
        shadows = tuple(s for s in self.shadows if s.version != version)
        return Deployment(self.model, self.revision + 1, tuple(arms), shadows)

    def normalised(self) -> Deployment:
        """The same deployment with arm weights scaled to sum to 1.0."""
        total = math.fsum(a.weight for a in self.arms)
        if not total > 0:
            raise InvalidDeployment(f"deployment of model {self.model!r} has total weight 0")
        arms = tuple(replace(a, weight=a.weight / total) for a in self.arms)
        return replace(self, arms=arms)


MAX_WEIGHT = 1e12


def _check_weight(version: str, weight: float) -> None:
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        raise InvalidDeployment(f"weight of version {version!r} must be a number, got {weight!r}")
    if not math.isfinite(weight) or weight < 0:
        raise InvalidDeployment(
            f"weight of version {version!r} must be finite and >= 0, got {weight!r}"
        )
    if weight > MAX_WEIGHT:
        # Weights are relative; a bound keeps their sum finite wherever it is taken.
        raise InvalidDeployment(
            f"weight of version {version!r} must be at most {MAX_WEIGHT:g} (weights are "
            f"relative), got {weight!r}"
        )


def validate_deployment(arms: Sequence[Arm], shadows: Iterable[Shadow] = ()) -> None:
    """Raise :class:`InvalidDeployment`, naming the offending version, unless the arms and
    shadows form a valid deployment."""
    if not arms:
        raise InvalidDeployment("a deployment needs at least one arm (the champion)")
    seen: set[str] = set()
    for arm in arms:
        if arm.version in seen:
            raise InvalidDeployment(f"version {arm.version!r} appears in more than one arm")
        seen.add(arm.version)
        if not isinstance(arm.role, Role):
            raise InvalidDeployment(f"version {arm.version!r} has unknown role {arm.role!r}")
        _check_weight(arm.version, arm.weight)
    champions = [a.version for a in arms if a.role is Role.CHAMPION]
    if not champions:
        raise InvalidDeployment(
            "no champion: exactly one arm must have role 'champion' "
            f"(arms: {', '.join(a.version for a in arms)})"
        )
    if len(champions) > 1:
        raise InvalidDeployment(
            f"exactly one champion allowed, got {len(champions)}: {', '.join(champions)}"
        )
    if not math.fsum(a.weight for a in arms) > 0:
        raise InvalidDeployment(
            f"total weight is 0 (weights of {', '.join(a.version for a in arms)}); "
            "at least one arm needs a positive weight"
        )
    shadowed: set[str] = set()
    for shadow in shadows:
        if shadow.version in seen:
            raise InvalidDeployment(
                f"version {shadow.version!r} cannot be both an arm and a shadow"
            )
        if shadow.version in shadowed:
            raise InvalidDeployment(f"version {shadow.version!r} appears in more than one shadow")
        shadowed.add(shadow.version)
        fraction = shadow.fraction
        if (
            isinstance(fraction, bool)
            or not isinstance(fraction, int | float)
            or not math.isfinite(fraction)
            or not 0 < fraction <= 1
        ):
            raise InvalidDeployment(
                f"shadow fraction of version {shadow.version!r} must be in (0, 1], got {fraction!r}"
            )


def parse_weights(spec: list[str]) -> dict[str, float]:
    """Parse CLI weight tokens ``["v1=90", "v2=10"]`` into ``{"v1": 90.0, "v2": 10.0}``.

    Raises :class:`InvalidDeployment` naming the token for bad syntax, a non-numeric,
    non-finite or negative weight, or a version given twice.
    """
    weights: dict[str, float] = {}
    for token in spec:
        version, sep, raw = token.partition("=")
        version, raw = version.strip(), raw.strip()
        if not sep or not version or not raw:
            raise InvalidDeployment(f"weight {token!r} is not of the form VERSION=WEIGHT")
        try:
            weight = float(raw)
        except ValueError:
            raise InvalidDeployment(f"weight {token!r}: {raw!r} is not a number") from None
        if not math.isfinite(weight) or weight < 0:
            raise InvalidDeployment(f"weight {token!r}: weight must be finite and >= 0")
        if version in weights:
            raise InvalidDeployment(f"weight {token!r}: version {version!r} given twice")
        weights[version] = weight
    return weights
