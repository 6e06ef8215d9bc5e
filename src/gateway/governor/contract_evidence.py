"""Data-contract violation counts as an evidence part (see :mod:`.evidence`).

Pure: the counts come from :class:`gateway.monitoring.contract_guard.ContractGuard` through
:class:`gateway.governor.sources.ContractEvidence`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from gateway.governor.evidence_part import EvidencePart

__all__ = ["ContractCounts"]


@dataclass(frozen=True)
class ContractCounts(EvidencePart):
    """A version's inputs checked against its data contract (cumulative): rows checked,
    rows with at least one violation, and violations per feature (by name). Counts, so
    processes merge by addition and a window is a difference."""

    rows: int = 0
    violating: int = 0
    features: Mapping[str, int] = field(default_factory=dict)

    key: ClassVar[str] = "contracts"

    def plus(self, other: ContractCounts) -> ContractCounts:
        features = dict(self.features)
        for name, n in other.features.items():
            features[name] = features.get(name, 0) + n
        return ContractCounts(self.rows + other.rows, self.violating + other.violating, features)

    def minus(self, base: ContractCounts) -> ContractCounts:
        features = {n: c - base.features.get(n, 0) for n, c in self.features.items()}
        return ContractCounts(
            self.rows - base.rows,
            self.violating - base.violating,
            {n: c for n, c in features.items() if c},
        )

    def encode(self) -> Any:
        return [self.rows, self.violating, dict(self.features)]

    @classmethod
    def decode(cls, raw: Any) -> ContractCounts:
        rows, violating, features = raw
        return cls(int(rows), int(violating), {str(k): int(v) for k, v in features.items()})

    @property
    def violation_rate(self) -> float | None:
        """Rows with a violation over rows checked (None before any row was checked)."""
        return self.violating / self.rows if self.rows else None
