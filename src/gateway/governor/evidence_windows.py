"""The governor's evidence windows: what the loop judges a step and a candidate on.

Evidence is cumulative; a :class:`Window` keeps two baselines (the cumulative evidence
when the candidate appeared and when its current step began) and :func:`windowed`
subtracts them: traffic since the step began, labels since the candidate appeared. A
:class:`WindowStore` (the fleet's) keeps baselines in the registry, so a new leader
continues a step from its stored baseline instead of restarting it. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from gateway.governor.evidence import Evidence

__all__ = ["CANDIDATE_WINDOW", "Window", "WindowStore", "windowed"]

CANDIDATE_WINDOW = -2  # the step key of the window labels are counted in (since the candidate)


class WindowStore(Protocol):
    """Where window baselines outlive the leader (blocking calls; run off the loop)."""

    def ready(self) -> bool: ...

    def save(
        self, model: str, candidate: str, step: int, base: Mapping[str, Evidence], replace: bool
    ) -> dict[str, Evidence]: ...

    def clear(self, model: str, candidate: str) -> None: ...


@dataclass
class Window:
    """Baselines (cumulative evidence at a moment) that evidence is windowed against."""

    candidate: str | None
    step: int
    since_candidate: dict[str, Evidence] = field(default_factory=dict)
    since_step: dict[str, Evidence] = field(default_factory=dict)


def windowed(now: Evidence, since_step: Evidence | None, since_cand: Evidence | None) -> Evidence:
    """``now`` less its baselines: traffic since the step; quality and contract violations
    since the candidate."""
    traffic, quality, contracts = now.traffic, now.quality, now.contracts
    if traffic is not None and since_step is not None and since_step.traffic is not None:
        traffic = traffic.minus(since_step.traffic)
    if since_cand is not None:
        if quality is not None and since_cand.quality is not None:
            quality = quality.minus(since_cand.quality)
        if contracts is not None and since_cand.contracts is not None:
            contracts = contracts.minus(since_cand.contracts)
    return replace(now, traffic=traffic, quality=quality, contracts=contracts)
