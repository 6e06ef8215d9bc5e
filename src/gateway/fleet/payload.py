"""Evidence as JSON, and the fleet's merge of every process's evidence. Pure.

A payload is one process's cumulative :class:`~gateway.governor.evidence.Evidence` about
one version: traffic (requests, server errors, the latency histogram on the gateway's fixed
buckets, so histograms add up exactly), quality from delayed labels (with per-segment
counts), shadow comparison counts, and the latest drift verdict.

Merging sums the cumulative parts over every process that ever published (what a process
served before it died was still served), and ORs the drift verdicts of live processes only
(a verdict is about a current window; a stopped process's verdict is stale). A drift
verdict is merged rather than the binned counts behind it: traffic that drifts on one
process alone is then still seen, not diluted by the others' undrifted rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.governor.evidence import (
    Drift,
    Estimated,
    Evidence,
    Quality,
    SegmentCounts,
    ShadowAgreement,
    Traffic,
)

__all__ = ["decode", "encode", "merge"]

Payload = dict[str, Any]


def _bound(b: float) -> float | None:
    return None if math.isinf(b) else b  # JSON (and PostgreSQL's json) has no Infinity


def encode(ev: Evidence) -> Payload:
    out: Payload = {}
    if ev.traffic is not None:
        t = ev.traffic
        out["traffic"] = [t.requests, t.errors, [_bound(b) for b in t.bounds], list(t.counts)]
    if ev.quality is not None:
        q = ev.quality
        segments = {name: list(vars(s).values()) for name, s in q.segments.items()}
        out["quality"] = [q.predictions, q.labelled, q.correct, q.abs_error, q.abs_error_sq,
                          segments]  # fmt: skip
    if ev.shadow is not None:
        out["shadow"] = [ev.shadow.compared, ev.shadow.agreed]
    if ev.drift is not None:
        d = ev.drift
        out["drift"] = [list(d.input_features), d.output_drifted, list(d.output_features),
                        d.window_rows]  # fmt: skip
    if ev.estimated is not None:
        e = ev.estimated
        out["estimated"] = [e.rows, e.correct, e.correct_var]
    return out


def decode(payload: Mapping[str, Any]) -> Evidence:
    traffic = quality = shadow = drift = None
    if "traffic" in payload:
        req, err, bounds, counts = payload["traffic"]
        bounds = tuple(math.inf if b is None else float(b) for b in bounds)
        traffic = Traffic(int(req), int(err), bounds, tuple(int(c) for c in counts))
    if "quality" in payload:
        n, labelled, correct, abs_err, abs_sq, segments = payload["quality"]
        segs = {name: SegmentCounts(*(int(x) for x in c)) for name, c in segments.items()}
        quality = Quality(int(n), int(labelled), int(correct), float(abs_err), float(abs_sq),
                          segs)  # fmt: skip
    if "shadow" in payload:
        shadow = ShadowAgreement(*(int(x) for x in payload["shadow"]))
    if "drift" in payload:
        inputs, output_drifted, outputs, rows = payload["drift"]
        drift = Drift(tuple(inputs), bool(output_drifted), tuple(outputs), int(rows))
    estimated = None
    if "estimated" in payload:  # a label-free estimate's sums (see Estimated)
        rows, correct, var = payload["estimated"]
        estimated = Estimated(int(rows), float(correct), float(var))
    return Evidence(traffic, drift, shadow, quality, estimated=estimated)


def _add_traffic(a: Traffic | None, b: Traffic) -> Traffic:
    if a is None:
        return b
    if not a.counts or not b.counts or a.bounds != b.bounds:
        hist = (a.bounds, a.counts) if a.counts else (b.bounds, b.counts)
    else:
        hist = (a.bounds, tuple(x + y for x, y in zip(a.counts, b.counts, strict=True)))
    return Traffic(a.requests + b.requests, a.errors + b.errors, *hist)


def _add_quality(a: Quality | None, b: Quality) -> Quality:
    if a is None:
        return b
    segments = dict(a.segments)
    for name, seg in b.segments.items():
        base = segments.get(name, SegmentCounts())
        segments[name] = SegmentCounts(
            *(x + y for x, y in zip(vars(base).values(), vars(seg).values(), strict=True))
        )
    return Quality(a.predictions + b.predictions, a.labelled + b.labelled,
                   a.correct + b.correct, a.abs_error + b.abs_error,
                   a.abs_error_sq + b.abs_error_sq, segments)  # fmt: skip


def _add_drift(a: Drift | None, b: Drift) -> Drift:
    if a is None:
        return b
    return Drift(
        tuple(sorted(set(a.input_features) | set(b.input_features))),
        a.output_drifted or b.output_drifted,
        tuple(sorted(set(a.output_features) | set(b.output_features))),
        max(a.window_rows, b.window_rows),
    )


def merge(rows: Iterable[tuple[Evidence, bool]]) -> Evidence:
    """The fleet's evidence about one version from each process's (evidence, live)."""
    traffic: Traffic | None = None
    quality: Quality | None = None
    drift: Drift | None = None
    shadow: ShadowAgreement | None = None
    estimated: Estimated | None = None
    for ev, live in rows:
        if ev.traffic is not None:
            traffic = _add_traffic(traffic, ev.traffic)
        if ev.quality is not None:
            quality = _add_quality(quality, ev.quality)
        if ev.shadow is not None:
            s = shadow or ShadowAgreement()
            shadow = ShadowAgreement(s.compared + ev.shadow.compared, s.agreed + ev.shadow.agreed)
        if live and ev.drift is not None:
            drift = _add_drift(drift, ev.drift)
        if live and ev.estimated is not None:  # like drift: about current windows
            estimated = ev.estimated if estimated is None else estimated.plus(ev.estimated)
    return Evidence(traffic, drift, shadow, quality, estimated=estimated)
