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

Each part does its own arithmetic and JSON (:class:`~gateway.governor.evidence.EvidencePart`);
this module iterates :data:`~gateway.governor.evidence.PARTS`, so a new part is merged and
stored without a line here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gateway.governor.evidence import PARTS, Evidence, EvidencePart

__all__ = ["decode", "encode", "fold", "less", "merge"]

Payload = dict[str, Any]


def encode(ev: Evidence) -> Payload:
    """Each known part's JSON form under its key (every part of ``PARTS``)."""
    out: Payload = {}
    for kind in PARTS:
        part = ev.part(kind.key)
        if part is not None:
            out[kind.key] = part.encode()
    return out


def decode(payload: Mapping[str, Any]) -> Evidence:
    """:func:`encode`'s inverse; keys of parts this process does not know are ignored."""
    return Evidence.of({k.key: k.decode(payload[k.key]) for k in PARTS if k.key in payload})


def merge(rows: Iterable[tuple[Evidence, bool]]) -> Evidence:
    """The fleet's evidence about one version from each process's (evidence, live)."""
    total: dict[str, EvidencePart] = {}
    for ev, live in rows:
        for kind in PARTS:
            part = ev.part(kind.key)
            if part is None or (kind.live_only and not live):
                continue
            have = total.get(kind.key)
            total[kind.key] = part if have is None else have.plus(part)
    return Evidence.of(total)


def fold(payloads: Iterable[Mapping[str, Any]]) -> Payload:
    """Payloads of processes that are gone, merged into one (for ``registry.FOLDED``): no
    process is live, so the sum over the fleet is the same with the one or the many."""
    return encode(merge((decode(p), False) for p in payloads))


def less(ev: Evidence, base: Evidence) -> Evidence:
    """``ev`` less ``base``, part by part (each part's own ``minus``)."""
    out: dict[str, EvidencePart] = {}
    for kind in PARTS:
        part, was = ev.part(kind.key), base.part(kind.key)
        if part is not None:
            out[kind.key] = part if was is None else part.minus(was)
    return Evidence.of(out)
