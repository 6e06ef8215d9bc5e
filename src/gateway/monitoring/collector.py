"""Prometheus view of drift and shadow scoring, read from snapshots at scrape time.

Nothing on the request path or in the monitor's worker touches these metrics: the
collector reads the latest :class:`~gateway.monitoring.monitor.MonitorSnapshot` and
:class:`~gateway.monitoring.shadow.ShadowSnapshot` when Prometheus scrapes.

Label sets stay bounded: model and version are those loaded; ``side`` is ``inputs`` or
``outputs``; per-feature series exist for at most ``top_k`` features per version and side
(drifted features first, then by PSI), so a 500-feature model exports ``top_k`` series per
statistic, not 500.

Series (gauges unless noted):

* ``onnxgate_drift_verdict{model,version,side}`` 1 if any feature drifted, else 0;
  ``onnxgate_drift_drifted_features{...}`` how many; ``onnxgate_drift_window_rows{...}``.
* ``onnxgate_drift_feature_drifted{model,version,side,feature}`` 0/1, and one gauge per
  row of :data:`~gateway.monitoring.statistics.DRIFT_STATISTICS` that names a metric, same
  labels: ``onnxgate_drift_psi``, ``onnxgate_drift_ks_statistic``,
  ``onnxgate_drift_ks_pvalue_adjusted`` (the corrected p-value of features the verdict tests
  by KS), ``onnxgate_drift_chi2_pvalue_adjusted`` (of categorical features it tests by
  chi-square), ``onnxgate_drift_js_distance``, ``onnxgate_drift_wasserstein_normalized``,
  ``onnxgate_drift_unseen_share`` (categoricals).
* ``onnxgate_monitor_enqueued_total`` / ``onnxgate_monitor_dropped_total`` (counters),
  ``onnxgate_monitor_queue_depth``.
* ``onnxgate_shadow_agreement_ratio{model,version,served_version}`` (classifiers),
  ``onnxgate_shadow_mean_abs_diff``, ``onnxgate_shadow_max_abs_diff``,
  ``onnxgate_shadow_requests_total``, ``onnxgate_shadow_errors_total``,
  ``onnxgate_shadow_latency_seconds`` (summary: _sum and _count), and
  ``onnxgate_shadow_dropped_total{model}``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
import numpy.typing as npt
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from gateway.monitoring.drift import DriftReport
from gateway.monitoring.monitor import MonitorSnapshot
from gateway.monitoring.shadow import ShadowSnapshot
from gateway.monitoring.statistics import DRIFT_STATISTICS

__all__ = ["MonitoringCollector", "top_features"]

# The drift statistics vocabulary's rows that Prometheus exports (per top-K feature).
_FEATURE_STATS = tuple(row for row in DRIFT_STATISTICS if row.metric is not None)


def top_features(report: DriftReport, k: int) -> npt.NDArray[np.intp]:
    """Indices of at most ``k`` features: drifted first, then by PSI (NaN last)."""
    psi = np.where(np.isnan(report.psi), -np.inf, report.psi)
    order: npt.NDArray[np.intp] = np.lexsort((-psi, ~report.drifted_mask))
    return order[:k]


class MonitoringCollector(Collector):
    """Scrape-time drift and shadow series (see module docstring)."""

    def __init__(
        self,
        monitor: Callable[[], MonitorSnapshot] | None,
        shadow: Callable[[], ShadowSnapshot],
        *,
        top_k: int = 20,
    ) -> None:
        self._monitor = monitor
        self._shadow = shadow
        self._top_k = top_k

    def collect(self) -> Iterable[Metric]:
        if self._monitor is not None:
            yield from self._drift(self._monitor())
        yield from self._shadows(self._shadow())

    def _drift(self, snap: MonitorSnapshot) -> Iterable[Metric]:
        side_labels = ["model", "version", "side"]
        feature_labels = [*side_labels, "feature"]
        verdict = GaugeMetricFamily(
            "onnxgate_drift_verdict",
            "1 if any feature of this version and side drifted (corrected test and effect size).",
            labels=side_labels,
        )
        n_drifted = GaugeMetricFamily(
            "onnxgate_drift_drifted_features", "Features that drifted.", labels=side_labels
        )
        window = GaugeMetricFamily(
            "onnxgate_drift_window_rows",
            "Rows in the window drift was computed on.",
            labels=side_labels,
        )
        feature_verdict = GaugeMetricFamily(
            "onnxgate_drift_feature_drifted",
            "1 if this feature drifted, else 0 (top-K features per version and side).",
            labels=feature_labels,
        )
        stats = [
            GaugeMetricFamily(row.metric or "", row.help, labels=feature_labels)
            for row in _FEATURE_STATS
        ]
        for model, versions in sorted(snap.versions.items()):
            for version, vd in sorted(versions.items()):
                for side_name in ("inputs", "outputs"):
                    side = vd.side(side_name)
                    if side is None:
                        continue
                    r = side.report
                    labels = [model, version, side_name]
                    verdict.add_metric(labels, 1.0 if r.drifted else 0.0)
                    n_drifted.add_metric(labels, float(len(r.features)))
                    window.add_metric(labels, float(r.window_rows))
                    for i in top_features(r, self._top_k).tolist():
                        fl = [*labels, r.feature_names[i]]
                        feature_verdict.add_metric(fl, 1.0 if r.drifted_mask[i] else 0.0)
                        for row, family in zip(_FEATURE_STATS, stats, strict=True):
                            value = float(r.value(row.name)[i])
                            if not math.isnan(value):
                                family.add_metric(fl, value)
        yield from (verdict, n_drifted, window, feature_verdict, *stats)
        yield CounterMetricFamily(
            "onnxgate_monitor_enqueued",
            "Requests (and shadow results) queued for drift monitoring.",
            value=snap.enqueued,
        )
        yield CounterMetricFamily(
            "onnxgate_monitor_dropped",
            "Requests not monitored because the monitoring queue was full.",
            value=snap.dropped,
        )
        yield GaugeMetricFamily(
            "onnxgate_monitor_queue_depth",
            "Requests waiting for the monitor.",
            value=snap.queue_depth,
        )

    def _shadows(self, snap: ShadowSnapshot) -> Iterable[Metric]:
        labels = ["model", "version", "served_version"]
        agreement = GaugeMetricFamily(
            "onnxgate_shadow_agreement_ratio",
            "Share of mirrored rows where the shadow's label equals the served label.",
            labels=labels,
        )
        mean_diff = GaugeMetricFamily(
            "onnxgate_shadow_mean_abs_diff",
            "Mean absolute difference of the first float output, shadow vs served.",
            labels=labels,
        )
        max_diff = GaugeMetricFamily(
            "onnxgate_shadow_max_abs_diff",
            "Largest absolute difference of the first float output, shadow vs served.",
            labels=labels,
        )
        requests = CounterMetricFamily(
            "onnxgate_shadow_requests", "Mirrored calls scored by the shadow.", labels=labels
        )
        errors = CounterMetricFamily(
            "onnxgate_shadow_errors", "Mirrored calls the shadow failed on.", labels=labels
        )
        latency = SummaryMetricFamily(
            "onnxgate_shadow_latency_seconds", "Shadow inference time per call.", labels=labels
        )
        for r in snap.reports:
            lv = [r.model, r.version, r.served_version]
            if not math.isnan(r.agreement):
                agreement.add_metric(lv, r.agreement)
            if not math.isnan(r.mean_abs_diff):
                mean_diff.add_metric(lv, r.mean_abs_diff)
                max_diff.add_metric(lv, r.max_abs_diff)
            requests.add_metric(lv, r.requests)
            errors.add_metric(lv, r.errors)
            latency.add_metric(lv, count_value=r.requests, sum_value=r.latency_sum_s)
        dropped = CounterMetricFamily(
            "onnxgate_shadow_dropped",
            "Mirrored calls dropped because the shadow queue was full.",
            labels=["model"],
        )
        for model, n in sorted(snap.dropped.items()):
            dropped.add_metric([model], n)
        yield from (agreement, mean_diff, max_diff, requests, errors, latency, dropped)
