"""What one gate said about a candidate: its status, value and threshold. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["GateResult", "GateStatus"]


class GateStatus(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    PENDING = "pending"


@dataclass(frozen=True)
class GateResult:
    name: str
    version: str
    status: GateStatus
    value: float | None
    threshold: float
    op: str  # "<=" or ">=": the relation that passes
    hard: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**vars(self), "status": self.status.value}

    def describe(self) -> str:
        shown = "n/a" if self.value is None else f"{self.value:.4g}"
        bad = {"<=": ">", ">=": "<"}[self.op] if self.status is GateStatus.FAIL else self.op
        kind = "hard" if self.hard else "soft"
        return f"{self.name} {shown} {bad} {self.threshold:.4g} ({kind}, {self.status.value})"
