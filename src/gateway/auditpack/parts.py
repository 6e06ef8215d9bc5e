"""The auditor's pack as plain parts: what each file says and which AI Act article it serves.

Pure: :func:`build_parts` turns the :class:`Evidence` gathered from the registry and the
prediction log (:mod:`.gather`) into :class:`Part` objects — a path inside the pack, its
bytes, a title and the articles of Regulation (EU) 2024/1689 it documents:

- **Art. 11** technical documentation (Annex IV: the system, its versions and lineage,
  human oversight, the monitoring of its performance);
- **Art. 12** record-keeping: automatically generated logs over the system's lifetime
  (every deployment change, governor decision, approval; the prediction log's digests);
- **Art. 19** keeping those logs, at least six months, intact (the digests and their
  verification).

No I/O here: the same evidence always gives the same bytes, so a test can compare them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ARTICLES", "Evidence", "Part", "build_parts", "decision_of"]

ARTICLES: Mapping[str, str] = {
    "Art. 11": "Technical documentation (Annex IV)",
    "Art. 12": "Record-keeping: automatically generated logs",
    "Art. 19": "Retention of automatically generated logs",
}

# Gates over the data a version sees and how it uses it (gateway.governor.gates.GATES).
DRIFT_GATES = ("input_drift", "output_drift", "importance_drift")


@dataclass(frozen=True)
class Evidence:
    """Everything the pack is made from, as plain JSON-ready values."""

    model: str
    since: str | None  # ISO 8601; None: from the start of the audit log
    until: str | None  # ISO 8601, exclusive; None: up to now
    generated_at: str
    generated_by: str
    versions: Sequence[Mapping[str, Any]]  # registry facts and lineage, one per version
    cards: Mapping[str, tuple[str, str]]  # version -> (Markdown, HTML) model card
    approvals: Sequence[Mapping[str, Any]]
    events: Sequence[Mapping[str, Any]]  # the model's audit events in the period, hashed
    profiles: Mapping[str, Mapping[str, Any]]  # version -> reference profile summary
    chain_events: int  # events in the whole audit chain
    chain_problems: Sequence[str]  # registry.verify_audit_chain()
    log: Mapping[str, Any] | None = None  # the model's `log verify` result; None: no log
    notes: Sequence[str] = field(default_factory=tuple)


@dataclass(frozen=True)
class Part:
    """One file of the pack."""

    path: str
    data: bytes
    title: str
    articles: tuple[str, ...]
    description: str
    items: int | None = None  # records in it, where counting makes sense


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _jsonl(rows: Sequence[Mapping[str, Any]]) -> bytes:
    return "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows).encode()


def decision_of(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """The governor decision an audit event carries: a recorded one (``governor.decision``)
    or one the governor applied (a deployment change with ``details``)."""
    after = event.get("after")
    if not isinstance(after, dict):
        return None
    if event.get("action") == "governor.decision":
        found = after.get("decision")
    else:
        details = after.get("details")
        found = details.get("decision") if isinstance(details, dict) else None
    return found if isinstance(found, dict) else None


def _deployments(events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for e in events:
        if not str(e["action"]).startswith("deployment."):
            continue
        after = e["after"] if isinstance(e["after"], dict) else {}
        decision = decision_of(e)
        out.append({
            "seq": e["seq"], "at": e["at"], "actor": e["actor"], "action": e["action"],
            "reason": e["reason"], "revision": after.get("revision"),
            "before": e["before"], "arms": after.get("arms"), "shadows": after.get("shadows"),
            "governor_decision": None if decision is None else decision.get("kind"),
            "hash": e["hash"],
        })  # fmt: skip
    return out


def _decisions(events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for e in events:
        decision = decision_of(e)
        if decision is None:
            continue
        out.append({
            "seq": e["seq"], "at": e["at"], "applied": e["action"] != "governor.decision",
            "action": e["action"], "kind": decision.get("kind"),
            "candidate": decision.get("candidate"), "revision": decision.get("revision"),
            "mode": decision.get("mode"), "weights": decision.get("weights"),
            "gates": decision.get("gates", []), "figures": decision.get("figures", {}),
            "test": decision.get("test"), "reasons": decision.get("reasons", []),
            "used_estimate": decision.get("used_estimate"), "hash": e["hash"],
        })  # fmt: skip
    return out


def _drift(ev: Evidence, decisions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    gates = [
        {"seq": d["seq"], "at": d["at"], "candidate": d["candidate"], **g}
        for d in decisions
        for g in d["gates"]
        if g.get("name") in DRIFT_GATES
    ]
    events = [dict(e) for e in ev.events if str(e["action"]).startswith("drift.")]
    return {
        "reference_profiles": {v: dict(p) for v, p in sorted(ev.profiles.items())},
        "gate_results": gates,
        "drift_events": events,
        "summary": {
            name: {
                "evaluations": sum(g["name"] == name for g in gates),
                "failed": sum(g["name"] == name and g.get("status") == "fail" for g in gates),
                "last": next((g for g in reversed(gates) if g["name"] == name), None),
            }
            for name in DRIFT_GATES
        },
    }


# The audit actions that chain prediction-log files (gateway.predictionlog.chain.ACTION and
# ERASURE, gateway.predictionlog.retention.RETENTION), spelled here so that building a pack
# imports no Parquet library.
LOG_ACTIONS = frozenset({"log.segment", "log.erasure", "log.retention"})


def _segments(events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"seq": e["seq"], "at": e["at"], "action": e["action"], **dict(e["after"] or {}),
         "hash": e["hash"]}
        for e in events
        if e["action"] in LOG_ACTIONS
    ]  # fmt: skip


def _verification(ev: Evidence) -> dict[str, Any]:
    log = None if ev.log is None else dict(ev.log)
    chain_ok = not ev.chain_problems
    return {
        "audit_chain": {
            "intact": chain_ok,
            "events": ev.chain_events,
            "problems": list(ev.chain_problems),
        },  # fmt: skip
        "prediction_log": log if log is not None else {"configured": False},
        "ok": chain_ok and (log is None or bool(log.get("ok"))),
        "notes": list(ev.notes),
    }


def build_parts(ev: Evidence) -> list[Part]:
    """The pack's files (without the index), in the order the index lists them."""
    decisions = _decisions(ev.events)
    deployments = _deployments(ev.events)
    segments = _segments(ev.events)
    parts: list[Part] = []
    for version, (md, html) in sorted(ev.cards.items(), key=lambda kv: _version_key(kv[0])):
        for ext, text in (("md", md), ("html", html)):
            parts.append(Part(
                f"model-cards/{version}.{ext}", text.encode(), f"Model card {ev.model}:{version}",
                ("Art. 11",), "The version's purpose, lineage, metrics, signature, validation, "
                "reference profile, approvals, deployments and drift, from the registry.",
            ))  # fmt: skip
    parts += [
        Part("lineage.json", _json(list(ev.versions)), "Versions and lineage", ("Art. 11",),
             "Every version: artifact sha256, status, who registered it, training data, "
             "code, parents, metrics, licence.", len(ev.versions)),
        Part("approvals.json", _json(list(ev.approvals)), "Approvals (human oversight)",
             ("Art. 11", "Art. 12"), "Who approved which version, when and why.",
             len(ev.approvals)),
        Part("deployments.json", _json(deployments), "Deployment changes",
             ("Art. 11", "Art. 12"), "Every change of who served and with what share in the "
             "period, by whom (operator or governor) and why.", len(deployments)),
        Part("governor-decisions.json", _json(decisions), "Governor decisions",
             ("Art. 12",), "Every recorded or applied decision in the period with its gates "
             "(value, threshold, pass/fail) and the statistics it was based on.",
             len(decisions)),
        Part("drift-importance.json", _json(_drift(ev, decisions)),
             "Drift and feature-importance monitoring", ("Art. 11", "Art. 12"),
             "Reference profiles per version, the drift and importance gate results of every "
             "decision and drift events: the post-market monitoring record.", None),
        Part("prediction-log-segments.json", _json(segments), "Prediction-log segment digests",
             ("Art. 12", "Art. 19"), "The sha256 of every prediction-log file closed (or "
             "rewritten by an erasure, or removed by retention) in the period, as chained into "
             "the audit log.",
             len(segments)),
        Part("audit-events.jsonl", _jsonl(ev.events), "Audit events (hash chain)",
             ("Art. 12", "Art. 19"), "The model's audit events in the period with prev_hash "
             "and hash: sha256(prev_hash + canonical JSON) re-verifies each offline.",
             len(ev.events)),
        Part("verification.json", _json(_verification(ev)), "Verification report",
             ("Art. 12", "Art. 19"), "The audit chain checked end to end, and every "
             "prediction-log file of the model recomputed against its chained digest.", None),
    ]  # fmt: skip
    return parts


def _version_key(version: str) -> tuple[int, int | str]:
    return (0, int(version)) if version.isdigit() else (1, version)
