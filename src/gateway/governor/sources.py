"""Where the governor's evidence comes from: the :class:`EvidenceSource` protocol and the
adapters over what the gateway already measures.

A source answers, for one model and its versions, whatever parts of
:class:`~gateway.governor.evidence.Evidence` it knows; the loop overlays the answers of every
source (later ones win for a part both know). Counts are cumulative (the loop windows
them). Sources are called on the event loop, so they must only read in-memory state.

* :class:`MetricsEvidence` -- requests, server-side errors and the latency histogram,
  read from each version's one counter set (:class:`gateway.metrics.VersionCounters`: the
  numbers Prometheus exports and ModelStatistics reports; summed over the roles a version
  has had).
* :class:`FeedbackEvidence` -- outcome quality and segment counts from the feedback store.
* :class:`MonitorEvidence` -- drift verdicts and shadow agreement from the drift monitor
  (:mod:`gateway.monitoring.monitor`) and the shadow scorer (:mod:`gateway.monitoring.shadow`)
  snapshots.
* :class:`ContractEvidence` -- data-contract violation counts per version
  (:class:`gateway.monitoring.contract_guard.ContractGuard`'s tallies).
* :class:`DriftEvidence` -- drift verdicts from any lookup of
  :class:`~gateway.monitoring.drift.DriftReport`s per version (tests, other monitors).

Errors are the codes that say the version failed the caller (INTERNAL, UNKNOWN,
UNAVAILABLE, DATA_LOSS, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED); a client's bad request
(INVALID_ARGUMENT, NOT_FOUND, ...) counts neither as a request nor as an error.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Protocol

from gateway.governor.evidence import (
    ContractCounts,
    Drift,
    Estimated,
    Evidence,
    ShadowAgreement,
    Traffic,
)
from gateway.governor.feedback import FeedbackStore
from gateway.metrics import GatewayMetrics

if TYPE_CHECKING:  # these pull in scipy and the catalog; only attributes are read here
    from gateway.monitoring.drift import DriftReport
    from gateway.monitoring.monitor import MonitorSnapshot
    from gateway.monitoring.shadow import ShadowSnapshot

__all__ = [
    "SERVER_ERROR_CODES",
    "ContractEvidence",
    "DriftEvidence",
    "EvidenceSource",
    "FeedbackEvidence",
    "MetricsEvidence",
    "MonitorEvidence",
    "drift_from_reports",
]

SERVER_ERROR_CODES = frozenset(
    {"INTERNAL", "UNKNOWN", "UNAVAILABLE", "DATA_LOSS", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"}
)


class EvidenceSource(Protocol):
    """Anything that can tell the governor about a model's versions."""

    def evidence(self, model: str, versions: Collection[str]) -> Mapping[str, Evidence]: ...


class MetricsEvidence:
    """Request, error and latency evidence from :class:`GatewayMetrics`."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics

    def evidence(self, model: str, versions: Collection[str]) -> dict[str, Evidence]:
        counters = self._metrics.versions_of(model)
        out: dict[str, Evidence] = {}
        for version in versions:
            version_counters = counters.get(version)
            if version_counters is None:
                out[version] = Evidence(traffic=Traffic(0, 0, (), ()))
                continue
            t = version_counters.traffic()
            n_err = sum(n for code, n in t.errors.items() if code in SERVER_ERROR_CODES)
            traffic = Traffic(t.ok + n_err, n_err, t.bounds, t.counts)
            out[version] = Evidence(traffic=traffic)
        return out


class FeedbackEvidence:
    """Outcome quality (delayed labels) and per-segment counts from the feedback store."""

    def __init__(self, store: FeedbackStore) -> None:
        self._store = store

    def evidence(self, model: str, versions: Collection[str]) -> dict[str, Evidence]:
        quality = self._store.quality(model)
        return {v: Evidence(quality=quality[v]) for v in versions if v in quality}


# model -> {version: (rows checked, rows violating, violations per feature)}
TallyLookup = Callable[[str], Mapping[str, tuple[int, int, Mapping[str, int]]]]


class ContractEvidence:
    """Cumulative data-contract violation counts from a lookup of each model's tallies."""

    def __init__(self, tallies: TallyLookup) -> None:
        self._tallies = tallies

    def evidence(self, model: str, versions: Collection[str]) -> dict[str, Evidence]:
        return {
            v: Evidence(contracts=ContractCounts(rows, bad, dict(features)))
            for v, (rows, bad, features) in self._tallies(model).items()
            if v in versions
        }


def drift_from_reports(inputs: DriftReport | None, outputs: DriftReport | None) -> Drift:
    """The governor's view of a version's latest input and output drift reports."""
    rows = max((r.window_rows for r in (inputs, outputs) if r is not None), default=0)
    return Drift(
        input_features=tuple(inputs.features) if inputs is not None else (),
        output_drifted=bool(outputs is not None and outputs.drifted),
        output_features=tuple(outputs.features) if outputs is not None else (),
        window_rows=rows,
    )


ReportLookup = Callable[[str, str], "tuple[DriftReport | None, DriftReport | None] | None"]


class DriftEvidence:
    """Drift verdicts from a lookup ``(model, version) -> (inputs, outputs) reports``
    (None when the version has no report yet, e.g. its window is still filling)."""

    def __init__(self, lookup: ReportLookup) -> None:
        self._lookup = lookup

    def evidence(self, model: str, versions: Collection[str]) -> dict[str, Evidence]:
        out: dict[str, Evidence] = {}
        for version in versions:
            reports = self._lookup(model, version)
            if reports is not None:
                out[version] = Evidence(drift=drift_from_reports(*reports))
        return out


class MonitorEvidence:
    """Drift verdicts (per version's latest window) and shadow agreement (cumulative, over
    every served version a shadow was compared with) from the monitoring snapshots."""

    def __init__(
        self,
        drift: Callable[[], MonitorSnapshot] | None,
        shadow: Callable[[], ShadowSnapshot] | None,
    ) -> None:
        self._drift = drift
        self._shadow = shadow

    def evidence(self, model: str, versions: Collection[str]) -> dict[str, Evidence]:
        out: dict[str, Evidence] = {}
        if self._drift is not None:
            snap = self._drift()
            for version in versions:
                vd = snap.get(model, version)
                if vd is not None and vd.performance is not None:
                    p = vd.performance
                    est = Estimated(p.rows, p.correct, p.correct_var)
                    out[version] = Evidence(estimated=est)
                if vd is None or (vd.inputs is None and vd.outputs is None):
                    continue  # no profile or too few rows yet: no verdict
                inputs = vd.inputs.report if vd.inputs is not None else None
                outputs = vd.outputs.report if vd.outputs is not None else None
                drift = Evidence(drift=drift_from_reports(inputs, outputs))
                out[version] = out.get(version, Evidence()).merged(drift)
        if self._shadow is not None:
            compared: dict[str, int] = {}
            agreed: dict[str, int] = {}
            for r in self._shadow().for_model(model):
                if r.version in versions and r.compared_rows:
                    compared[r.version] = compared.get(r.version, 0) + r.compared_rows
                    agree = round(r.agreement * r.compared_rows)
                    agreed[r.version] = agreed.get(r.version, 0) + agree
            for version, n in compared.items():
                shadow = ShadowAgreement(n, agreed[version])
                out[version] = out.get(version, Evidence()).merged(Evidence(shadow=shadow))
        return out
