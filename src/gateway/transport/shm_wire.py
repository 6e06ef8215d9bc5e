"""Moving ModelInfer tensors between the protobuf messages and shared memory regions.

:func:`inputs_from_regions` replaces every input that names a region with its bytes (as
``raw_input_contents``, so the ordinary decoder reads it) and takes the requested outputs'
regions off the request; :func:`outputs_to_regions` writes those outputs into their regions
after inference, leaving an empty ``raw_output_contents`` entry in their place (the client
reads the region) and the region's name and the bytes written in the output's parameters.
"""

from __future__ import annotations

from google.protobuf.internal.containers import MessageMap

from gateway._proto import grpc_service_pb2 as pb
from gateway.errors import InvalidArgument
from gateway.messages import quoted
from gateway.transport.shm import OFFSET, REGION, SIZE, SharedMemoryRegions, Window

__all__ = ["OutputTargets", "inputs_from_regions", "outputs_to_regions", "uses_regions"]

_KEYS = (REGION, SIZE, OFFSET)

OutputTargets = dict[str, Window]
"""output name -> its window."""


def uses_regions(request: pb.ModelInferRequest) -> bool:
    """Whether any input or requested output names a shared memory region."""
    # NOTE: plain loops, and the map looked into only when it is not empty: this runs on
    # every ModelInfer, and almost none carries parameters on its tensors.
    for tensor in request.inputs:
        if tensor.parameters and REGION in tensor.parameters:
            return True
    for output in request.outputs:
        if output.parameters and REGION in output.parameters:
            return True
    return False


def _where(params: MessageMap[str, pb.InferParameter], what: str) -> Window:
    region = params[REGION].string_param
    if SIZE not in params:
        raise InvalidArgument(f"{what}: '{REGION}' given without '{SIZE}'")
    size = int(params[SIZE].int64_param)
    offset = int(params[OFFSET].int64_param) if OFFSET in params else 0
    return Window(region, size, offset)


def inputs_from_regions(
    request: pb.ModelInferRequest, regions: SharedMemoryRegions, *, owner: str
) -> OutputTargets:
    """Rewrite ``request`` in place (see the module docstring); the outputs' targets."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise InvalidArgument(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs"
        )
    contents: list[bytes] = []
    for index, tensor in enumerate(request.inputs):
        params = tensor.parameters
        if REGION in params:
            at = _where(params, f"input {quoted(tensor.name)}")
            contents.append(regions.read(at, owner=owner))
            for key in _KEYS:
                params.pop(key, None)
        elif raw:
            contents.append(raw[index])
        else:
            raise InvalidArgument(
                f"input {quoted(tensor.name)}: send it as raw_input_contents or in a shared "
                "memory region when another input uses one (typed contents cannot be mixed in)"
            )
    del request.raw_input_contents[:]
    request.raw_input_contents.extend(contents)
    targets: OutputTargets = {}
    for output in request.outputs:
        params = output.parameters
        if REGION in params:
            targets[output.name] = _where(params, f"output {quoted(output.name)}")
            # An unknown region is refused before the model runs.
            regions.get(targets[output.name].region, owner=owner)
            for key in _KEYS:
                params.pop(key, None)
    return targets


def outputs_to_regions(
    response: pb.ModelInferResponse,
    targets: OutputTargets,
    regions: SharedMemoryRegions,
    *,
    owner: str,
) -> None:
    """Write the targeted outputs into their regions (see the module docstring)."""
    for index, output in enumerate(response.outputs):
        target = targets.get(output.name)
        if target is None:
            continue
        data = response.raw_output_contents[index]
        regions.write(output.name, target, data, owner=owner)
        response.raw_output_contents[index] = b""
        output.parameters[REGION].string_param = target.region
        output.parameters[SIZE].int64_param = len(data)
