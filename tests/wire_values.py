"""The protocol tests' own datatype table and edge values, shared by the gRPC and HTTP
faces' tests (our own, not gateway.transport.converters': a test must not share the code
it checks)."""

from __future__ import annotations

import numpy as np

NUMPY = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}
DATATYPES = [*NUMPY, "BYTES"]


def edge_values(datatype: str) -> np.ndarray:
    """A [2, 3] array of the values most likely to be mangled on the way through."""
    if datatype == "BYTES":
        words = [b"", "h\u00e9llo".encode(), b"a b", b"x" * 300, b"0", "\U0001f642".encode()]
        return np.array(words, dtype=np.object_).reshape(2, 3)
    if datatype == "BOOL":
        return np.array([[True, False, True], [False, False, True]])
    dtype = np.dtype(NUMPY[datatype])
    if dtype.kind == "f":
        info = np.finfo(dtype)
        values = [0.0, -0.0, float(info.max), float(info.tiny), -np.inf, np.nan]
    else:
        info = np.iinfo(dtype)
        values = [int(info.min), int(info.max), 0, 1, int(info.max) - 1, int(info.min) + 1]
    return np.array(values, dtype=dtype).reshape(2, 3)
