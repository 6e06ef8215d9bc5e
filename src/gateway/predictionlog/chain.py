"""Tamper evidence: each closed log file's sha256 chained into the registry's audit log.

When a Parquet file closes, :func:`audit_closer` appends a ``log.segment`` event (subject:
the model; ``after``: the file's path relative to the log's directory, its sha256, record
count and size). The audit log is itself hash-chained, so a digest cannot be edited
without breaking the chain. :func:`verify` recomputes every file under the directory and
compares: a file the chain names but the disk lacks is *missing*, one whose digest differs
is *altered*, and a ``.parquet`` file the chain never recorded is *added*.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.predictionlog.parquet import ClosedFile, file_sha256
from gateway.predictionlog.retention import RETENTION

__all__ = ["ACTION", "Verification", "audit_closer", "recorded_segments", "verify"]

ACTION = "log.segment"
ERASURE = "log.erasure"  # written by gateway.predictionlog.erasure


def audit_closer(registry: Any, actor: str = "gateway") -> Callable[[ClosedFile], None]:
    """The ``on_closed`` callback that records each closed file in ``registry``'s audit log."""

    def record(closed: ClosedFile) -> None:
        registry.record_audit(
            actor=actor,
            action=ACTION,
            subject=closed.model,
            after={
                "path": closed.path,
                "sha256": closed.sha256,
                "records": closed.records,
                "bytes": closed.bytes,
            },
        )

    return record


def recorded_segments(events: Iterable[Any]) -> dict[str, str]:
    """path -> sha256 of the ``log.segment`` events among ``events``, and of the
    ``log.erasure`` / ``log.retention`` events that rewrote (or removed) a file since: the
    latest wins."""
    segments: dict[str, str] = {}
    for event in events:
        if event.action not in (ACTION, ERASURE, RETENTION) or not isinstance(event.after, dict):
            continue
        path = str(event.after["path"])
        if event.after.get("removed"):
            segments.pop(path, None)
        else:
            segments[path] = str(event.after["sha256"])
    return segments


@dataclass
class Verification:
    """What :func:`verify` found; ``ok`` when every recorded file is there, unchanged."""

    checked: int = 0
    missing: list[str] = field(default_factory=list)
    altered: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    chain_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.altered or self.added or self.chain_problems)


def verify(directory: Path, segments: dict[str, str], chain_problems: list[str]) -> Verification:
    """Compare the files under ``directory`` with the digests the audit chain recorded."""
    result = Verification(chain_problems=list(chain_problems))
    on_disk = {p.relative_to(directory).as_posix(): p for p in directory.rglob("*.parquet")}
    for path, digest in sorted(segments.items()):
        found = on_disk.get(path)
        if found is None:
            result.missing.append(path)
            continue
        result.checked += 1
        if file_sha256(found) != digest:
            result.altered.append(path)
    result.added = sorted(set(on_disk) - set(segments))
    return result
