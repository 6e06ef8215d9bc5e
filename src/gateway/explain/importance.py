"""Per-version global importance: mean |attribution| per feature over sampled live traffic.

:meth:`ImportanceSampler.observe` is a tap (:mod:`gateway.serving.taps`): on the tap
thread it only checks a token bucket (``rate`` requests per second across every model) and
offers the request to its :class:`~gateway.sidework.SideWork` (a bounded queue; a full one
drops the request and counts it, ``onnxgate_explain_sample_dropped_total``). Its one
worker thread drains the queue and explains the rows like the ``Explain`` RPC does (same
version model, background and method, default output), so nothing here runs on the predict
path or takes the RPC's executor slots. A version that cannot be explained (no reference
sample, inputs that are not feature rows, no shap) is remembered and skipped.

The importances are cumulative per version; :class:`ImportanceEvidence` hands them to the
governor (champion vs candidate: ``importance_drift``), :class:`ImportanceCollector`
exports the top-K features per version as Prometheus gauges.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING

import numpy as np
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.domain import Tensors
from gateway.errors import GatewayError
from gateway.explain.outputs import choose_output
from gateway.governor.evidence import Evidence, Importance
from gateway.sidework import SideWork
from registry.errors import RegistryUnavailable

if TYPE_CHECKING:
    from gateway.explain.service import Explainer
    from gateway.serving.runtime import LoadedVersion
    from gateway.serving.taps import TapRecord

__all__ = ["ImportanceCollector", "ImportanceEvidence", "ImportanceSampler"]

log = logging.getLogger(__name__)

Find = Callable[[str, str], "LoadedVersion"]


class ImportanceSampler:
    """See the module docstring."""

    def __init__(
        self,
        explainer: Explainer,
        find: Find,
        registry: CollectorRegistry,
        *,
        rate: float = 1.0,
        rows: int = 4,
        capacity: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or rows < 1 or capacity < 1:
            raise ValueError("rate must be > 0, rows and capacity >= 1")
        self._explainer = explainer
        self._find = find
        self._rate = rate
        self._rows = rows
        self._clock = clock
        self._tokens = 1.0
        self._refilled = clock()
        self._lock = threading.Lock()
        self._sums: dict[tuple[str, str], tuple[tuple[str, ...], np.ndarray, int]] = {}
        self._skipped: dict[tuple[str, str], str] = {}
        self._registry_away = False  # one log line per outage, not one per sample
        self.processed = 0
        self.dropped = Counter(
            "onnxgate_explain_sample_dropped",
            "Requests sampled for global importance but dropped (its queue was full).",
            registry=registry,
        )
        # Fed by the tap thread alone; each sample wakes the worker (one explanation can
        # take a while, so there is no point polling).
        self._work: SideWork[tuple[str, str, Tensors]] = SideWork(
            "onnxgate-importance",
            self._process_all,
            capacity=capacity,
            poll_s=1.0,
            on_drop=self.dropped.inc,
            wake_on_offer=True,
            drain_on_close=False,
        )

    # -- tap (tap thread) ----------------------------------------------------------------

    def observe(self, record: TapRecord) -> None:
        key = (record.model, record.version)
        if key in self._skipped:
            return
        now = self._clock()
        self._tokens = min(1.0, self._tokens + (now - self._refilled) * self._rate)
        self._refilled = now
        if self._tokens < 1.0:
            return
        self._tokens -= 1.0
        self._work.offer((record.model, record.version, record.inputs))

    # -- worker --------------------------------------------------------------------------

    def start(self) -> None:
        self._work.start()

    def close(self, timeout: float = 10.0) -> None:
        self._work.close(timeout)

    def _process_all(self, samples: list[tuple[str, str, Tensors]]) -> None:
        for sample in samples:
            if self._work.stopping:
                return  # NOTE: samples left unexplained at shutdown are simply lost
            self.process(*sample)

    def process(self, model: str, version: str, inputs: Tensors) -> None:
        """Explain a few rows of one sampled request and add them to the version's sums."""
        key = (model, version)
        try:
            vm = self._explainer.version_model(self._find(model, version))
            rows = vm.rows_of(inputs)[: self._rows]
            choice = choose_output(vm.background_outputs)
            _, attrs, _ = vm.explain(
                rows, choice, nsamples=self._explainer.nsamples, pool=self._explainer.processes
            )
        except RegistryUnavailable as exc:
            # Transient: the sample is lost, the version is not given up on.
            if not self._registry_away:
                log.warning("global importance paused: %s", exc)
            self._registry_away = True
            return
        except GatewayError as exc:
            self._skipped[key] = exc.message
            log.info("global importance skips %s:%s: %s", model, version, exc.message)
            return
        except Exception:
            self._skipped[key] = "failed"
            log.exception("global importance of %s:%s failed; skipping it", model, version)
            return
        self._registry_away = False
        with self._lock:
            features, sums, n = self._sums.get(key, (vm.features, np.zeros(len(vm.features)), 0))
            self._sums[key] = (features, sums + np.abs(attrs).sum(axis=0), n + rows.shape[0])
            self.processed += 1
        self._explainer.counters.rows.labels(model, version, "sample").inc(rows.shape[0])

    # -- reading -------------------------------------------------------------------------

    def importance(self, model: str, version: str) -> Importance | None:
        with self._lock:
            found = self._sums.get((model, version))
        if found is None or found[2] == 0:
            return None
        features, sums, n = found
        return Importance(features, tuple(float(v) for v in sums / n), n)

    def snapshot(self) -> dict[tuple[str, str], Importance]:
        with self._lock:
            keys = list(self._sums)
        out = {}
        for model, version in keys:
            imp = self.importance(model, version)
            if imp is not None:
                out[(model, version)] = imp
        return out


class ImportanceEvidence:
    """The governor's evidence source for ``importance_drift`` (see gates.py)."""

    def __init__(self, lookup: Callable[[str, str], Importance | None]) -> None:
        self._lookup = lookup

    def evidence(self, model: str, versions: Collection[str]) -> dict[str, Evidence]:
        out = {}
        for version in versions:
            imp = self._lookup(model, version)
            if imp is not None:
                out[version] = Evidence(importance=imp)
        return out


class ImportanceCollector(Collector):
    """Scrape-time gauges: the top-K features' mean |attribution| per version."""

    def __init__(self, snapshot: Callable[[], dict[tuple[str, str], Importance]], top_k: int):
        self._snapshot = snapshot
        self._top_k = top_k

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily(
            "onnxgate_explain_importance",
            "Mean |attribution| of a feature over sampled traffic (top-K per version).",
            labels=["model", "version", "feature"],
        )
        rows = GaugeMetricFamily(
            "onnxgate_explain_importance_rows",
            "Sampled rows the version's importances are computed from.",
            labels=["model", "version"],
        )
        for (model, version), imp in sorted(self._snapshot().items()):
            rows.add_metric([model, version], float(imp.rows))
            order = sorted(range(len(imp.features)), key=lambda j: -imp.mean_abs[j])
            for j in order[: self._top_k]:
                gauge.add_metric([model, version, imp.features[j]], imp.mean_abs[j])
        yield gauge
        yield rows
