"""The loader: load and warm versions before any table routes to them; audit what fails.

A version is loaded once (an ``InferenceSession``, its batcher and its counter set) and kept
while a table routes to it; one dropped from every table leaves memory only after its batcher
drains. A failure is counted (``onnxgate_load_failures_total``) and audited: a deployment
change that needs a version that fails is refused (``deployment.refused``); a revision read
from the registry whose versions fail is not applied (``deployment.load_failed``, once per
revision) and the model keeps its previous table.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Iterable

from gateway.concurrency import run_blocking
from gateway.errors import FailedPrecondition, NotFound
from gateway.messages import quoted
from gateway.metrics import GatewayMetrics
from gateway.registry_facade import AsyncRegistry
from gateway.sections import ServingSettings
from gateway.serving.batching import Batcher, BatchPolicy
from gateway.serving.runtime import LoadedVersion
from gateway.serving.tables import Served

__all__ = ["Loader"]

log = logging.getLogger(__name__)


class Loader:
    """The loaded versions, by (model, version), and the audit of those that fail."""

    def __init__(
        self,
        registry: AsyncRegistry,
        settings: ServingSettings,
        metrics: GatewayMetrics,
        *,
        inference_executor: concurrent.futures.Executor,
        io_executor: concurrent.futures.Executor,
    ) -> None:
        self._registry = registry
        self._settings = settings
        self._metrics = metrics
        self._inference_executor = inference_executor
        self._io = io_executor  # model loads; the registry is reached through its facade
        self._loaded: dict[tuple[str, str], Served] = {}
        self._failed: set[tuple[str, int]] = set()  # (model, revision) already audited
        self._retiring: set[asyncio.Task[None]] = set()

    async def ensure_loaded(self, model: str, versions: Iterable[str]) -> dict[str, Served]:
        """Every one of ``versions``, loaded (raises what the first failed load raised)."""
        served: dict[str, Served] = {}
        for version in sorted(frozenset(versions)):
            key = (model, version)
            existing = self._loaded.get(key)
            if existing is None:
                existing = await self._load(model, version)
                self._loaded[key] = existing
            served[version] = existing
        return served

    async def preload(self, model: str, versions: Iterable[str]) -> None:
        """Load and warm ``versions`` before a deployment change is committed.

        Raises FailedPrecondition (and audits the refusal) if any of them fails, so that the
        change is refused rather than routed to a broken version.
        """
        wanted = frozenset(versions)  # read the iterable once: it is used twice below
        try:
            await self.ensure_loaded(model, wanted)
        except NotFound:
            raise
        except Exception as exc:
            await self._audit(
                "deployment.refused",
                model,
                {"versions": sorted(wanted), "error": str(exc)},
                "version failed to load",
            )
            raise FailedPrecondition(
                f"model {quoted(model)}: a version failed to load ({exc}); deployment unchanged"
            ) from exc

    async def revision_failed(self, model: str, revision: int, exc: Exception) -> None:
        """A revision read from the registry could not be applied: log and audit it once."""
        if (model, revision) in self._failed:
            return
        self._failed.add((model, revision))
        log.error("model %s revision %d not applied: %s", model, revision, exc)
        await self._audit(
            "deployment.load_failed",
            model,
            {"revision": revision, "error": str(exc)},
            "a version of this revision failed to load; previous routing kept",
        )

    async def _audit(self, action: str, model: str, after: object, reason: str) -> None:
        await self._registry.record_audit(
            actor="gateway", action=action, subject=model, after=after, reason=reason
        )

    async def _load(self, model: str, version: str) -> Served:
        from registry.errors import NotFoundError

        try:
            record = await self._registry.get_version(model, version)
        except NotFoundError as exc:
            raise NotFound(str(exc)) from exc
        s = self._settings
        try:
            artifact = await self._registry.read_artifact(model, version)
            loaded = await run_blocking(
                self._io,
                LoadedVersion.load,
                model,
                version,
                record.sha256,
                artifact,
                providers=s.providers,
                intra_op_threads=s.effective_intra_op_threads,
            )
        except Exception:
            self._metrics.load_failures.labels(model, version).inc()
            raise
        policy = BatchPolicy(
            enabled=s.batching and loaded.batchable,
            max_batch_size=s.max_batch_size,
            max_delay_us=s.max_delay_us,
            max_queue=s.max_queue,
            inline_below_us=s.inline_below_us,
        )
        counters = self._metrics.for_version(model, version)
        batcher = Batcher(
            loaded.run,
            policy,
            name=f"{model}:{version}",
            executor=self._inference_executor,
            observer=counters,
            cost=loaded.estimated_run_s,
            probe=loaded.sample_inputs,
        )
        log.info("loaded %s version %s (sha256 %s…)", model, version, record.sha256[:12])
        return Served(loaded, batcher, counters)

    def retire_all_but(self, wanted: set[tuple[str, str]]) -> None:
        """Unload every version not in ``wanted``, each once its batcher drained."""
        for key in [k for k in self._loaded if k not in wanted]:
            served = self._loaded.pop(key)
            task = asyncio.get_running_loop().create_task(self._retire(served))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def _retire(self, served: Served) -> None:
        # Requests already routed to this version hold a reference and finish normally:
        # close() stops new submissions only after draining the queue and in-flight batches.
        await served.batcher.close()
        log.info("unloaded %s version %s", served.loaded.model, served.version)

    async def close(self) -> None:
        for served in list(self._loaded.values()):
            await served.batcher.close()
        self._loaded.clear()
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
