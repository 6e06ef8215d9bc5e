"""This process as a member of the fleet: it publishes its evidence and predictions, reads
the fleet's merged evidence, and joins labels to predictions other processes made.

Every ``fleet_publish_s``, on its own thread (never the request path), the node (and every
:data:`SHARE_S` it shares the predictions waiting, step 3 alone):

1. renews its heartbeat lease (``fleet_lease_s``);
2. reads this process's cumulative evidence from the local sources (the very counters
   Prometheus exports, the feedback store, the monitor) and overwrites its rows for the
   versions whose evidence changed (idempotent: see :mod:`registry.fleet_store`);
3. writes the predictions waiting in its outbox (a bounded :class:`~gateway.sidework.SideWork`:
   a full outbox drops and counts; so does a prediction that is not JSON, alone) in batches
   to the shared prediction table, and now and then expires old ones;
4. reads every process's rows and merges them (:mod:`gateway.fleet.payload`): that merge is
   what :meth:`evidence` answers, so the governor leader judges the whole fleet's traffic.

The node is also the governor's :class:`~gateway.governor.evidence_windows.WindowStore`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from gateway.concurrency import run_blocking
from gateway.fleet.payload import decode, encode, fold, less, merge
from gateway.governor.evidence import Evidence
from gateway.governor.feedback import FeedbackStore
from gateway.governor.predictions import Prediction
from gateway.governor.sources import EvidenceSource
from gateway.metrics import GatewayMetrics
from gateway.sidework import SideWork
from registry import Folded, PredictionRow, Registry, utcnow
from registry.errors import RegistryUnavailable

__all__ = ["FleetNode", "Outbox", "writable"]

log = logging.getLogger(__name__)

_EXPIRE_EVERY = 30  # publishing cycles between two deletions of expired predictions
# A process silent this many leases is gone: its rows are folded (see registry.fleet_store).
# Far beyond a pause of the process; one resumed later is refused and rebased, not doubled.
FOLD_AFTER_LEASES = 30
# Predictions are shared at least this often, whatever ``fleet_publish_s``: a label sent to
# another member waits for this, not for a whole publishing interval.
SHARE_S = 0.25
_RESOLVE_S = 4 * SHARE_S  # how long a label waits for predictions still being shared


Pending = tuple[str, str, str, list[Prediction], list[str], datetime]


class Outbox:
    """Predictions waiting to be shared: a :class:`~gateway.sidework.SideWork` filled by
    the tap thread and drained by the publisher (no thread of its own); beyond
    ``capacity`` a prediction is dropped and counted. A prediction that cannot be written
    or stored (a lone surrogate, a NaN, an over-long field) is dropped and counted alone; the
    rest of its batch is still shared, row by row if the database refuses the batch."""

    def __init__(self, capacity: int, write: Callable[[list[PredictionRow]], int]) -> None:
        self.capacity = capacity
        self._write = write
        self._work: SideWork[Pending] = SideWork(
            "onnxgate-fleet-outbox", self._share, capacity=capacity
        )
        self.unencodable = 0
        self.shared = 0

    @property
    def dropped(self) -> int:
        return self._work.dropped + self.unencodable

    def put(
        self, model: str, request_id: str, version: str, preds: list[Prediction], segs: list[str]
    ) -> None:
        self._work.offer((model, request_id, version, preds, segs, utcnow()))

    def publish(self) -> int:
        """Write what is waiting (on the publisher's thread); returns how many were taken."""
        return self._work.drain()

    def _share(self, pending: list[Pending]) -> None:
        rows = []
        for model, rid, version, preds, segs, at in pending:
            row = PredictionRow(model, rid, version, preds, segs, at)
            if writable(row):
                rows.append(row)
            else:
                self.unencodable += 1
        try:
            self.shared += self._write(rows)
            return
        except RegistryUnavailable:
            raise  # the database is away: the cycle fails and is retried as a whole
        except Exception as exc:  # noqa: BLE001 - a row's content; found below, one by one
            log.warning("fleet: a batch of %d predictions was refused (%s); retrying one by one",
                        len(rows), type(exc).__name__)  # fmt: skip
        for row in rows:
            try:
                self.shared += self._write([row])
            except RegistryUnavailable:
                raise
            except Exception:  # noqa: BLE001 - this row alone: dropped and counted
                self.unencodable += 1


def writable(row: PredictionRow) -> bool:
    """True when the shared prediction table can store ``row`` on either backend: text any
    encoder accepts (no lone surrogates), no NaN (PostgreSQL's JSON refuses it), fields
    within their columns."""
    try:
        json.dumps([row.predictions, row.segments], allow_nan=False, ensure_ascii=False).encode()
        for text, limit in ((row.model, 128), (row.request_id, 256), (row.version, 128)):
            if len(text.encode("utf-8")) > limit:
                return False
    except (ValueError, TypeError):  # UnicodeEncodeError is a ValueError
        return False
    return True


class FleetNode:
    """See the module docstring."""

    def __init__(
        self,
        registry: Registry,
        local: Sequence[EvidenceSource],
        feedback: FeedbackStore,
        metrics: GatewayMetrics,
        *,
        process: str,
        publish_s: float,
        lease_s: float,
        outbox: int,
        ttl_s: float,
    ) -> None:
        self._store = registry.fleet
        self._local = list(local)
        self._feedback = feedback
        self._metrics = metrics
        self.process = process
        self.publish_s = publish_s
        self.lease_s = lease_s
        self._ttl_s = ttl_s
        self.outbox = Outbox(outbox, self._store.record_predictions)
        feedback.outbox = self.outbox.put
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="onnxgate-fleet")
        self._lock = threading.Lock()
        self._published: dict[tuple[str, str], dict[str, Any]] = {}
        # What this process had published when its rows were folded: subtracted from now on.
        self._baseline: dict[tuple[str, str], Evidence] = {}
        self._totals: dict[str, dict[str, Evidence]] | None = None
        self.members: list[str] = []
        self.cycles = 0
        self.failures = 0
        self._failing = 0  # failed attempts in a row (one log line per run of them)
        self.adopted = 0  # predictions read back to join a label

    # -- publishing -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Publish every ``publish_s`` and share predictions every :data:`SHARE_S` until
        ``stop``; then a last publish, and leave."""
        try:
            while not stop.is_set():
                await self._cycle()
                due = time.monotonic() + self.publish_s
                while not stop.is_set() and (left := due - time.monotonic()) > 0:
                    try:
                        await asyncio.wait_for(stop.wait(), timeout=min(left, SHARE_S))
                    except TimeoutError:
                        if not self._failing:  # (in an outage the outbox keeps them)
                            await self._attempt(self.outbox.publish)
        finally:
            await self._cycle()
            try:
                await run_blocking(self._thread, self._store.leave, self.process)
            except Exception:  # noqa: BLE001 - its lease runs out anyway
                log.warning("fleet: could not leave cleanly; the lease will run out")
            self._thread.shutdown(wait=True)

    async def _cycle(self) -> None:
        await self._attempt(self.publish_once)

    async def _attempt(self, work: Callable[[], object]) -> None:
        """Run ``work`` on the publisher's thread; a failure is retried by the next cycle
        (serving goes on) and logged once per outage, with a count when it ends."""
        try:
            await run_blocking(self._thread, work)
        except Exception as exc:  # see above
            self.failures += 1
            self._failing += 1
            if self._failing > 1:
                return
            if isinstance(exc, RegistryUnavailable):  # an outage: no traceback, one line
                log.warning("fleet: publishing failed, retrying until it works: %s", exc)
            else:  # not an outage: a bug worth its traceback, once per run of failures
                log.exception("fleet: publishing failed, retrying until it works")
        else:
            if self._failing:
                log.warning("fleet: publishing works again after %d failed attempts",
                            self._failing)  # fmt: skip
            self._failing = 0

    def _local_evidence(self) -> dict[tuple[str, str], dict[str, Any]]:
        wanted: dict[str, set[str]] = {}
        for model in self._metrics.models() | self._feedback.configured():
            versions = set(self._metrics.versions_of(model)) | set(self._feedback.quality(model))
            if versions:
                wanted[model] = versions
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for model, versions in wanted.items():
            merged = {v: Evidence() for v in versions}
            for source in self._local:
                for v, ev in source.evidence(model, versions).items():
                    if v in merged:
                        merged[v] = merged[v].merged(ev)
            for v, ev in merged.items():
                base = self._baseline.get((model, v))
                out[(model, v)] = encode(ev if base is None else less(ev, base))
        return out

    def publish_once(self) -> None:
        """One publishing cycle (blocking; see the module docstring)."""
        try:
            self._publish_evidence()
        except Folded:
            self._rebase()
            self._publish_evidence()
        self.outbox.publish()
        if self.cycles % _EXPIRE_EVERY == 0:
            self._store.expire_predictions(self._ttl_s)
            self._store.fold(FOLD_AFTER_LEASES * self.lease_s, fold)
        rows: dict[tuple[str, str], list[tuple[Evidence, bool]]] = {}
        for row in self._store.evidence():
            rows.setdefault((row.model, row.version), []).append((decode(row.payload), row.live))
        totals: dict[str, dict[str, Evidence]] = {}
        for (model, version), evs in rows.items():
            totals.setdefault(model, {})[version] = merge(evs)
        self.members = self._store.members()
        with self._lock:
            self._totals = totals
        self.cycles += 1

    def _publish_evidence(self) -> None:
        self._store.heartbeat(self.process, self.lease_s)
        payloads = self._local_evidence()
        changed = {k: p for k, p in payloads.items() if self._published.get(k) != p}
        self._store.publish(self.process, changed)
        self._published.update(changed)

    def _rebase(self) -> None:
        """This process was silent so long that its rows were folded (it was stopped): it
        goes on under a new name, publishing only what it counts from now on."""
        old = self.process
        self.process = f"{old.rsplit(':', 1)[0]}:{uuid.uuid4().hex[:8]}"
        for key, payload in self._published.items():
            # The baseline grows by what this name published (summed, not overlaid: a
            # process folded twice must subtract both folds).
            base = self._baseline.get(key, Evidence())
            self._baseline[key] = merge([(base, True), (decode(payload), True)])
        self._published.clear()
        log.warning("fleet: %s was silent too long and its rows were folded; publishing as %s",
                    old, self.process)  # fmt: skip

    # -- the governor's evidence source and window store ---------------------------------------

    @property
    def shared(self) -> int:
        """Predictions written to the shared table."""
        return self.outbox.shared

    def evidence(self, model: str, versions: Collection[str]) -> dict[str, Evidence]:
        """The fleet's merged evidence as of the last cycle (in-memory; for the loop)."""
        with self._lock:
            known = (self._totals or {}).get(model, {})
            return {v: known.get(v, Evidence()) for v in versions}

    def ready(self) -> bool:
        return self._totals is not None

    def save(
        self, model: str, candidate: str, step: int, base: Mapping[str, Evidence], replace: bool
    ) -> dict[str, Evidence]:
        # The cumulative parts a window subtracts (gateway.governor.evidence_windows).
        payload = {v: encode(Evidence(traffic=ev.traffic, quality=ev.quality,
                                      contracts=ev.contracts))
                   for v, ev in base.items()}  # fmt: skip
        kept = self._store.save_window(model, candidate, step, payload, replace=replace)
        return {v: decode(p) for v, p in kept.items()}

    def clear(self, model: str, candidate: str) -> None:
        self._store.clear_windows(model, candidate)

    # -- labels ---------------------------------------------------------------------------------

    async def claim(self, model: str, keys: Sequence[tuple[str, int]]) -> set[tuple[str, int]]:
        """Claim labels for this process fleet-wide; returns those claimed (the others were
        joined by some member already)."""
        return await run_blocking(self._thread, self._store.claim_labels, self.process, model,
                                  list(keys))  # fmt: skip

    async def resolve(self, model: str, request_ids: Sequence[str]) -> None:
        """Fetch predictions other processes made for ids unknown here, so labels join.

        A prediction made elsewhere moments ago may still sit in that process's outbox,
        which is shared every :data:`SHARE_S`: ids still unknown are looked up again for
        a few sharing intervals (never a whole publishing interval).
        """
        deadline = time.monotonic() + _RESOLVE_S
        while True:
            missing = self._feedback.missing(model, request_ids)
            if not missing:
                return
            rows = await run_blocking(self._thread, self._store.predictions, model, missing)
            now = utcnow()
            for r in rows:
                age = (now - r.recorded_at).total_seconds()
                self._feedback.adopt(model, r.request_id, r.version, r.predictions, r.segments, age)
            self.adopted += len(rows)
            if len(rows) == len(missing) or time.monotonic() >= deadline:
                return
            await asyncio.sleep(SHARE_S / 2)
