"""Request bodies the HTTP tests build by hand (the test's own encoding, not the gateway's)."""

from __future__ import annotations

import json


def binary_body(
    name: str, datatype: str, shape: list[int], blob: bytes, **parameters: object
) -> tuple[bytes, dict[str, str]]:
    """One input in the binary tensor extension: the JSON header then ``blob``, and the
    ``Inference-Header-Content-Length`` header saying where the JSON ends. ``parameters``
    are the request's own (e.g. ``binary_data_output=True``)."""
    tensor = {
        "name": name,
        "datatype": datatype,
        "shape": shape,
        "parameters": {"binary_data_size": len(blob)},
    }
    doc: dict[str, object] = {"inputs": [tensor]}
    if parameters:
        doc["parameters"] = parameters
    header = json.dumps(doc).encode()
    return header + blob, {"Inference-Header-Content-Length": str(len(header))}
