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
    "table_of",
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
    """The trace id of a W3C ``traceparent`` request parameter (version-traceid-span-flags),
    for a call without a trace context (one from the header or metadata wins)."""
    parent = parameters.get("traceparent")
    if isinstance(parent, str):
        parts = parent.split("-")
        if len(parts) == 4 and len(parts[1]) == 32:
            return parts[1]
    return None


def _segment(parameters: Mapping[str, Any], key: str) -> str | None:
    value = parameters.get(key)
    return None if value is None else str(value)


def _tensor_column(tensors: Sequence[Mapping[str, npt.NDArray[Any]]]) -> pa.Array:
    offsets = [0]
    names: list[str] = []
    datatypes: list[str] = []
    shapes: list[tuple[int, ...]] = []
    data: list[bytes] = []
    for mapping in tensors:
        for name, array in mapping.items():
            names.append(name)
            datatypes.append(_datatype(array.dtype))
            shapes.append(array.shape)
            data.append(_bytes_of(array))
        offsets.append(len(names))
    values = pa.StructArray.from_arrays(
        [
            pa.array(names, pa.string()),
            pa.array(datatypes, pa.string()),
            pa.array(shapes, pa.list_(pa.int64())),
            pa.array(data, pa.binary()),
        ],
        fields=list(TENSOR),
    )
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values)


def table_of(
    records: Sequence[TapRecord], *, keep_inputs: bool, segment_param: str = "segment"
) -> pa.Table:
    """``records`` as one Arrow table of :data:`SCHEMA` (``inputs`` empty when not kept).

    NOTE: built column by column from the records, on the log's worker thread: a dict per
    row and ``pa.Table.from_pylist`` cost about three times as much CPU per record, and
    that CPU is taken from the event loop (one GIL).
    """
    columns: dict[str, Any] = {
        "request_id": [r.request_id for r in records],
        "time": [r.time_us for r in records],
        "model": [r.model for r in records],
        "version": [r.version for r in records],
        "artifact_sha256": [r.sha256 for r in records],
        "revision": [r.revision for r in records],
        "role": [r.role for r in records],
        "face": [r.face for r in records],
        "principal": [r.principal for r in records],
        "status": [r.status for r in records],
        "latency_us": [r.latency_us for r in records],
        "segment": [_segment(r.parameters, segment_param) for r in records],
        "trace_id": [(r.trace and r.trace.trace_id) or _trace_id(r.parameters) for r in records],
    }
    arrays = [pa.array(columns[f.name], type=f.type) for f in SCHEMA if f.name in columns]
    no_inputs: list[Mapping[str, npt.NDArray[Any]]] = [{}] * len(records)
    arrays.append(_tensor_column([r.inputs for r in records] if keep_inputs else no_inputs))
    arrays.append(_tensor_column([r.outputs for r in records]))
    return pa.Table.from_arrays(arrays, schema=SCHEMA)
