"""Scanning an ONNX artifact at registration, before onnxruntime parses it.

A registration is refused in one line naming the first finding:

- **external data outside the artifact**: a tensor whose bytes live in another file at an
  absolute path or one climbing out with ``..`` (loading it would read any file the
  gateway can); any other external data is refused too, since the registry stores one
  file per version and the gateway would read the data from its working directory;
- **operator domains the runtime cannot load**: a node in a domain that is neither one of
  onnxruntime's (:data:`RUNTIME_DOMAINS`) nor a function the model itself defines;
- **initializers larger than the file can hold**: a tensor whose declared shape needs more
  bytes than the artifact has, or whose data disagrees with its shape;
- **graphs over the limits**: more than :data:`MAX_NODES` nodes, :data:`MAX_INITIALIZERS`
  initializers or subgraphs nested deeper than :data:`MAX_DEPTH`.

The ``onnx`` package parses the file (``onnxgate[trust]``, also in ``[convert]``); without
it the scan is skipped and the version records that it was not scanned.
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from registry.errors import InvalidArtifact

__all__ = [
    "MAX_DEPTH",
    "MAX_INITIALIZERS",
    "MAX_NODES",
    "RUNTIME_DOMAINS",
    "ScanFinding",
    "scan_onnx",
]

MAX_NODES = 1_000_000
MAX_INITIALIZERS = 200_000
MAX_DEPTH = 16
RUNTIME_DOMAINS = frozenset(
    {
        "",
        "ai.onnx",
        "ai.onnx.ml",
        "ai.onnx.preview.training",
        "com.microsoft",
        "com.microsoft.nchwc",
        "com.microsoft.experimental",
        "com.ms.internal.nhwc",
    }
)
"""Operator domains the CPU onnxruntime build registers kernels for."""

_GRAPH = 5  # AttributeProto.GRAPH
_GRAPHS = 10  # AttributeProto.GRAPHS
_TENSOR = 4
_TENSORS = 9


class ScanFinding(InvalidArtifact):
    """The scan refused the artifact (message: the finding, one line)."""


@dataclass(frozen=True)
class _Counts:
    nodes: int = 0
    initializers: int = 0


def scan_onnx(data: bytes) -> str:
    """Scan ONNX bytes; returns the one-line result, or raises :class:`ScanFinding`."""
    try:
        import onnx
    except ImportError:
        return "not scanned (the onnx package is not installed: pip install 'onnxgate[trust]')"
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception:  # noqa: BLE001 - protobuf's DecodeError; onnxruntime says more later
        return "not scanned (not parseable as ONNX protobuf)"
    local = {f.domain for f in model.functions}
    nodes = 0
    initializers = 0
    domains: set[str] = set()
    for graph, depth in _graphs(model.graph, 0, model):
        if depth > MAX_DEPTH:
            raise ScanFinding(f"scan: subgraphs nested {depth} deep (limit {MAX_DEPTH})")
        nodes += len(graph.node)
        initializers += len(graph.initializer) + len(graph.sparse_initializer)
        if nodes > MAX_NODES:
            raise ScanFinding(f"scan: more than {MAX_NODES} nodes")
        if initializers > MAX_INITIALIZERS:
            raise ScanFinding(f"scan: more than {MAX_INITIALIZERS} initializers")
        for node in graph.node:
            domain = node.domain
            if domain not in RUNTIME_DOMAINS and domain not in local:
                raise ScanFinding(
                    f"scan: node {node.name or node.op_type!r} uses operator domain "
                    f"{domain!r}, which onnxruntime cannot load"
                )
            domains.add(domain or "ai.onnx")
        for tensor in _tensors(graph):
            _check_tensor(tensor, len(data))
    return (
        f"passed: {nodes} nodes, {initializers} initializers, "
        f"domains {', '.join(sorted(domains)) or '-'}"
    )


def _graphs(graph: Any, depth: int, model: Any) -> Iterator[tuple[Any, int]]:
    yield graph, depth
    nodes = list(graph.node)
    if depth == 0:
        nodes += [n for f in model.functions for n in f.node]
    for node in nodes:
        for attr in node.attribute:
            if attr.type == _GRAPH:
                yield from _graphs(attr.g, depth + 1, model)
            elif attr.type == _GRAPHS:
                for g in attr.graphs:
                    yield from _graphs(g, depth + 1, model)


def _tensors(graph: Any) -> Iterator[Any]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == _TENSOR:
                yield attr.t
            elif attr.type == _TENSORS:
                yield from attr.tensors


def _packed_bits() -> dict[int, int]:
    """Element types stored several to a byte, by their width (those this onnx knows)."""
    from onnx import TensorProto

    widths = {"INT4": 4, "UINT4": 4, "FLOAT4E2M1": 4, "INT2": 2, "UINT2": 2}
    return {getattr(TensorProto, n): b for n, b in widths.items() if hasattr(TensorProto, n)}


_PACKED_BITS: dict[int, int] = {}


def _check_tensor(tensor: Any, file_size: int) -> None:
    from onnx import TensorProto, helper

    if not _PACKED_BITS:
        _PACKED_BITS.update(_packed_bits())
    name = tensor.name or "(unnamed)"
    if tensor.data_location == TensorProto.EXTERNAL:
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        normal = posixpath.normpath(location.replace("\\", "/"))
        if (
            location.startswith(("/", "\\"))
            or (len(location) > 1 and location[1] == ":")
            or normal == ".."
            or normal.startswith("../")
        ):
            raise ScanFinding(
                f"scan: initializer {name!r} reads external data from {location!r}, "
                "outside the artifact"
            )
        raise ScanFinding(
            f"scan: initializer {name!r} keeps its data in another file ({location!r}); "
            "the registry stores one file per version: save the model with its data inside"
        )
    dims = list(tensor.dims)
    if any(d < 0 for d in dims):
        raise ScanFinding(f"scan: initializer {name!r} has a negative dimension {dims}")
    count = math.prod(dims)
    try:
        itemsize = helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    except (KeyError, ValueError, TypeError):
        itemsize = 1
    if tensor.data_type == TensorProto.STRING:
        itemsize = 1  # at least a byte each
    declared = count * max(itemsize, 1)
    if declared > file_size and tensor.data_type != TensorProto.STRING:
        raise ScanFinding(
            f"scan: initializer {name!r} declares shape {dims} ({declared} bytes), more than "
            f"the {file_size}-byte file can hold"
        )
    if tensor.HasField("raw_data") and tensor.data_type not in (TensorProto.STRING,):
        bits = _PACKED_BITS.get(tensor.data_type)
        expected = (count * bits + 7) // 8 if bits else declared
        if len(tensor.raw_data) != expected:
            raise ScanFinding(
                f"scan: initializer {name!r} declares shape {dims} ({expected} bytes) but "
                f"holds {len(tensor.raw_data)}"
            )
