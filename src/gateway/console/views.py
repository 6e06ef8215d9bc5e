"""Domain values -> the plain dicts the console's pages render.

The console reads the operations core (:mod:`gateway.operations`), which answers in domain
values (registry records, drift reports, governor status); these functions lay them out
under the field names the pages read (the operator APIs' names, so a page reads what
``onnxgate ... --json`` shows). No protobuf: the console never builds a wire message.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from gateway.monitoring.monitor import SideDrift, VersionDrift, feature_order
from gateway.monitoring.shadow import ShadowReport
from registry import ApprovalRecord, AuditRecord, DeploymentRecord, ModelRecord, VersionRecord
from registry.deployment import Deployment

__all__ = [
    "approval_doc",
    "audit_doc",
    "deployment_doc",
    "drift_doc",
    "history_doc",
    "model_doc",
    "performance_doc",
    "shadow_doc",
    "status_doc",
    "version_doc",
]

Doc = dict[str, Any]


def model_doc(m: ModelRecord) -> Doc:
    return {"name": m.name, "versions": list(m.versions), "champion": m.champion or "",
            "revision": m.revision}  # fmt: skip


def deployment_doc(dep: Deployment, loaded: Iterable[str] = ()) -> Doc:
    return {
        "model": dep.model,
        "revision": dep.revision,
        "arms": [{"version": a.version, "role": str(a.role), "weight": a.weight} for a in dep.arms],
        "shadows": [{"version": s.version, "fraction": s.fraction} for s in dep.shadows],
        "loaded_versions": sorted(loaded),
    }


def history_doc(h: DeploymentRecord) -> Doc:
    return {"deployment": deployment_doc(h.deployment), "actor": h.actor, "reason": h.reason,
            "created_at": h.created_at.isoformat()}  # fmt: skip


def approval_doc(a: ApprovalRecord) -> Doc:
    return {"model": a.model, "version": a.version, "approver": a.approver,
            "comment": a.comment, "created_at": a.created_at.isoformat()}  # fmt: skip


def version_doc(v: VersionRecord) -> Doc:
    lineage = v.lineage
    return {
        "version": v.version,
        "status": v.status,
        "description": v.description,
        "owner": v.owner,
        "created_at": v.created_at.isoformat(),
        "validation": v.validation,
        "lineage": {
            "parent": lineage.parent,
            "training_data": lineage.training_data,
            "code_ref": lineage.code_ref,
            "license": lineage.license,
            "metrics": dict(lineage.metrics),
        },
    }


def status_doc(status: Any) -> Doc:
    """A :class:`gateway.operations.GovernorStatus` (a dataclass) as the status page reads it:
    gates with ``has_value``, figures as ``figures_json``."""
    doc: Doc = dict(vars(status))
    figures = doc.pop("figures", None)
    doc["figures_json"] = "" if figures is None else json.dumps(figures, sort_keys=True)
    doc["gates"] = [
        {**g, "has_value": g.get("value") is not None, "value": g.get("value") or 0.0}
        for g in doc.get("gates", [])
    ]
    return doc


def audit_doc(e: AuditRecord) -> Doc:
    return {
        "seq": e.seq,
        "at": e.at.isoformat(),
        "actor": e.actor,
        "action": e.action,
        "subject": e.subject,
        "before_json": json.dumps(e.before, sort_keys=True),
        "after_json": json.dumps(e.after, sort_keys=True),
        "reason": e.reason,
        "hash": e.hash,
    }


def _side_doc(name: str, side: SideDrift) -> Doc:
    r, profile = side.report, side.profile
    features = []
    for i in feature_order(r).tolist():
        k = int(profile.n_bins[i])
        features.append(
            {
                "name": r.feature_names[i],
                "categorical": bool(r.categorical[i]),
                "drifted": bool(r.drifted_mask[i]),
                "no_data": bool(r.no_data[i]),
                "psi": float(r.psi[i]),
                "ks_statistic": float(r.ks_stat[i]),
                "ks_pvalue": float(r.ks_p[i]),
                "mean_shift": float(r.mean_shift[i]),
                "pvalue": float(r.p_value[i]),
                "pvalue_adjusted": float(r.p_adjusted[i]),
                "histogram": {
                    "edges": profile.edges[i, 1:k].tolist(),
                    "reference": profile.ref_counts[i, :k].tolist(),
                    "current": side.current_counts[i, :k].tolist(),
                },
            }
        )
    return {
        "side": name,
        "drifted": r.drifted,
        "driving_features": list(r.features),
        "alpha": r.alpha,
        "correction": r.correction,
        "window_rows": r.window_rows,
        "reference_rows": profile.n_rows,
        "features": features,
    }


def drift_doc(versions: Sequence[VersionDrift]) -> Doc:
    """Drift reports with histograms, as the drift page reads them."""
    out = []
    for vd in versions:
        sides = [(n, vd.side(n)) for n in ("inputs", "outputs")]
        out.append(
            {
                "model": vd.model,
                "version": vd.version,
                "profile_source": vd.profile_source,
                "window_rows": vd.window_rows,
                "rows_seen": vd.rows_seen,
                "drifted": vd.drifted,
                "sides": [_side_doc(n, s) for n, s in sides if s is not None],
            }
        )
    return {"versions": out}


def shadow_doc(comparisons: Sequence[ShadowReport], dropped: int, pending: int) -> Doc:
    rows: list[Mapping[str, Any]] = [
        {
            "model": r.model,
            "version": r.version,
            "served_version": r.served_version,
            "requests": r.requests,
            "rows": r.rows,
            "errors": r.errors,
            "classifier": r.classifier,
            "compared_rows": r.compared_rows,
            "agreement": r.agreement,
            "mean_abs_diff": r.mean_abs_diff,
            "max_abs_diff": r.max_abs_diff,
        }
        for r in comparisons
    ]
    return {"comparisons": rows, "dropped": dropped, "pending": pending}


class TimedAccuracy(Protocol):
    """Realised accuracy of one time bucket (``gateway.governor.realised.RealisedPoint``)."""

    @property
    def at(self) -> float: ...

    @property
    def labelled(self) -> int: ...

    @property
    def accuracy(self) -> float: ...


def performance_doc(
    vd: VersionDrift, role: str, labelled: int, correct: int, realised: Sequence[TimedAccuracy]
) -> Doc:
    """One version's estimate now, its history, and realised accuracy (cumulative and over
    time), as the model page's accuracy section reads them (``onnxgate performance --json``
    names)."""
    estimated = None if vd.performance is None else vd.performance.estimate().to_dict()
    history = [
        {
            "at": p.at,
            "accuracy": p.estimate.accuracy,
            "low": p.estimate.accuracy_low,
            "high": p.estimate.accuracy_high,
            "rows": p.estimate.rows,
        }  # fmt: skip
        for p in vd.performance_history
    ]
    return {
        "version": vd.version,
        "role": role,
        "note": vd.performance_note,
        "estimated": estimated,
        "realised": {"accuracy": correct / labelled, "labels": labelled} if labelled else None,
        "history": history,
        "realised_history": [
            {"at": p.at, "accuracy": p.accuracy, "labels": p.labelled} for p in realised
        ],
    }
