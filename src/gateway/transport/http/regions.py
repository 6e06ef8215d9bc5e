"""System shared memory on the HTTP face: the codec's windows <-> the shared region registry.

:func:`gateway.transport.http.codec.decode_infer` only records which tensors name a window
(it is pure and may run in the decode process); here, on the gateway's side, the inputs are
read from their regions and decoded like binary tensors, and the outputs are written into
theirs, with the same registry (:class:`gateway.transport.shm.SharedMemoryRegions`) and the
same refusals as gRPC's ``ModelInfer``, in the calling principal's namespace.
"""

from __future__ import annotations

from dataclasses import replace

from gateway.domain import InferResult, ParamValue
from gateway.transport.converters import decode_raw_tensor
from gateway.transport.http.codec import DecodedInfer, raw_bytes
from gateway.transport.shm import REGION, SIZE, SharedMemoryRegions

__all__ = ["read_inputs", "write_outputs"]


def read_inputs(decoded: DecodedInfer, regions: SharedMemoryRegions, *, owner: str) -> DecodedInfer:
    """``decoded`` with the inputs its windows name read in; an output naming an unknown
    region is refused here, before the model runs."""
    for at in decoded.output_windows.values():
        regions.get(at.region, owner=owner)
    if not decoded.input_windows:
        return decoded
    tensors = dict(decoded.request.inputs)
    for name, datatype, shape, at in decoded.input_windows:
        tensors[name] = decode_raw_tensor(name, datatype, shape, regions.read(at, owner=owner))
    return replace(decoded, request=replace(decoded.request, inputs=tensors), input_windows=())


def write_outputs(
    result: InferResult, decoded: DecodedInfer, regions: SharedMemoryRegions, *, owner: str
) -> dict[str, dict[str, ParamValue]]:
    """Write the outputs that name a window into it; their response parameters, by name."""
    written: dict[str, dict[str, ParamValue]] = {}
    for name, at in decoded.output_windows.items():
        arr = result.outputs.get(name)
        if arr is None:
            continue
        data = raw_bytes(arr)
        regions.write(name, at, data, owner=owner)
        written[name] = {REGION: at.region, SIZE: len(data)}
    return written
