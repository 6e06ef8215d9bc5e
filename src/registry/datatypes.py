"""The one datatype table: every Open Inference Protocol datatype and what it means here.

Each row says, for one OIP datatype, how numpy holds it, how onnxruntime names it, how wide
one element is, and which ``InferTensorContents`` field carries it when a client sends
values typed rather than in ``raw_input_contents``::

    OIP     numpy     onnxruntime        size  typed field
    BOOL    bool      tensor(bool)        1    bool_contents
    UINT8   uint8     tensor(uint8)       1    uint_contents
    ...
    FP16    float16   tensor(float16)     2    (raw only)
    BF16    --        tensor(bfloat16)    2    (raw only)  refused: see below
    BYTES   object    tensor(string)      -    bytes_contents

Every reader (signatures, validation samples, the wire converters, the runtime, the load
generator, the CLI) reads this table; none keeps its own. Protobuf enums (Triton's
``ModelConfig`` data types) stay in the transport, keyed from these names.

NOTE: BF16 is an OIP datatype, so a stored signature may name it, but it is not
*servable*: numpy has no bfloat16, and onnxruntime's Python API accepts neither a uint16
array nor an ``ml_dtypes.bfloat16`` one for a ``tensor(bfloat16)`` input. A model whose
inputs or outputs are bfloat16 is therefore refused at registration
(:func:`registry.signature.signature_from_bytes`) with a message saying to cast at the
graph's edge; bfloat16 *inside* the graph is fine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = [
    "DATATYPES",
    "DATATYPE_TO_NUMPY",
    "ORT_TO_DATATYPE",
    "Datatype",
    "datatype_of_numpy",
]


@dataclass(frozen=True)
class Datatype:
    """One OIP datatype. ``numpy`` None: not servable (no numpy form, see the module note)."""

    name: str
    numpy: np.dtype[Any] | None
    ort: str
    size: int | None  # bytes per element; None: variable (BYTES: 4-byte length + bytes)
    contents: str | None  # InferTensorContents field for typed values; None: raw only

    @property
    def servable(self) -> bool:
        return self.numpy is not None


def _row(
    name: str, numpy: type[Any] | None, ort: str, size: int | None, contents: str | None
) -> Datatype:
    dtype = None if numpy is None else np.dtype(numpy)
    return Datatype(name, dtype, f"tensor({ort})", size, contents)


_ROWS = (
    _row("BOOL", np.bool_, "bool", 1, "bool_contents"),
    _row("UINT8", np.uint8, "uint8", 1, "uint_contents"),
    _row("UINT16", np.uint16, "uint16", 2, "uint_contents"),
    _row("UINT32", np.uint32, "uint32", 4, "uint_contents"),
    _row("UINT64", np.uint64, "uint64", 8, "uint64_contents"),
    _row("INT8", np.int8, "int8", 1, "int_contents"),
    _row("INT16", np.int16, "int16", 2, "int_contents"),
    _row("INT32", np.int32, "int32", 4, "int_contents"),
    _row("INT64", np.int64, "int64", 8, "int64_contents"),
    _row("FP16", np.float16, "float16", 2, None),
    _row("FP32", np.float32, "float", 4, "fp32_contents"),
    _row("FP64", np.float64, "double", 8, "fp64_contents"),
    _row("BF16", None, "bfloat16", 2, None),
    _row("BYTES", np.object_, "string", None, "bytes_contents"),
)

DATATYPES: Mapping[str, Datatype] = MappingProxyType({d.name: d for d in _ROWS})
"""Every OIP datatype by name, servable or not (a stored signature may name any of them)."""

ORT_TO_DATATYPE: Mapping[str, Datatype] = MappingProxyType({d.ort: d for d in _ROWS})
"""onnxruntime's element type strings (``NodeArg.type``, e.g. ``tensor(float)``) -> row."""

DATATYPE_TO_NUMPY: Mapping[str, np.dtype[Any]] = MappingProxyType(
    {d.name: d.numpy for d in _ROWS if d.numpy is not None}
)
"""The servable datatypes' numpy dtypes (BYTES: object). BF16 is absent."""

_NUMPY_TO_DATATYPE: dict[np.dtype[Any], str] = {
    dtype: name for name, dtype in DATATYPE_TO_NUMPY.items() if name != "BYTES"
}


def datatype_of_numpy(dtype: np.dtype[Any]) -> str | None:
    """The OIP datatype of a numpy dtype (str, bytes and object arrays are BYTES), or None."""
    if dtype.kind in ("O", "S", "U"):
        return "BYTES"
    return _NUMPY_TO_DATATYPE.get(dtype)
