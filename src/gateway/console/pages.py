"""One function per console page: plain dicts in (the APIs' answers), an HTML string out.

The dicts are the read APIs' responses as ``google.protobuf.json_format`` writes them
(field names as in the ``.proto``; 64-bit integers as strings), plus plain version rows
(:func:`model_page`). Nothing here computes a verdict: gates, drift and agreement are
shown as the governor, the monitor and the shadow scorer reported them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.console.accuracy import accuracy_section
from gateway.console.charts import split_svg
from gateway.console.layout import badge, esc, page, percent, table
from gateway.monitoring.report import histogram_svg
from gateway.monitoring.statistics import DRIFT_STATISTICS, wire_value

__all__ = [
    "audit_page",
    "drift_page",
    "governor_page",
    "login_page",
    "model_page",
    "models_page",
    "shadows_page",
]

Doc = Mapping[str, Any]
MAX_HISTOGRAMS = 24  # per side; the table lists every feature
REFRESH_S = 10  # how often a model's pages reload while a rollout is in progress


def _num(value: Any, digits: int = 4) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    if v != v:  # NaN
        return "-"
    return f"{v:.{digits}g}"


def login_page(error: str = "") -> str:
    note = f'<p class="error">{esc(error)}</p>' if error else ""
    body = (
        f"{note}<form class='login' method='post' action='/ui/login'>"
        "<label for='token'>Token (the one you give the CLI)</label>"
        "<input id='token' name='token' type='password' autocomplete='current-password'>"
        "<button type='submit'>Log in</button></form>"
        "<p class='meta'>Any role may look; the console changes nothing.</p>"
    )
    return page("Log in", body)


def models_page(models: Sequence[Doc], who: str) -> str:
    rows = [
        (
            f'<a href="/ui/models/{esc(m["name"])}">{esc(m["name"])}</a>',
            esc(m.get("champion") or "-"),
            esc(", ".join(m.get("versions", []))),
            esc(m.get("revision", "")),
        )
        for m in models
    ]
    return page("Models", table(("model", "champion", "versions", "revision"), rows), who=who)


def _lineage(v: Doc) -> str:
    lin = v.get("lineage") or {}
    parts = [
        f"{esc(k.replace('_', ' '))}: {esc(lin[k])}"
        for k in ("parent", "training_data", "code_ref", "license")
        if lin.get(k)
    ]
    metrics = lin.get("metrics") or {}
    if metrics:
        parts.append(
            "metrics: " + ", ".join(f"{esc(k)} {_num(val)}" for k, val in sorted(metrics.items()))
        )
    tags = lin.get("tags") or {}  # set by the registry (registry.signing, artifact_scan)
    signer = tags.get("signature.signer") or tags.get("source.signature.signer")
    parts.append(f"signed by {esc(signer)}" if signer else "unsigned")
    if tags.get("scan"):
        parts.append(f"scan: {esc(tags['scan'])}")
    return "<br>".join(parts)


def _validation(v: Doc) -> str:
    report = v.get("validation")
    if not report:
        return badge("not validated", "pending")
    checks = list(report.get("checks", []))
    failed = [c for c in checks if not c.get("passed")]
    text = badge("passed", "ok") if report.get("passed") else badge("failed", "bad")
    text += f' <span class="meta">{len(checks) - len(failed)}/{len(checks)} checks</span>'
    for c in failed[:5]:
        text += f"<br>{esc(c.get('name'))}: {esc(c.get('detail', ''))}"
    return text


def model_page(
    model: str,
    deployment: Doc,
    versions: Sequence[Doc],
    approvals: Sequence[Doc],
    history: Sequence[Doc],
    who: str,
    performance: Sequence[Doc] | None = None,
    performance_note: str = "",
) -> str:
    """``performance``: :func:`gateway.console.views.performance_doc` (None: not known,
    ``performance_note`` says why)."""
    arms = list(deployment.get("arms", []))
    total = sum(float(a.get("weight", 0.0)) for a in arms) or 1.0
    split_rows = [
        (
            esc(a["version"]),
            esc(a["role"]),
            f'<span class="share">{percent(float(a.get("weight", 0.0)) / total)}</span>',
        )
        for a in arms
    ]
    shadows = [
        (esc(s["version"]), percent(float(s.get("fraction", 0.0))))
        for s in deployment.get("shadows", [])
    ]
    by_version: dict[str, list[str]] = {}
    for a in approvals:
        by_version.setdefault(str(a.get("version")), []).append(
            f"{esc(a.get('approver'))} ({esc(str(a.get('created_at', ''))[:19])})"
        )
    version_rows = [
        (
            esc(v["version"]),
            esc(v.get("status", "")),
            esc(v.get("description", "")) + f'<br><span class="meta">{esc(v.get("owner"))}</span>',
            _lineage(v),
            _validation(v),
            "<br>".join(by_version.get(str(v["version"]), [])) or '<span class="meta">-</span>',
            esc(str(v.get("created_at", ""))[:19]),
        )
        for v in versions
    ]
    history_rows = [
        (
            esc(str(h.get("created_at", ""))[:19]),
            esc(h.get("actor", "")),
            esc(
                ", ".join(
                    f"v{a['version']} {a['role']} {_num(a.get('weight', 0))}"
                    for a in (h.get("deployment") or {}).get("arms", [])
                )
            ),
            esc(h.get("reason", "")),
        )
        for h in list(history)[-15:][::-1]
    ]
    body = (
        f"<h2>Live traffic split (revision {esc(deployment.get('revision', ''))})</h2>"
        f"{split_svg(arms)}"
        + table(("version", "role", "share"), split_rows)
        + "<h2>Shadows</h2>"
        + table(("version", "mirrored share"), shadows)
        + accuracy_section(performance, performance_note)
        + "<h2>Versions</h2>"
        + table(
            ("version", "status", "card", "lineage", "validation", "approvals", "registered"),
            version_rows,
        )
        + "<h2>Recent history</h2>"
        + table(("when (UTC)", "actor", "arms", "reason"), history_rows)
    )
    # A canary or challenger with traffic: the split moves while someone watches.
    ramping = any(a.get("role") != "champion" and float(a.get("weight", 0.0)) > 0 for a in arms)
    refresh = REFRESH_S if ramping else None
    return page(f"Model {model}", body, who=who, model=model, refresh_s=refresh)


_GATE_KIND = {"pass": "ok", "fail": "bad", "pending": "pending"}


def _decision(event: Doc) -> Doc | None:
    """The governor decision an audit event records, if it records one."""
    try:
        after = json.loads(event.get("after_json") or "null")
    except ValueError:
        return None
    if not isinstance(after, dict):
        return None
    if event.get("action") == "governor.decision":
        found = after.get("decision")
    else:
        found = (after.get("details") or {}).get("decision")
    return found if isinstance(found, dict) else None


def governor_page(model: str, status: Doc, events: Sequence[Doc], who: str) -> str:
    if not int(status.get("policy_version") or 0):
        body = "<p>No governor policy for this model (<code>onnxgate policy set</code>).</p>"
        return page(f"Governor: {model}", body, who=who, model=model)
    steps = list(status.get("steps", []))
    step = int(status.get("step", 0))
    mode = "paused" if status.get("paused") else str(status.get("mode", ""))
    where = (
        f"step {step} of {len(steps)} ({' / '.join(_num(s) + '%' for s in steps)})"
        if status.get("candidate")
        else "no candidate"
    )
    summary = table(
        ("mode", "candidate", "where", "last decision", "evaluated at (UTC)"),
        [
            (
                badge(mode, "info"),
                esc(status.get("candidate") or "-"),
                f'<span id="step">{esc(where)}</span>',
                esc(status.get("last_decision") or "-"),
                esc(str(status.get("last_evaluated_at", ""))[:19]),
            )
        ],
    )
    reasons = "".join(f"<li>{esc(r)}</li>" for r in status.get("reasons", []))
    gates = list(status.get("gates", []))
    gate_rows = [
        (
            esc(g.get("name")),
            esc(g.get("version")),
            _num(g.get("value")) if g.get("has_value") else "-",
            f"{esc(g.get('op', ''))} {_num(g.get('threshold'))}",
            badge(str(g.get("status", "")), _GATE_KIND.get(str(g.get("status")), "info")),
            "hard" if g.get("hard") else "soft",
            esc(g.get("detail", "")),
        )
        for g in gates
    ]
    classes = ["fail" if g.get("status") == "fail" else "" for g in gates]
    timeline = []
    for e in reversed(events):
        d = _decision(e)
        if d is None:
            continue
        timeline.append(
            (
                esc(str(e.get("at", ""))[:19]),
                esc(d.get("kind", "")),
                esc(e.get("action", "")),
                "<br>".join(esc(r) for r in d.get("reasons", [])[:4]),
            )
        )
    body = (
        summary
        + (f"<ul>{reasons}</ul>" if reasons else "")
        + "<h2>Gates (value against threshold)</h2>"
        + table(
            ("gate", "version", "value", "passes when", "status", "kind", "detail"),
            gate_rows,
            classes=classes,
        )
        + "<h2>Decision timeline (newest first)</h2>"
        + table(("when (UTC)", "decision", "recorded as", "reasons"), timeline[:40])
    )
    ramping = bool(status.get("candidate")) and not status.get("paused")
    refresh = REFRESH_S if ramping else None
    return page(f"Governor: {model}", body, who=who, model=model, refresh_s=refresh)


def _side(side: Doc) -> str:
    drifted = bool(side.get("drifted"))
    verdict = badge("DRIFT", "bad") if drifted else badge("no drift", "ok")
    features = list(side.get("features", []))
    columns = [
        row
        for row in DRIFT_STATISTICS
        if row.console is not None
        and (not row.sparse or any(_num(wire_value(f, row)) != "-" for f in features))
    ]
    rows = [
        (
            esc(f.get("name")),
            *(_num(wire_value(f, row), row.console_digits) for row in columns),
            "drifted" if f.get("drifted") else ("no data" if f.get("no_data") else ""),
        )
        for f in features
    ]
    classes = ["drift" if f.get("drifted") else "" for f in features]
    cards = "".join(
        f'<div class="card{" drift" if f.get("drifted") else ""}"><b>{esc(f.get("name"))}</b> '
        f'<span class="meta">reference vs current</span><br>{histogram_svg(f)}</div>'
        for f in features[:MAX_HISTOGRAMS]
    )
    driving = ", ".join(esc(n) for n in side.get("driving_features", [])) or "none"
    return (
        f'<h3>{esc(side.get("side"))} <span class="verdict">{verdict}</span></h3>'
        f'<p class="meta">drifting: {driving}; alpha {_num(side.get("alpha"))} '
        f"({esc(side.get('correction'))}); window {esc(side.get('window_rows'))} rows, "
        f"reference {esc(side.get('reference_rows'))} rows</p>"
        + table(
            ("feature", *(row.console or "" for row in columns), "verdict"), rows, classes=classes
        )
        + f'<div class="grid">{cards}</div>'
    )


def drift_page(model: str, payload: Doc | None, who: str, note: str = "") -> str:
    parts = [f'<p class="meta">{esc(note)}</p>'] if note else []
    for v in (payload or {}).get("versions", []):
        parts.append(
            f"<h2>Version {esc(v.get('version'))}</h2><p class='meta'>reference profile: "
            f"{esc(v.get('profile_source') or 'none yet')}; {esc(v.get('rows_seen', 0))} rows "
            "seen</p>"
        )
        sides = v.get("sides", [])
        if not sides:
            parts.append("<p>No drift computed yet (no profile or too few rows).</p>")
        parts.extend(_side(s) for s in sides)
    return page(f"Drift: {model}", "".join(parts), who=who, model=model)


def _agreement(c: Doc) -> str:
    if not c.get("classifier") or _num(c.get("agreement")) == "-":
        return "-"
    return f'<span class="agreement">{percent(float(c["agreement"]))}</span>'


def shadows_page(model: str, report: Doc, who: str) -> str:
    rows = [
        (
            esc(c.get("version")),
            esc(c.get("served_version")),
            esc(c.get("requests", 0)),
            esc(c.get("compared_rows", 0)),
            _agreement(c),
            _num(c.get("mean_abs_diff")),
            _num(c.get("max_abs_diff")),
            esc(c.get("errors", 0)),
        )
        for c in report.get("comparisons", [])
    ]
    body = table(
        (
            "shadow",
            "against",
            "requests",
            "rows compared",
            "label agreement",
            "mean |diff|",
            "max |diff|",
            "errors",
        ),
        rows,
    ) + (f'<p class="meta">dropped (queue full): {esc(report.get("dropped", 0))}</p>')
    return page(f"Shadows: {model}", body, who=who, model=model)


def audit_page(events: Sequence[Doc], verify: Doc, who: str) -> str:
    intact = bool(verify.get("intact"))
    verdict = badge("chain verified: intact", "ok") if intact else badge("chain BROKEN", "bad")
    problems = "".join(f"<li>{esc(p)}</li>" for p in verify.get("problems", []))
    rows = [
        (
            esc(e.get("seq")),
            esc(str(e.get("at", ""))[:19]),
            esc(e.get("actor")),
            esc(e.get("action")),
            esc(e.get("subject")),
            esc(e.get("reason", "")),
            f"<code>{esc(str(e.get('hash', ''))[:12])}</code>",
        )
        for e in reversed(events)
    ]
    body = (
        f'<p id="verify">{verdict}</p>'
        + (f"<ul>{problems}</ul>" if problems else "")
        + table(("seq", "when (UTC)", "actor", "action", "subject", "reason", "hash"), rows)
    )
    return page("Audit trail", body, who=who)
