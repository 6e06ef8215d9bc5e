"""The prediction log: every served prediction kept, tamper-evident, queryable.

The data plane hands each call of a known model (success or failure) to the log's own tap
queue; :class:`PredictionLog` samples, converts and writes the records to its sinks —
Parquet files (:class:`ParquetSink`) and/or a CloudEvents receiver
(:class:`CloudEventsSink`) — off the request path. Closed files are chained into the audit
log (:mod:`.chain`); ``onnxgate log verify|query|show`` read them back.
Importing this package is cheap: pyarrow (the ``log`` extra) loads with the log.
"""

from typing import TYPE_CHECKING

from gateway.lazy import lazy_attributes

if TYPE_CHECKING:
    from gateway.predictionlog.build import build_prediction_log, parquet_dirs
    from gateway.predictionlog.chain import Verification, audit_closer, recorded_segments, verify
    from gateway.predictionlog.cloudevents import CloudEventsSink
    from gateway.predictionlog.collector import PredictionLogCollector
    from gateway.predictionlog.erasure import Erasure, erase
    from gateway.predictionlog.journal import PredictionLog
    from gateway.predictionlog.parquet import ClosedFile, ParquetSink, file_sha256
    from gateway.predictionlog.record import (
        SCHEMA,
        decode_tensors,
        encode_tensors,
        in_sample,
        table_of,
    )
    from gateway.predictionlog.sink import Batch, Sink

__all__ = [
    "SCHEMA",
    "Batch",
    "ClosedFile",
    "CloudEventsSink",
    "Erasure",
    "ParquetSink",
    "PredictionLog",
    "PredictionLogCollector",
    "Sink",
    "Verification",
    "audit_closer",
    "build_prediction_log",
    "decode_tensors",
    "encode_tensors",
    "erase",
    "file_sha256",
    "in_sample",
    "parquet_dirs",
    "recorded_segments",
    "table_of",
    "verify",
]

_LAZY = {
    "ClosedFile": "gateway.predictionlog.parquet",
    "Erasure": "gateway.predictionlog.erasure",
    "CloudEventsSink": "gateway.predictionlog.cloudevents",
    "ParquetSink": "gateway.predictionlog.parquet",
    "PredictionLog": "gateway.predictionlog.journal",
    "PredictionLogCollector": "gateway.predictionlog.collector",
    "Batch": "gateway.predictionlog.sink",
    "SCHEMA": "gateway.predictionlog.record",
    "Sink": "gateway.predictionlog.sink",
    "Verification": "gateway.predictionlog.chain",
    "audit_closer": "gateway.predictionlog.chain",
    "build_prediction_log": "gateway.predictionlog.build",
    "decode_tensors": "gateway.predictionlog.record",
    "encode_tensors": "gateway.predictionlog.record",
    "erase": "gateway.predictionlog.erasure",
    "file_sha256": "gateway.predictionlog.parquet",
    "in_sample": "gateway.predictionlog.record",
    "parquet_dirs": "gateway.predictionlog.build",
    "recorded_segments": "gateway.predictionlog.chain",
    "table_of": "gateway.predictionlog.record",
    "verify": "gateway.predictionlog.chain",
}

__getattr__ = lazy_attributes(__name__, _LAZY)
