"""One prediction-log record: the Arrow schema and the conversion of a tap record to a row.

Tensors are kept as they were sent and returned, so that a record replays bit for bit:
``list<struct<name, datatype, shape list<int64>, data binary>>`` with the raw
little-endian bytes of each tensor, and BYTES tensors in the Open Inference Protocol's
length-prefixed form (each element a 4-byte little-endian length, then its bytes).
No JSON and no base64: DuckDB, pandas and Spark read the columns as they are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from gateway.serving.taps import TapRecord
from registry.datatypes import DATATYPE_TO_NUMPY, datatype_of_numpy

__all__ = [
    "FILE_SCHEMA",
    "SCHEMA",
    "TENSOR",
    "decode_tensors",
    "encode_tensors",
    "in_sample",
    "row_of",
]

TENSOR = pa.struct(
    [
        ("name", pa.string()),
        ("datatype", pa.string()),
        ("shape", pa.list_(pa.int64())),
        ("data", pa.binary()),
    ]
)
"""One tensor as sent or returned (see the module docstring for ``data``)."""

SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("time", pa.timestamp("us", tz="UTC")),
        ("model", pa.string()),
        ("version", pa.string()),
        ("artifact_sha256", pa.string()),
        ("revision", pa.int64()),
        ("role", pa.string()),
        ("face", pa.string()),
        ("principal", pa.string()),
        ("status", pa.string()),
        ("latency_us", pa.int64()),
        ("segment", pa.string()),
        ("trace_id", pa.string()),
        ("inputs", pa.list_(TENSOR)),
        ("outputs", pa.list_(TENSOR)),
    ]
)
"""The columns of every record, in order."""

FILE_SCHEMA = SCHEMA.remove(SCHEMA.get_field_index("model"))
"""The columns stored in a Parquet file: ``model`` lives in its Hive path (``model=NAME``),
as Hive readers expect (pyarrow and pandas refuse a column that is also a partition key)."""


_TEXT_KINDS = ("O", "S", "U")
_DATATYPES: dict[np.dtype[Any], str] = {}  # every dtype seen, so that a record costs a lookup


def _bytes_of(array: npt.NDArray[Any]) -> bytes:
    """An array's elements as the OIP's raw bytes: little-endian, or length-prefixed."""
    if array.dtype.kind in _TEXT_KINDS:
        parts: list[bytes] = []
        for item in array.reshape(-1):
            raw = item.encode() if isinstance(item, str) else bytes(item)
            parts.append(len(raw).to_bytes(4, "little"))
            parts.append(raw)
        return b"".join(parts)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return array.tobytes()  # C order, whatever the array's strides


def _datatype(dtype: np.dtype[Any]) -> str:
    name = _DATATYPES.get(dtype)
    if name is None:
        native = dtype if dtype.kind in _TEXT_KINDS else dtype.newbyteorder("=")
        name = _DATATYPES[dtype] = datatype_of_numpy(native) or str(dtype)
    return name


def encode_tensors(tensors: Mapping[str, npt.NDArray[Any]]) -> list[dict[str, Any]]:
    """``tensors`` as the log's list of structs (names in the order given)."""
    return [
        {
            "name": name,
            "datatype": _datatype(array.dtype),
            "shape": list(array.shape),
            "data": _bytes_of(array),
        }
        for name, array in tensors.items()
    ]


def decode_tensors(entries: Sequence[Mapping[str, Any]]) -> dict[str, npt.NDArray[Any]]:
    """The inverse of :func:`encode_tensors`: numpy arrays by name (BYTES as bytes objects)."""
    out: dict[str, npt.NDArray[Any]] = {}
    for entry in entries:
        shape = tuple(int(d) for d in entry["shape"])
        data: bytes = entry["data"]
        if entry["datatype"] == "BYTES":
            items: list[bytes] = []
            at = 0
            while at < len(data):
                size = int.from_bytes(data[at : at + 4], "little")
                items.append(data[at + 4 : at + 4 + size])
                at += 4 + size
            array = np.empty(len(items), dtype=object)
            array[:] = items
            out[entry["name"]] = array.reshape(shape)
        else:
            dtype = DATATYPE_TO_NUMPY[entry["datatype"]].newbyteorder("<")
            out[entry["name"]] = np.frombuffer(data, dtype=dtype).reshape(shape)
    return out


def in_sample(request_id: str, share: float) -> bool:
    """Whether ``request_id`` is logged at sampling ``share``: a hash of the id, so every
    gateway of a fleet (and every rerun) keeps the same requests."""
    if share >= 1.0:
        return True
    if share <= 0.0:
        return False
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < share


def _trace_id(parameters: Mapping[str, Any]) -> str | None:
    """The trace id of a W3C ``traceparent`` request parameter (version-traceid-span-flags)."""
    parent = parameters.get("traceparent")
    if isinstance(parent, str):
        parts = parent.split("-")
        if len(parts) == 4 and len(parts[1]) == 32:
            return parts[1]
    return None


def row_of(record: TapRecord, *, keep_inputs: bool, segment_param: str) -> dict[str, Any]:
    """The log row of one tap record (``inputs`` empty when inputs are not kept)."""
    segment = record.parameters.get(segment_param)
    return {
        "request_id": record.request_id,
        "time": record.time_us,
        "model": record.model,
        "version": record.version,
        "artifact_sha256": record.sha256,
        "revision": record.revision,
        "role": record.role,
        "face": record.face,
        "principal": record.principal,
        "status": record.status,
        "latency_us": record.latency_us,
        "segment": None if segment is None else str(segment),
        "trace_id": _trace_id(record.parameters),
        "inputs": encode_tensors(record.inputs) if keep_inputs else [],
        "outputs": encode_tensors(record.outputs),
    }
