"""Retention of the prediction log: files past the policy's floor may go, younger never.

The governance policy's ``prediction_log_days`` (e.g. 183: the six months of AI Act
Art. 19) is a *floor*: ``onnxgate retention apply`` removes a closed file only when every
record it may hold is older than that many days — judged by its ``date=YYYY-MM-DD``
partition, whose day must have ended ``prediction_log_days`` ago — and never touches a
file when the key is unset. Each removal is a ``log.retention`` audit event (the file's
path and last sha256, ``removed``), so ``onnxgate log verify`` knows the file went by
policy and does not report it missing. Files still being written (``*.tmp``) are left alone.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

__all__ = ["RETENTION", "LogRetention", "expired_files", "remove_expired"]

RETENTION = "log.retention"

_DATE = re.compile(r"(?:^|/)date=(\d{4}-\d{2}-\d{2})(?:/|$)")


@dataclass
class LogRetention:
    """What :func:`remove_expired` found (and, unless a dry run, removed)."""

    floor_days: float | None
    removed: list[str] = field(default_factory=list)
    kept: int = 0


def _day_of(relative: str) -> date | None:
    found = _DATE.search(relative)
    if found is None:
        return None
    try:
        return date.fromisoformat(found.group(1))
    except ValueError:
        return None


def expired_files(directory: Path, floor_days: float | None, now: datetime) -> list[str]:
    """Closed files (relative paths) whose whole day ended more than ``floor_days`` ago;
    none without a floor. A file outside a ``date=`` partition is never expired."""
    if floor_days is None:
        return []
    cutoff = now.astimezone(UTC) - timedelta(days=floor_days)
    expired = []
    for path in sorted(directory.rglob("*.parquet")):
        relative = path.relative_to(directory).as_posix()
        day = _day_of(relative)
        if day is None:
            continue
        day_end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        if day_end <= cutoff:
            expired.append(relative)
    return expired


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _model_of(relative: str) -> str:
    first = relative.split("/", 1)[0]
    return unquote(first.removeprefix("model=")) if first.startswith("model=") else ""


def remove_expired(
    directory: Path,
    registry: Any,
    *,
    floor_days: float | None,
    actor: str,
    now: datetime,
    dry_run: bool = False,
) -> LogRetention:
    """Remove (or, in a dry run, name) the files :func:`expired_files` finds; each removal
    is recorded in ``registry``'s audit chain before the file goes."""
    done = LogRetention(floor_days)
    expired = expired_files(directory, floor_days, now)
    done.kept = sum(1 for _ in directory.rglob("*.parquet")) - len(expired)
    for relative in expired:
        path = directory / relative
        if not dry_run:
            # NOTE: recorded first: a crash between the two leaves a file the chain says is
            # gone (verify: "added"), never a file gone that the chain still expects.
            registry.record_audit(
                actor=actor,
                action=RETENTION,
                subject=_model_of(relative),
                before={"path": relative, "sha256": _sha256(path)},
                after={"path": relative, "sha256": None, "removed": True},
                reason=f"retention: older than prediction_log_days = {floor_days:g}",
            )
            path.unlink()
        done.removed.append(relative)
    return done
