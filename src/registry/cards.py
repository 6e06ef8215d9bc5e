"""Model cards rendered from the registry's own records, as Markdown and as HTML.

A card is built once as plain sections (paragraph lines and at most one table each), then
rendered by :meth:`Card.markdown` or :meth:`Card.html`, so both formats say the same thing.
Everything on it comes from the registry: the version and its lineage chain, metrics,
signature, validation, reference profile summary, approvals against the policy, the
deployment revisions that served it, and drift events from the audit log.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from registry.errors import NotFoundError
from registry.records import VersionRecord
from registry.registry import Registry
from registry.signing import BUNDLE_TAG, signer_of

__all__ = ["Card", "Section", "build_card"]

_MAX_LINEAGE = 20  # parents followed, so a (corrupt) cycle cannot loop forever


@dataclass
class Section:
    title: str
    lines: list[str] = field(default_factory=list)
    header: tuple[str, ...] = ()
    rows: list[tuple[str, ...]] = field(default_factory=list)


@dataclass
class Card:
    title: str
    sections: list[Section]

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for s in self.sections:
            out += [f"## {s.title}", ""]
            out += [f"{line}  " for line in s.lines]
            if s.lines:
                out.append("")
            if s.header:
                out.append("| " + " | ".join(s.header) + " |")
                out.append("|" + "|".join("---" for _ in s.header) + "|")
                for row in s.rows:
                    cells = (c.replace("|", "\\|").replace("\n", " ") for c in row)
                    out.append("| " + " | ".join(cells) + " |")
                out.append("")
        return "\n".join(out).rstrip() + "\n"

    def html(self) -> str:
        e = html.escape
        out = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{e(self.title)}</title>",
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;"
            "text-align:left}code{font-size:90%}</style>",
            "</head><body>",
            f"<h1>{e(self.title)}</h1>",
        ]
        for s in self.sections:
            out.append(f"<h2>{e(s.title)}</h2>")
            out += [f"<p>{_inline_html(line)}</p>" for line in s.lines]
            if s.header:
                out.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in s.header) + "</tr>")
                for row in s.rows:
                    out.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>")
                out.append("</table>")
        out.append("</body></html>")
        return "\n".join(out) + "\n"


def _inline_html(line: str) -> str:
    # Lines use only **bold** labels and `code`; escape first, then mark those up.
    text = html.escape(line)
    parts = text.split("**")
    text = "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))
    parts = text.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _summary(rec: VersionRecord) -> Section:
    lines = [
        f"**Status:** {rec.status}",
        f"**Registered:** {rec.created_at.isoformat()} by {rec.created_by or 'unknown'}",
        f"**Owner:** {rec.owner or '—'}",
        f"**Description:** {rec.description or '—'}",
        f"**License:** {rec.lineage.license or '—'}",
        f"**Artifact:** `{rec.sha256}` ({rec.size_bytes} bytes)",
        f"**Signature:** {signer_of(rec.lineage.tags)}"
        + (f" (bundle sha256 `{bundle}`)" if (bundle := _bundle(rec.lineage.tags)) else ""),
        f"**Scan:** {rec.lineage.tags.get('scan', '—')}",
    ]
    lines += [f"**{k}:** {v}" for k, v in sorted(rec.metadata.items())]
    return Section("Summary", lines)


def _bundle(tags: Mapping[str, str]) -> str:
    return tags.get(BUNDLE_TAG) or tags.get("source." + BUNDLE_TAG, "")


def _lineage(registry: Registry, rec: VersionRecord) -> Section:
    lin = rec.lineage
    lines = [
        f"**Training data:** {lin.training_data or '—'}"
        + (f" (sha256 `{lin.training_data_sha256}`)" if lin.training_data_sha256 else ""),
        f"**Code:** {lin.code_ref or '—'}",
    ]
    chain: list[str] = []
    parent, seen = lin.parent, {f"{rec.model}:{rec.version}"}
    while parent and parent not in seen and len(chain) < _MAX_LINEAGE:
        seen.add(parent)
        chain.append(parent)
        model, _, version = parent.rpartition(":")
        try:
            parent = registry.get_version(model, version).lineage.parent
        except NotFoundError:
            break
    lines.append("**Parents:** " + (" ← ".join(chain) if chain else "none (trained from scratch)"))
    section = Section("Lineage", lines)
    if lin.hyperparameters:
        section.header = ("hyperparameter", "value")
        section.rows = [(k, _fmt(v)) for k, v in sorted(lin.hyperparameters.items())]
    return section


def _metrics(rec: VersionRecord) -> Section:
    section = Section("Metrics and tags")
    if not rec.lineage.metrics and not rec.lineage.tags:
        section.lines.append("No metrics or tags recorded.")
    if rec.lineage.tags:
        tags = ", ".join(f"`{k}={v}`" for k, v in sorted(rec.lineage.tags.items()))
        section.lines.append(f"**Tags:** {tags}")
    if rec.lineage.metrics:
        section.header = ("metric", "value")
        section.rows = [(k, _fmt(v)) for k, v in sorted(rec.lineage.metrics.items())]
    return section


def _signature(rec: VersionRecord) -> Section:
    rows: list[tuple[str, ...]] = [
        ("input", s.name, s.datatype, str(list(s.shape))) for s in rec.signature.inputs
    ]
    rows += [("output", s.name, s.datatype, str(list(s.shape))) for s in rec.signature.outputs]
    return Section("Signature", [], ("kind", "name", "datatype", "shape"), rows)


def _validation(rec: VersionRecord) -> Section:
    doc = rec.validation
    if not doc:
        return Section("Validation", ["Never validated."])
    verdict = "passed" if doc.get("passed") else "FAILED"
    section = Section("Validation", [f"**Last run:** {doc.get('at', '?')} — {verdict}"])
    section.header = ("check", "result", "detail")
    section.rows = [
        (c["name"], "pass" if c["passed"] else "FAIL", c.get("detail", ""))
        for c in doc.get("checks", [])
    ]
    return section


def _profile(registry: Registry, rec: VersionRecord) -> Section:
    getter = getattr(registry, "get_profile", None)
    found = getter(rec.model, rec.version) if getter is not None else None
    if not found:
        return Section("Reference profile", ["No reference profile stored."])
    profile, source = found
    lines = [f"**Source:** {source}"]
    for side in ("inputs", "outputs"):
        part = profile.get(side) if isinstance(profile, dict) else None
        if isinstance(part, dict):  # the layout of gateway.monitoring.profiles.Profile.to_dict
            names = part.get("feature_names")
            shown = ", ".join(map(str, names[:10])) if isinstance(names, list) else "?"
            more = (
                f" (+{len(names) - 10} more)" if isinstance(names, list) and len(names) > 10 else ""
            )
            lines.append(
                f"**{side.capitalize()}:** {part.get('n_rows', '?')} reference row(s); "
                f"features {shown}{more}"
            )
    return Section("Reference profile", lines)


def _approvals(registry: Registry, rec: VersionRecord) -> Section:
    required = registry.governance.policy().approvals_required
    approvals = registry.governance.approvals(rec.model, rec.version)
    section = Section(
        "Approvals", [f"**Approvals:** {len(approvals)} of {required} required by policy"]
    )
    if approvals:
        section.header = ("approver", "at", "comment")
        section.rows = [(a.approver, a.created_at.isoformat(), a.comment) for a in approvals]
    return section


def _deployments(registry: Registry, rec: VersionRecord) -> Section:
    section = Section("Deployment history")
    try:
        history = registry.history(rec.model)
    except NotFoundError:
        history = []
    for h in history:
        dep = h.deployment
        total = math.fsum(a.weight for a in dep.arms) or 1.0
        arm = dep.arm(rec.version)
        shadow = next((s for s in dep.shadows if s.version == rec.version), None)
        if arm is not None:
            role = f"{arm.role.value} {100 * arm.weight / total:.1f}%"
        elif shadow is not None:
            role = f"shadow {100 * shadow.fraction:.1f}% mirrored"
        else:
            role = "—"
        section.rows.append((str(dep.revision), h.created_at.isoformat(), role, h.actor, h.reason))
    if section.rows:
        section.header = ("revision", "at", "this version", "actor", "reason")
    else:
        section.lines.append("The model has never been deployed.")
    return section


def _drift(registry: Registry, rec: VersionRecord) -> Section:
    events = [
        e
        for e in registry.audit_events(rec.model)
        if e.action.startswith("drift.")
        and (e.subject == rec.model or e.subject == f"{rec.model}:{rec.version}")
    ]
    if not events:
        return Section("Drift history", ["No drift events recorded."])
    rows: list[tuple[str, ...]] = [
        (e.at.isoformat(), e.action, e.subject, e.reason) for e in events
    ]
    return Section("Drift history", [], ("at", "event", "subject", "reason"), rows)


def build_card(registry: Registry, model: str, version: str | None = None) -> Card:
    """The card of ``model:version`` (``None``: the current champion)."""
    rec = registry.get_version(model, version)
    return Card(
        f"Model card: {rec.model}:{rec.version}",
        [
            _summary(rec),
            _lineage(registry, rec),
            _metrics(rec),
            _signature(rec),
            _validation(rec),
            _profile(registry, rec),
            _approvals(registry, rec),
            _deployments(registry, rec),
            _drift(registry, rec),
        ],
    )
