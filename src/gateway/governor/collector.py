"""Prometheus view of the governor: state, step, gate values, decisions, feedback joins.

Gauges are read at scrape time from the governor's last decision per model (on the
leader; other gateways export the decision counters only), so evaluating costs nothing
extra; decisions are counted as they are made.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.governor.decide import Decision
from gateway.governor.feedback import FeedbackStore
from gateway.governor.gates import GateStatus
from gateway.governor.loop import Governor
from gateway.governor.rollout import Mode
from gateway.metrics import GatewayMetrics

__all__ = ["GovernorCollector", "GovernorMetrics"]

_PASSED = {GateStatus.PASS: 1.0, GateStatus.FAIL: 0.0}


class GovernorCollector(Collector):
    """Scrape-time gauges over :attr:`Governor.last` and the feedback store's counters."""

    def __init__(self, governor: Governor, feedback: FeedbackStore) -> None:
        self._governor = governor
        self._feedback = feedback

    def collect(self) -> Iterable[Metric]:
        leader = GaugeMetricFamily(
            "onnxgate_governor_leader", "1 while this gateway holds the governor lease."
        )
        leader.add_metric([], 1.0 if self._governor.is_leader else 0.0)
        mode = GaugeMetricFamily(
            "onnxgate_governor_mode",
            "The governor's mode per model (1 = current).",
            labels=["model", "mode"],
        )
        step = GaugeMetricFamily(
            "onnxgate_governor_step",
            "Canary step of the candidate (1-based; 0 below the first).",
            labels=["model", "candidate"],
        )
        failures = GaugeMetricFamily(
            "onnxgate_governor_consecutive_failures",
            "Consecutive soft-gate failures.",
            labels=["model"],
        )
        value = GaugeMetricFamily(
            "onnxgate_governor_gate_value",
            "A gate's value at the last evaluation.",
            labels=["model", "version", "gate"],
        )
        threshold = GaugeMetricFamily(
            "onnxgate_governor_gate_threshold",
            "A gate's threshold.",
            labels=["model", "version", "gate"],
        )
        passed = GaugeMetricFamily(
            "onnxgate_governor_gate_passed",
            "1 pass, 0 fail (absent while pending).",
            labels=["model", "version", "gate"],
        )
        for model, d in sorted(self._governor.last.items()):
            for m in Mode:
                mode.add_metric([model, m.value], 1.0 if m is d.mode else 0.0)
            step.add_metric([model, d.candidate or ""], float(d.state.step + 1))
            failures.add_metric([model], float(d.state.consecutive_failures))
            for g in d.gates:
                labels = [model, g.version, g.name]
                threshold.add_metric(labels, g.threshold)
                if g.value is not None:
                    value.add_metric(labels, g.value)
                if g.status in _PASSED:
                    passed.add_metric(labels, _PASSED[g.status])
        feedback = CounterMetricFamily(
            "onnxgate_feedback_labels",
            "Delayed labels received, by outcome.",
            labels=["model", "outcome"],
        )
        for (model, outcome), count in sorted(self._feedback.outcomes.items()):
            feedback.add_metric([model, outcome], float(count))
        kept = GaugeMetricFamily(
            "onnxgate_feedback_records_bytes",
            "Estimated bytes of the predictions (and inputs) kept for label joins and Explain",
        )
        kept.add_metric([], float(self._feedback.bytes))
        bound = GaugeMetricFamily(
            "onnxgate_feedback_records_max_bytes",
            "The bound on those bytes (feedback_max_bytes); the oldest go first beyond it",
        )
        bound.add_metric([], float(self._feedback.max_bytes))
        yield from (leader, mode, step, failures, value, threshold, passed, feedback, kept, bound)


class GovernorMetrics:
    """Registers the collector and counts decisions on ``metrics``' registry."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self.decisions = Counter(
            "onnxgate_governor_decisions",
            "Governor decisions by model, kind and mode.",
            ["model", "kind", "mode"],
            registry=metrics.registry,
        )
        self._metrics = metrics

    def attach(self, governor: Governor, feedback: FeedbackStore) -> None:
        self._metrics.add_collector(GovernorCollector(governor, feedback))

    def on_decision(self, decision: Decision) -> None:
        self.decisions.labels(decision.model, decision.kind.value, decision.mode.value).inc()
