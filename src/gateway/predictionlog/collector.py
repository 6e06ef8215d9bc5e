"""Prometheus view of the prediction log, read at scrape time.

* ``onnxgate_prediction_log_records_total{sink,outcome}`` (counter): records each sink
  kept (``written``) or gave up on (``dropped``: disk full, receiver down, buffer full).
* ``onnxgate_prediction_log_sampled_out_total`` (counter): records left out by sampling.
* ``onnxgate_prediction_log_upload_waiting{sink}`` (gauge) and
  ``onnxgate_prediction_log_upload_failures_total{sink}`` (counter), for ``s3://`` sinks:
  closed files still in the spool, and uploads that failed (each retried): a bucket out of
  reach shows here while the spool fills.

Records the data plane could not even enqueue are the tap queue's drops, counted with every
tap's in ``onnxgate_tap_dropped_total`` (the log shares that one queue).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
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
        uploading = [s for s in self._log.sinks if hasattr(s, "waiting")]
        if not uploading:
            return
        waiting = GaugeMetricFamily(
            "onnxgate_prediction_log_upload_waiting",
            "Closed prediction-log files in the local spool, not uploaded yet.",
            labels=["sink"],
        )
        failures = CounterMetricFamily(
            "onnxgate_prediction_log_upload_failures",
            "Prediction-log file uploads that failed (the file stays and is retried).",
            labels=["sink"],
        )
        for sink in uploading:
            waiting.add_metric([sink.name], getattr(sink, "waiting", 0))
            failures.add_metric([sink.name], getattr(sink, "upload_failures", 0))
        yield waiting
        yield failures
