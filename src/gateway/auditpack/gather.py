"""The auditor's pack, I/O half: read the registry and the prediction log, write the folder.

:func:`gather` reads one model's records from a (synchronous) :class:`registry.Registry`
— versions and lineage, model cards, approvals, its audit events in the period with their
hashes, reference profiles, the whole chain's verification — and checks the model's
prediction-log files against their chained digests (:func:`gateway.predictionlog.chain.verify`).
:func:`write_pack` renders them through the pure :mod:`.parts` and :mod:`.index` and writes
the folder, each file's sha256 in ``index.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from gateway.auditpack.index import html, index_of, markdown
from gateway.auditpack.parts import Evidence, build_parts

__all__ = ["PackResult", "gather", "write_pack"]


def _in_model(subject: str, model: str) -> bool:
    return subject == model or subject.startswith(f"{model}:")


def _version(v: Any) -> dict[str, Any]:
    return {
        "version": v.version, "sha256": v.sha256, "size_bytes": v.size_bytes,
        "status": v.status, "created_at": v.created_at.isoformat(),
        "created_by": v.created_by, "owner": v.owner, "description": v.description,
        "status_changed_at": None if v.status_changed_at is None
        else v.status_changed_at.isoformat(),
        "lineage": v.lineage.to_dict(), "validation": v.validation,
    }  # fmt: skip


def _profile_summary(found: tuple[dict[str, Any], str] | None) -> dict[str, Any] | None:
    if not found:
        return None
    profile, source = found
    out: dict[str, Any] = {"source": source}
    for side in ("inputs", "outputs"):
        part = profile.get(side) if isinstance(profile, dict) else None
        if isinstance(part, dict):
            out[side] = {"rows": part.get("n_rows"), "features": part.get("feature_names")}
    return out


def _log_check(registry: Any, model: str, log_dir: Path, chain: list[str]) -> dict[str, Any]:
    """``log verify`` restricted to ``model``'s files (its ``model=NAME/`` folder)."""
    from gateway.predictionlog.chain import recorded_segments, verify

    prefix = f"model={quote(model, safe='')}/"
    if not log_dir.is_dir():
        return {"configured": True, "directory": str(log_dir), "ok": False, "checked": 0,
                "missing": [], "altered": [], "added": [],
                "problem": "the prediction-log directory does not exist"}  # fmt: skip
    segments = {
        path: digest
        for path, digest in recorded_segments(registry.audit_events()).items()
        if path.startswith(prefix)
    }
    found = verify(log_dir, segments, chain)
    added = [p for p in found.added if p.startswith(prefix)]
    ok = not (found.missing or found.altered or added or found.chain_problems)
    return {"configured": True, "directory": str(log_dir), "ok": ok, "checked": found.checked,
            "missing": found.missing, "altered": found.altered, "added": added}  # fmt: skip


def gather(
    registry: Any,
    model: str,
    *,
    since: datetime | None,
    until: datetime | None,
    log_dir: Path | None,
    actor: str,
    now: datetime,
) -> Evidence:
    """Everything the pack of ``model`` over ``[since, until)`` is made from."""
    from registry import build_card

    versions = registry.list_versions(model)  # NotFoundError for an unknown model
    cards = {}
    for v in versions:
        card = build_card(registry, model, v.version)
        cards[v.version] = (card.markdown(), card.html())
    approvals = [
        {"version": a.version, "approver": a.approver, "comment": a.comment,
         "at": a.created_at.isoformat()}
        for a in registry.governance.approvals(model)
    ]  # fmt: skip
    events = [
        e for e in registry.governance.audit_export(since, until) if _in_model(e["subject"], model)
    ]
    profiles = {
        v.version: summary
        for v in versions
        if (summary := _profile_summary(registry.get_profile(model, v.version))) is not None
    }
    chain = registry.verify_audit_chain()
    last = registry.audit_events(limit=1)
    notes = []
    log = None
    if log_dir is not None:
        log = _log_check(registry, model, log_dir, chain)
    else:
        notes.append("no prediction log configured: no per-request records to verify")
    return Evidence(
        model=model,
        since=None if since is None else since.isoformat(),
        until=None if until is None else until.isoformat(),
        generated_at=now.isoformat(),
        generated_by=actor,
        versions=[_version(v) for v in versions],
        cards=cards,
        approvals=approvals,
        events=events,
        profiles=profiles,
        chain_events=last[0].seq if last else 0,
        chain_problems=chain,
        log=log,
        notes=tuple(notes),
    )


class PackResult:
    """What :func:`write_pack` wrote: the folder, its index and whether it verified."""

    def __init__(self, out: Path, index: Mapping[str, Any]) -> None:
        self.out = out
        self.index = index
        self.verified = bool(index["verified"])


def write_pack(evidence: Evidence, out: Path) -> PackResult:
    """Write the pack of ``evidence`` into ``out`` (created; it must be empty or absent)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty folder")
    parts = build_parts(evidence)
    verification = json.loads(next(p for p in parts if p.path == "verification.json").data)
    index = index_of(evidence, parts, bool(verification["ok"]))
    for part in parts:
        target = out / part.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(part.data)
    (out / "index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    (out / "index.md").write_text(markdown(index), encoding="utf-8")
    (out / "index.html").write_text(html(index), encoding="utf-8")
    return PackResult(out, index)
