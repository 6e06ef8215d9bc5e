"""Requests built once, before the clock starts: serialized ModelInferRequests.

Inputs come from ModelMetadata (``samples`` requests of random values of the right datatype
and shape, ``rows`` rows each) or from ``.npy`` files (every row of the file, ``rows`` to a
request: a few rows over and over would make the traffic look drifted); each request is
serialized to bytes so that a call costs the generator no protobuf work. With ``keys`` each
request carries a ``routing_key``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import grpc
import numpy as np

from gateway.tools.loadgen.spec import LoadSpec
from registry.datatypes import DATATYPE_TO_NUMPY, DATATYPES

__all__ = ["build_requests", "fetch_metadata"]


def _random_values(datatype: str, shape: tuple[int, ...], rng: np.random.Generator) -> Any:
    dtype = DATATYPE_TO_NUMPY[datatype]
    if datatype == "BYTES":
        return np.array([f"s{v}" for v in rng.integers(0, 1000, size=shape).ravel()], dtype=object)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    return rng.integers(0, 10, size=shape).astype(dtype)


def _encode(arr: Any, datatype: str) -> bytes:
    if datatype == "BYTES":
        return b"".join(struct.pack("<I", len(s.encode())) + s.encode() for s in arr.ravel())
    return np.ascontiguousarray(arr).tobytes()


def _file_arrays(spec: LoadSpec, names: Sequence[str]) -> dict[str, Any]:
    arrays: dict[str, Any] = {}
    for name, path in spec.inputs:
        if not name:
            if len(names) != 1:
                raise ValueError(f"model has inputs {list(names)}: pass NAME=FILE.npy for each")
            name = names[0]
        arrays[name] = np.load(path, allow_pickle=False)
    missing = set(names) - set(arrays)
    if missing:
        raise ValueError(f"no .npy file for input(s) {sorted(missing)}")
    return arrays


def build_requests(spec: LoadSpec, metadata: Any) -> list[bytes]:
    """Serialized ModelInferRequests: ``samples`` inputs x ``keys`` routing keys (if any)."""
    from gateway._proto import grpc_service_pb2 as pb

    rng = np.random.default_rng(spec.seed)
    names = [t.name for t in metadata.inputs]
    files = _file_arrays(spec, names) if spec.inputs else {}
    count = spec.samples
    if files:
        longest = max(a.shape[0] if a.ndim else 1 for a in files.values())
        count = max(1, -(-longest // spec.rows))  # every row of the file, once
    samples = []
    for i in range(count):
        tensors = []
        for t in metadata.inputs:
            dims = tuple(int(d) for d in t.shape)
            if t.name in files:
                src = files[t.name]
                start = (i * spec.rows) % max(1, src.shape[0])
                arr = np.take(src, range(start, start + spec.rows), axis=0, mode="wrap")
                want = DATATYPE_TO_NUMPY[t.datatype]
                if arr.dtype != want and np.can_cast(arr.dtype, want, casting="same_kind"):
                    arr = arr.astype(want)  # .npy files are often float64; the model says FP32
            else:
                shape = tuple(
                    spec.rows if (j == 0 and d == -1) else max(d, 1) for j, d in enumerate(dims)
                )
                arr = _random_values(t.datatype, shape, rng)
            tensors.append((t.name, t.datatype, arr))
        samples.append(tensors)
    keys: list[str | None] = [f"key-{k}" for k in range(spec.keys)] or [None]
    out: list[bytes] = []
    for k, key in enumerate(keys):
        # Every key gets its own sample set only when that stays small; else key k, sample k.
        chosen = samples if len(keys) * len(samples) <= 4096 else [samples[k % len(samples)]]
        for n, tensors in enumerate(chosen):
            req = pb.ModelInferRequest(model_name=spec.model, model_version=spec.version)
            if spec.ids:
                req.id = f"load-{spec.seed}-{k}-{n}"
            if key is not None:
                req.parameters["routing_key"].string_param = key
            for name, datatype, arr in tensors:
                t = req.inputs.add(name=name, datatype=datatype, shape=arr.shape)
                field = DATATYPES[datatype].contents
                if spec.contents == "raw":
                    req.raw_input_contents.append(_encode(arr, datatype))
                elif field is None:
                    raise ValueError(f"input '{name}': {datatype} can only be sent raw")
                else:
                    values = arr.ravel().tolist()
                    if datatype == "BYTES":
                        values = [str(v).encode() for v in values]
                    getattr(t.contents, field).extend(values)
            out.append(req.SerializeToString())
    return out


def fetch_metadata(spec: LoadSpec, timeout: float = 10.0) -> Any:
    """The model's ModelMetadataResponse (its inputs' names, datatypes and shapes)."""
    from gateway._proto import grpc_service_pb2 as pb
    from gateway._proto import grpc_service_pb2_grpc as pb_grpc

    if spec.tls is None:
        channel = grpc.insecure_channel(spec.target)
    else:
        ca, cert, key = spec.tls
        creds = grpc.ssl_channel_credentials(
            root_certificates=ca, private_key=key, certificate_chain=cert
        )
        channel = grpc.secure_channel(spec.target, creds)
    with channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        req = pb.ModelMetadataRequest(name=spec.model, version=spec.version)
        return stub.ModelMetadata(req, timeout=timeout, metadata=spec.metadata or None)
