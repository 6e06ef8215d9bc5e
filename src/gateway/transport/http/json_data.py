"""A tensor's JSON ``data`` array <-> numpy, both ways, for the REST face's codec
(:mod:`gateway.transport.http.codec`).

Decoding checks what JSON can get wrong and binary cannot: ragged or mixed nesting, the
kinds of scalars a datatype accepts, integers that do not fit, BYTES strings that are not
valid Unicode. Encoding spells what strict JSON cannot (non-finite floats, raw bytes).
"""

from __future__ import annotations

import bisect
import itertools
import math
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.errors import InvalidArgument
from gateway.limits import unencodable
from gateway.messages import quoted
from registry.datatypes import DATATYPE_TO_NUMPY

__all__ = ["NON_FINITE", "from_json", "json_data", "spell_non_finite"]

# numpy kinds a JSON array may decode to, per datatype family: JSON true/false only for
# BOOL, integers for the integer types, any number for the float types, strings for BYTES.
_ALLOWED_KINDS = {"BOOL": "b", "BYTES": "U"}
_ALLOWED_KINDS.update({dt: "iu" for dt in DATATYPE_TO_NUMPY if dt[0] in "IU"})
_ALLOWED_KINDS.update({dt: "iuf" for dt in ("FP16", "FP32", "FP64")})
_KIND_WORDS = {"b": "booleans", "i": "integers", "u": "integers", "f": "numbers", "U": "strings"}
# The Python types of JSON scalars each family accepts (bool is an int subclass: listed apart).
_PYTHON_KINDS: dict[str, frozenset[type]] = {
    "b": frozenset({bool}),
    "U": frozenset({str}),
    "iu": frozenset({int}),
    "iuf": frozenset({int, float}),
}


def _leaves(name: str, data: list[Any]) -> list[Any]:
    """The scalars of ``data``, nested or flat, in row-major order (C-level passes only).

    NOTE: ``np.asarray`` is not asked to discover the kinds: one string among a million
    numbers would make it build a fixed-width Unicode array as wide as the longest string
    for every element (a few MB of JSON asking for gigabytes).
    """
    level = data
    while level:
        kinds = set(map(type, level))
        if list not in kinds:
            return level
        if kinds != {list} or len(set(map(len, level))) != 1:
            raise InvalidArgument(
                f"input {quoted(name)}: data is ragged or holds values of mixed kinds"
            )
        level = list(itertools.chain.from_iterable(level))
    return level


def from_json(
    name: str, datatype: str, shape: tuple[int, ...], data: Any
) -> npt.NDArray[np.generic]:
    """``data`` (flat or nested, row-major) as an array of ``datatype`` and ``shape``."""
    if not isinstance(data, list):
        raise InvalidArgument(f"input {quoted(name)}: data must be a JSON array")
    count = math.prod(shape)
    dtype = DATATYPE_TO_NUMPY[datatype]
    leaves = _leaves(name, data)
    if len(leaves) != count:
        raise InvalidArgument(
            f"input {quoted(name)}: data has {len(leaves)} values, shape {list(shape)} "
            f"needs {count}"
        )
    if count == 0:
        return np.empty(shape, dtype=dtype)
    kinds = set(map(type, leaves))
    allowed = _ALLOWED_KINDS[datatype]
    if not kinds <= _PYTHON_KINDS[allowed]:
        raise InvalidArgument(
            f"input {quoted(name)}: {datatype} data must hold {_KIND_WORDS[allowed[-1]]}"
        )
    if datatype == "BYTES":
        return _strings(name, leaves).reshape(shape)
    arr = np.asarray(leaves)
    if dtype.kind in "iu" and arr.dtype.kind in "fO":
        # NOTE: numpy reads integers beyond int64 next to smaller ones as float64 (or
        # object), losing UINT64 precision; this rare case is re-read as Python ints.
        arr = _big_integers(name, datatype, arr, leaves)
    if arr.dtype.kind not in allowed:
        raise InvalidArgument(
            f"input {quoted(name)}: {datatype} data must hold {_KIND_WORDS[allowed[-1]]}"
        )
    if arr.dtype.kind in "iu" and dtype.kind in "iu":
        info = np.iinfo(dtype)
        if arr.min() < info.min or arr.max() > info.max:
            raise InvalidArgument(f"input {quoted(name)}: a value does not fit {datatype}")
    return arr.astype(dtype).reshape(shape)


def _strings(name: str, leaves: list[str]) -> npt.NDArray[np.object_]:
    """A BYTES tensor's strings, refused when one holds a lone UTF-16 surrogate (JSON can
    spell ``"\\ud800"``; no UTF-8 encoder, onnxruntime's included, accepts it)."""
    joined = "".join(leaves)
    bad = unencodable(joined)
    if bad is not None:
        ends = list(itertools.accumulate(map(len, leaves)))
        index = bisect.bisect_right(ends, bad)
        raise InvalidArgument(
            f"input {quoted(name)}: BYTES element {index} holds a lone UTF-16 surrogate, "
            "not valid Unicode text"
        )
    out = np.empty(len(leaves), dtype=np.object_)
    out[:] = leaves
    return out


def _big_integers(
    name: str, datatype: str, arr: npt.NDArray[Any], leaves: list[Any]
) -> npt.NDArray[Any]:
    if not all(type(v) is int for v in leaves):
        return arr  # floats or other values: refused by the caller, as for any kind
    try:
        return np.array(leaves, dtype=DATATYPE_TO_NUMPY[datatype])
    except OverflowError:
        raise InvalidArgument(f"input {quoted(name)}: a value does not fit {datatype}") from None


NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
"""How non-finite floats go out in JSON ``data``: strict JSON has no NaN or Infinity, so they
are the strings proto3's JSON mapping uses (the binary extension carries them as IEEE bits)."""


def json_data(arr: npt.NDArray[np.generic]) -> list[Any]:
    """``arr``'s elements, row-major, as a flat JSON ``data`` list; non-finite floats are
    left as they are (the encoder spells them, see :func:`spell_non_finite`)."""
    flat = arr.reshape(-1)
    values: list[Any] = flat.tolist()
    if flat.dtype.kind in "OS":
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]
    return values


def spell_non_finite(values: list[Any]) -> list[Any]:
    """``values`` with each non-finite float as its :data:`NON_FINITE` string."""
    return [
        NON_FINITE[str(v)] if isinstance(v, float) and not math.isfinite(v) else v for v in values
    ]
