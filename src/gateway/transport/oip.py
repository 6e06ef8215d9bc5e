"""The Open Inference Protocol's face rules, once for every face (gRPC, HTTP, the next one).

A face is decode -> :class:`gateway.serving.dataplane.DataPlane` -> encode; what it must do
the same way as every other face lives here:

* the routing key: a pinned version ignores keys; else the request's ``routing_key``
  parameter; else the ``x-routing-key`` header (gRPC metadata has the same name);
* refusal counting: a request that fails to decode is counted by the plane under its
  status before the error leaves (:func:`decoded`, :func:`refused`);
* the deadline: the caller's remaining time as a monotonic instant (:func:`deadline`);
* the answer's parameters (:func:`response_parameters`): the serving role, and in
  contract ``flag`` mode the violated features.

The protocol's fixed facts (platform, server name) are the data plane's
(:mod:`gateway.serving.reads`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from gateway.domain import InferRequest, InferResult
from gateway.errors import GatewayError
from gateway.serving.dataplane import DataPlane
from gateway.transport.decoding import Decoder

__all__ = [
    "FLAGGED_MORE_PARAM",
    "FLAGGED_PARAM",
    "MAX_FLAGGED",
    "ROUTING_KEY_HEADER",
    "ROUTING_KEY_PARAM",
    "deadline",
    "decoded",
    "decoded_off_loop",
    "refused",
    "response_parameters",
    "routing_key",
]

ROUTING_KEY_PARAM = "routing_key"
ROUTING_KEY_HEADER = "x-routing-key"
FLAGGED_PARAM = "contract_violations"
FLAGGED_MORE_PARAM = "contract_violations_more"
MAX_FLAGGED = 16  # feature names one answer carries: a response parameter stays bounded


def response_parameters(result: InferResult) -> dict[str, str]:
    """The answer's parameters: ``role``; in contract ``flag`` mode, when a value broke the
    version's contract, ``contract_violations`` (the features, comma-separated, signature
    order, at most :data:`MAX_FLAGGED`) and ``contract_violations_more`` (how many were
    left off, only when some were)."""
    params = {"role": result.role}
    flagged = result.flagged
    if flagged:
        params[FLAGGED_PARAM] = ",".join(flagged[:MAX_FLAGGED])
        if len(flagged) > MAX_FLAGGED:
            params[FLAGGED_MORE_PARAM] = str(len(flagged) - MAX_FLAGGED)
    return params


P = ParamSpec("P")
T = TypeVar("T")


def routing_key(req: InferRequest, header: Callable[[str], str | None]) -> str | None:
    """The request's routing key; ``header(name)`` reads the call's metadata or headers
    (only when needed: a pinned version or a key parameter never reads them)."""
    if req.version:
        return None
    key = req.parameters.get(ROUTING_KEY_PARAM)
    if key is not None and key != "":
        return str(key)
    return header(ROUTING_KEY_HEADER)


def deadline(remaining_s: float | None) -> float | None:
    """The caller's remaining time as a ``time.monotonic()`` instant (None: no deadline)."""
    return None if remaining_s is None else time.monotonic() + remaining_s


def refused(plane: DataPlane, exc: GatewayError) -> None:
    """Count a request refused before it reached the plane (undecodable, too large)."""
    plane.refused(exc.code)


async def decoded_off_loop(
    plane: DataPlane,
    decoder: Decoder,
    where: str,
    decode: Callable[P, T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """:func:`decoded`, run where ``decoder`` said (a thread or the decode process)."""
    try:
        return await decoder.run(where, decode, *args, **kwargs)
    except GatewayError as exc:
        refused(plane, exc)
        raise


def decoded(plane: DataPlane, decode: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``decode(...)``, counting a refusal (by its status) on the plane before re-raising."""
    try:
        return decode(*args, **kwargs)
    except GatewayError as exc:
        refused(plane, exc)
        raise
