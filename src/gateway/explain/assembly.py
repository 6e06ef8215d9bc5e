"""Everything explanations add to a gateway, built from :class:`Settings` in one call (so
the composition root stays one block longer, not forty lines)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.explain.counters import ExplainCounters
from gateway.explain.importance import ImportanceCollector, ImportanceEvidence, ImportanceSampler
from gateway.explain.service import Explainer, Lookup
from gateway.governor.evidence import Importance
from gateway.governor.sources import EvidenceSource
from gateway.metrics import GatewayMetrics
from gateway.sections import ExplainSettings
from gateway.serving.catalog import Catalog
from gateway.serving.taps import Tap
from registry import Registry

__all__ = ["Explanations", "build_explanations"]


@dataclass
class Explanations:
    explainer: Explainer
    importance: ImportanceSampler | None

    def taps(self) -> dict[str, Tap]:
        return {} if self.importance is None else {"importance": self.importance.observe}

    def evidence(self) -> list[EvidenceSource]:
        if self.importance is None:
            return []
        return [ImportanceEvidence(self.importance.importance)]

    def snapshot(self) -> dict[tuple[str, str], Importance]:
        return {} if self.importance is None else self.importance.snapshot()

    def start(self) -> None:
        if self.importance is not None:
            self.importance.start()

    def close(self) -> None:
        self.explainer.close()
        if self.importance is not None:
            self.importance.close()


def build_explanations(
    settings: ExplainSettings,
    catalog: Catalog,
    registry: Registry,
    metrics: GatewayMetrics,
    *,
    lookup: Lookup,
) -> Explanations:
    explainer = Explainer(
        catalog,
        registry,
        ExplainCounters(metrics.registry),
        threads=settings.explain_threads,
        processes=settings.explain_processes,
        queue=settings.explain_queue,
        background=settings.explain_background,
        max_rows=settings.explain_max_rows,
        lookup=lookup,
    )
    importance = None
    if settings.explain_sample_rate > 0:
        importance = ImportanceSampler(
            explainer,
            lambda model, version: catalog.find(model, version).loaded,
            metrics.registry,
            rate=settings.explain_sample_rate,
            rows=settings.explain_sample_rows,
            capacity=settings.explain_sample_queue,
        )
        metrics.add_collector(ImportanceCollector(importance.snapshot, settings.monitor_top_k))
    return Explanations(explainer, importance)
