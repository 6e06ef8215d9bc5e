"""Every metric family on the parent's ``/metrics`` under ``serve --workers N``.

prometheus_client's multiprocess files carry only plain counters, gauges and histograms;
the families that collectors compute at scrape time (governor, drift, shadow, fleet,
feedback, explain, cache, taps) live in each worker's memory. So each worker also serves
its whole registry on a loopback port it writes to ``worker-<i>.port`` in the metrics
directory, and at each scrape the parent reads every worker and merges what its own
collectors do not already export: counters, histograms and summaries are summed (the same
labels are the same series); gauges and everything else get a ``worker`` label, since a sum
of a p-value or a leader flag means nothing.
"""

from __future__ import annotations

import logging
import os
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

__all__ = ["WorkerFamilies", "announce_port"]

log = logging.getLogger(__name__)

_SUMMED = {"counter", "histogram", "summary"}
_TIMEOUT_S = 2.0


def announce_port(metrics_dir: str, index: int, port: int) -> None:
    """Tell the parent where worker ``index`` serves its registry (atomically)."""
    target = Path(metrics_dir) / f"worker-{index}.port"
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(str(port))
    os.replace(tmp, target)


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=_TIMEOUT_S) as r:
        body: bytes = r.read()
    return body.decode()


class WorkerFamilies(Collector):
    """The workers' families that ``exported()`` (the parent's own) does not name."""

    def __init__(self, metrics_dir: str, exported: Callable[[], set[str]]) -> None:
        self._dir = Path(metrics_dir)
        self._exported = exported

    def _texts(self) -> Iterator[tuple[str, str]]:
        for path in sorted(self._dir.glob("worker-*.port")):
            worker = path.stem.removeprefix("worker-")
            try:
                yield worker, _scrape(int(path.read_text()))
            except (OSError, ValueError) as exc:  # a worker starting, stopping or gone
                log.debug("worker %s metrics unavailable: %s", worker, exc)

    def collect(self) -> Iterator[Metric]:
        skip = self._exported()
        merged: dict[str, Metric] = {}
        sums: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
        for worker, text in self._texts():
            for family in text_string_to_metric_families(text):
                if family.name in skip:
                    continue
                out = merged.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type)
                )
                if family.type in _SUMMED:
                    acc = sums.setdefault(family.name, {})
                    for s in family.samples:
                        if s.name.endswith("_created"):
                            continue  # per-process creation times do not add up
                        key = (s.name, tuple(sorted(s.labels.items())))
                        acc[key] = acc.get(key, 0.0) + s.value
                else:
                    for s in family.samples:
                        out.add_sample(s.name, {**s.labels, "worker": worker}, s.value)
        for name, acc in sums.items():
            for (sample, labels), value in acc.items():
                merged[name].add_sample(sample, dict(labels), value)
        yield from merged.values()
