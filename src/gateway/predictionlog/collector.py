"""Prometheus view of the prediction log, read at scrape time.

* ``onnxgate_prediction_log_records_total{sink,outcome}`` (counter): records each sink
  kept (``written``) or gave up on (``dropped``: disk full, receiver down, buffer full).
* ``onnxgate_prediction_log_sampled_out_total`` (counter): records left out by sampling.

Records the data plane could not even enqueue are the tap queue's drops, counted with every
tap's in ``onnxgate_tap_dropped_total`` (the log shares that one queue).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from gateway.predictionlog.journal import PredictionLog

__all__ = ["PredictionLogCollector"]


class PredictionLogCollector(Collector):
    """See the module docstring."""

    def __init__(self, log: PredictionLog) -> None:
        self._log = log

    def collect(self) -> Iterable[Metric]:
        records = CounterMetricFamily(
            "onnxgate_prediction_log_records",
            "Prediction-log records kept (written) or given up (dropped), per sink.",
            labels=["sink", "outcome"],
        )
        for sink in self._log.sinks:
            records.add_metric([sink.name, "written"], sink.written)
            records.add_metric([sink.name, "dropped"], sink.dropped)
        yield records
        yield CounterMetricFamily(
            "onnxgate_prediction_log_sampled_out",
            "Requests left out of the prediction log by prediction_log_sample.",
            value=self._log.sampled_out,
        )
