"""Prometheus view of the label-free performance estimates, read at scrape time.

Reads the monitor's latest snapshot (nothing on the request path). One series per loaded
version that has an estimator (registered with reference labels), labels ``model`` and
``version``:

* ``onnxgate_performance_estimated_accuracy``, ``..._accuracy_low`` and ``..._accuracy_high``
  (the 95 % interval), ``onnxgate_performance_estimated_roc_auc``,
  ``onnxgate_performance_estimated_f1``, ``onnxgate_performance_window_rows``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.monitoring.monitor import MonitorSnapshot

__all__ = ["PerformanceCollector"]

_SERIES = (
    ("accuracy", "estimated_accuracy", "Estimated accuracy of the outputs window (CBPE)."),
    ("accuracy_low", "estimated_accuracy_low", "Lower end of its 95% confidence interval."),
    ("accuracy_high", "estimated_accuracy_high", "Upper end of its 95% confidence interval."),
    ("roc_auc", "estimated_roc_auc", "Estimated ROC AUC (macro one-vs-rest if multiclass)."),
    ("f1", "estimated_f1", "Estimated F1 (positive class; macro if multiclass)."),
    ("rows", "window_rows", "Rows the estimate covers."),
)


class PerformanceCollector(Collector):
    """Scrape-time estimate gauges (see module docstring)."""

    def __init__(self, monitor: Callable[[], MonitorSnapshot]) -> None:
        self._monitor = monitor

    def collect(self) -> Iterable[Metric]:
        families = [
            GaugeMetricFamily(f"onnxgate_performance_{name}", doc, labels=["model", "version"])
            for _, name, doc in _SERIES
        ]
        snap = self._monitor()
        for model, versions in sorted(snap.versions.items()):
            for version, vd in sorted(versions.items()):
                if vd.performance is None:
                    continue
                est = vd.performance.estimate()
                for (attr, _, _), family in zip(_SERIES, families, strict=True):
                    value = float(getattr(est, attr))
                    if not math.isnan(value):
                        family.add_metric([model, version], value)
        yield from families
