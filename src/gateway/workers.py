"""``onnxgate serve``: one gateway process until SIGTERM (:func:`serve`), or, with
``--workers N``, N of them sharing one port (SO_REUSEPORT, :func:`serve_workers`).

Each worker has its own event loop, sessions and batchers; the kernel spreads connections
across them. Metrics stay one coherent endpoint: workers write their samples to
prometheus_client's multiprocess files and the parent process alone serves ``/metrics``,
summing them, plus the deployment gauges read from the registry at scrape time.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterable

from gateway.concurrency import watch_parent
from gateway.settings import Settings

__all__ = ["serve", "serve_workers"]

log = logging.getLogger(__name__)


def _drain_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


def _worker_main(
    settings: Settings, index: int, parent: int, metrics_dir: str, metrics_elsewhere: str
) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format=f"%(asctime)s %(levelname)s worker{index} %(name)s: %(message)s",
    )
    # As `onnxgate serve` does in the parent: a spawned worker starts with fresh loggers.
    logging.getLogger("alembic").setLevel(logging.WARNING)  # schema checks, every start
    # A parent killed by SIGKILL cannot forward SIGTERM: the worker drains by itself then,
    # rather than serving on as an orphan nobody scrapes or stops.
    watch_parent(parent, _drain_self)
    asyncio.run(_serve_async(settings, metrics_elsewhere, (metrics_dir, index)))


async def _serve_async(
    settings: Settings, metrics_elsewhere: str = "", worker: tuple[str, int] | None = None
) -> None:
    from gateway.server import Gateway

    gw = Gateway(settings)
    gw.metrics_elsewhere = metrics_elsewhere
    try:
        await gw.start()
    except BaseException:
        await gw.stop(0)  # release what started, so a refused start leaves nothing running
        raise
    if worker is not None:  # the parent merges this worker's registry into its /metrics
        from gateway.transport.metrics_http import start_metrics_server
        from gateway.transport.worker_metrics import announce_port

        own, port = start_metrics_server(gw.metrics.registry, "127.0.0.1", 0)
        announce_port(worker[0], worker[1], port)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info("signal received; draining for up to %.1fs", settings.grace_s)
    await gw.stop()
    if worker is not None:
        own.shutdown()
    log.info("drained; exiting")


def serve(settings: Settings, *, metrics_elsewhere: str = "") -> None:
    """Run one gateway process until SIGTERM/SIGINT. ``metrics_elsewhere`` says, in its
    start line, who serves its /metrics when it does not (a worker: the parent)."""
    asyncio.run(_serve_async(settings, metrics_elsewhere))


def serve_workers(settings: Settings) -> None:
    if settings.port == 0:
        raise SystemExit("onnxgate: --workers > 1 needs an explicit --port to share")
    metrics_dir = tempfile.mkdtemp(prefix="onnxgate-metrics-")
    # NOTE: prometheus_client picks its value storage when first imported, so the variable
    # must be set before the (spawned, hence fresh) workers import it.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    ctx = multiprocessing.get_context("spawn")
    # Workers are a fleet (unless fleet = false): evidence, predictions and governor windows
    # go through the registry.
    worker_settings = settings.replace(metrics_port=-1, fleet=settings.fleet_on)
    server, port = _parent_metrics(settings, metrics_dir)
    elsewhere = "" if server is None else f"/metrics on :{port}, served by the parent"
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(worker_settings, i, os.getpid(), metrics_dir, elsewhere),
            name=f"onnxgate-worker{i}",
        )
        for i in range(settings.workers)
    ]
    for p in procs:
        p.start()
    stop = threading.Event()

    def forward(signum: int, _frame: object) -> None:
        stop.set()
        for p in procs:
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    log.info("started %d workers on port %d", settings.workers, settings.port)
    try:
        while not stop.is_set():
            if not any(p.is_alive() for p in procs):
                break
            stop.wait(0.5)
    finally:
        for p in procs:
            p.join(settings.grace_s + 5)
            if p.is_alive():
                p.kill()
        if server is not None:
            server.shutdown()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _parent_metrics(settings: Settings, metrics_dir: str):  # type: ignore[no-untyped-def]
    if settings.metrics_port < 0:
        return None, -1
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    from gateway.metrics import DeploymentCollector
    from gateway.transport.metrics_http import start_metrics_server
    from gateway.transport.worker_metrics import WorkerFamilies
    from registry import open_registry

    registry = CollectorRegistry()
    summed = MultiProcessCollector(registry, path=metrics_dir)  # type: ignore[no-untyped-call]
    # Never migrates an existing database: an outdated one is refused, as by each worker.
    reg = open_registry(settings.registry, settings.artifact_dir, settings.artifact_store)

    def snapshot() -> Iterable[tuple[str, int, list[tuple[str, str, float]], list[str]]]:
        return [
            (m, d.revision, [(a.version, str(a.role), a.weight) for a in d.arms], [])
            for m, d in reg.deployments().items()
        ]

    deployments = DeploymentCollector(snapshot)
    registry.register(deployments)

    def exported() -> set[str]:
        return {m.name for c in (summed, deployments) for m in c.collect()}

    registry.register(WorkerFamilies(metrics_dir, exported))
    return start_metrics_server(registry, settings.host, settings.metrics_port)
