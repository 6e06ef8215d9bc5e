"""Build the prediction log from settings: ``prediction_log`` names its sinks.

Each item is a sink URL: ``file:DIR`` or a plain path for Parquet files, ``s3://BUCKET/PREFIX``
for Parquet files in object storage (:mod:`.objectstore`), ``http://…`` or ``https://…`` for a
CloudEvents receiver. Nothing is built when the setting is empty.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.concurrency import run_blocking

if TYPE_CHECKING:
    from gateway.domain import Tensors
    from gateway.metrics import GatewayMetrics
    from gateway.predictionlog.journal import PredictionLog
    from gateway.predictionlog.sink import Sink

__all__ = ["build_prediction_log", "log_history", "object_stores", "parquet_dirs", "spool_of"]


def object_stores(spec: Sequence[str]) -> list[str]:
    """The ``s3://`` sink URLs of ``spec``."""
    return [item for item in spec if item.startswith("s3://")]


def spool_of(url: str, artifact_dir: Path) -> Path:
    """Where an ``s3://`` sink writes files before uploading them (``?spool=DIR``, else
    ``prediction-log-spool/BUCKET/PREFIX`` beside ``artifact_dir``)."""
    from gateway.predictionlog.objectstore import parse_url

    bucket, prefix, spool = parse_url(url)
    return spool or artifact_dir.parent / "prediction-log-spool" / bucket / prefix


def parquet_dirs(spec: Sequence[str]) -> list[Path]:
    """The Parquet directories among the sink URLs of ``spec``."""
    dirs = []
    for item in spec:
        if item.startswith(("http://", "https://", "s3://")):
            continue
        dirs.append(Path(item.removeprefix("file://").removeprefix("file:")))
    return dirs


def log_history(
    settings: Any, executor: Executor
) -> Callable[[str, str], Awaitable[tuple[str, Tensors] | None]] | None:
    """A lookup of a request's logged inputs in the first Parquet directory of
    ``prediction_log`` (:func:`gateway.predictionlog.lookup.logged_inputs`), run on
    ``executor``; None when the setting names no directory."""
    dirs = parquet_dirs(settings.prediction_log)
    if not dirs:
        return None
    directory = dirs[0]

    async def lookup(model: str, request_id: str) -> tuple[str, Tensors] | None:
        from gateway.predictionlog.lookup import logged_inputs

        return await run_blocking(executor, logged_inputs, directory, model, request_id)

    return lookup


def build_prediction_log(
    settings: Any, registry: Any, metrics: GatewayMetrics | None = None
) -> PredictionLog | None:
    """The log ``settings.prediction_log`` asks for (None when off): a tap of every call
    on the gateway's one tap queue. Parquet files are chained into ``registry``'s audit log
    as they close; with ``metrics``, its counters are exported."""
    spec: Sequence[str] = settings.prediction_log
    if not spec:
        return None
    # NOTE: imported here so that a gateway without the log (and the `log` extra) never
    # loads pyarrow.
    try:
        from gateway.predictionlog.chain import audit_closer
        from gateway.predictionlog.cloudevents import CloudEventsSink
        from gateway.predictionlog.journal import PredictionLog
        from gateway.predictionlog.objectstore import ObjectStoreSink
        from gateway.predictionlog.parquet import ParquetSink
    except ImportError as exc:
        raise RuntimeError(
            f"prediction_log needs the log extra (pip install 'onnxgate[log]'): {exc}"
        ) from exc
    sinks: list[Sink] = []
    for item in spec:
        if item.startswith(("http://", "https://")):
            sinks.append(CloudEventsSink(item))
    for directory in parquet_dirs(spec):
        sinks.append(
            ParquetSink(
                directory,
                roll_bytes=settings.prediction_log_roll_mb * 1024 * 1024,
                roll_s=settings.prediction_log_roll_s,
                on_closed=audit_closer(registry),
            )
        )
    for url in object_stores(spec):
        sinks.append(
            ObjectStoreSink(
                url,
                spool_of(url, Path(settings.artifact_dir)),
                roll_bytes=settings.prediction_log_roll_mb * 1024 * 1024,
                roll_s=settings.prediction_log_roll_s,
                on_uploaded=audit_closer(registry),
            )
        )
    prediction_log = PredictionLog(
        sinks,
        sample=settings.prediction_log_sample,
        samples=settings.prediction_log_shares,
        keep_inputs=settings.prediction_log_inputs,
    )
    if metrics is not None:
        from gateway.predictionlog.collector import PredictionLogCollector

        metrics.add_collector(PredictionLogCollector(prediction_log))
    return prediction_log
