"""Registering a service so that an undecodable request body is the client's error.

The generated ``add_*Servicer_to_server`` functions give grpc the message's ``FromString``
as the request deserializer. grpc runs it *before* any of our code, so a body that is not
a valid message (random bytes, a truncated varint, a length past the end) never reaches
the status mapping: grpc logs a traceback and answers ``UNKNOWN: Unexpected <class
'DecodeError'>``. :func:`add_service` registers the same methods with no deserializer and
parses the bytes itself, inside the handler: a ``DecodeError`` becomes
``INVALID_ARGUMENT`` naming the expected message type. Such refusals are logged as one
WARNING line per service and :data:`REFUSAL_LOG_INTERVAL_S` at most (with the count
since the last line), so an unauthenticated client sending garbage cannot flood the log.

Handlers are built from the service's descriptor, so a method added to the ``.proto`` is
served without a change here; parsing costs exactly what grpc's own deserializer did.
Every kind of method is handled (health's ``Watch`` streams responses, reflection streams
both ways), so health and reflection are registered through here too.

Wrappers (error mapping, authentication, the role guard) are applied here, at registration:
``wrap(name, method)`` gives the behaviour registered for each method, and the servicer
instance is never changed.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from types import ModuleType
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message

__all__ = ["REFUSAL_LOG_INTERVAL_S", "RefusalLog", "Wrap", "add_service", "method_handlers"]

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]
Behaviour = Callable[[Any, Context], Any]
Wrap = Callable[[str, Behaviour], Behaviour]
"""``wrap(method_name, method)``: the behaviour to register for that method."""

REFUSAL_LOG_INTERVAL_S = 60.0


class RefusalLog:
    """Counts refused bodies and logs one line per ``interval_s`` at most.

    NOTE: called on the event loop only, but a lock costs nothing here (refusals are the
    rare path) and keeps the count right if a sync server ever shares it.
    """

    def __init__(
        self,
        service: str,
        interval_s: float = REFUSAL_LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._service = service
        self._interval = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._next_line = float("-inf")
        self._unlogged = 0

    def refused(self, method: str, type_name: str, size: int) -> bool:
        """Count one refusal; return whether a line was written for it."""
        with self._lock:
            self._unlogged += 1
            now = self._clock()
            if now < self._next_line:
                return False
            count, self._unlogged = self._unlogged, 0
            self._next_line = now + self._interval
        # Sizes and names only: the body itself may be anything, secrets included.
        log.warning(
            "refused %d undecodable request body(ies) to %s (latest: %s, %d bytes, "
            "not a valid %s); at most one such line per %.0fs",
            count,
            self._service,
            method,
            size,
            type_name,
            self._interval,
        )
        return True


def _decode_error(type_name: str, size: int) -> str:
    return f"the request body ({size:,} bytes) is not a valid {type_name} message"


async def _parse(
    body: bytes, message: type[Message], context: Context, refusals: RefusalLog, method: str
) -> Any:
    try:
        return message.FromString(body)
    except DecodeError:
        type_name = message.DESCRIPTOR.full_name
        refusals.refused(method, type_name, len(body))
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _decode_error(type_name, len(body)))


def _unary_request(
    behaviour: Behaviour, message: type[Message], refusals: RefusalLog, method: str
) -> Callable[[bytes, Context], Any]:
    if inspect.isasyncgenfunction(behaviour):

        async def streaming(body: bytes, context: Context) -> AsyncIterator[Any]:
            request = await _parse(body, message, context, refusals, method)
            async for response in behaviour(request, context):
                yield response

        return streaming

    async def handler(body: bytes, context: Context) -> Any:
        request = await _parse(body, message, context, refusals, method)
        return await behaviour(request, context)

    return handler


def _stream_request(
    behaviour: Behaviour, message: type[Message], refusals: RefusalLog, method: str
) -> Callable[[AsyncIterator[bytes], Context], Any]:
    async def parsed(bodies: AsyncIterator[bytes], context: Context) -> AsyncIterator[Any]:
        async for body in bodies:
            yield await _parse(body, message, context, refusals, method)

    if inspect.isasyncgenfunction(behaviour):

        async def streaming(bodies: AsyncIterator[bytes], context: Context) -> AsyncIterator[Any]:
            async for response in behaviour(parsed(bodies, context), context):
                yield response

        return streaming

    async def handler(bodies: AsyncIterator[bytes], context: Context) -> Any:
        return await behaviour(parsed(bodies, context), context)

    return handler


_KINDS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def method_handlers(
    servicer: object,
    module: ModuleType,
    service: str,
    refusals: RefusalLog | None = None,
    wrap: Wrap | None = None,
) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """One handler per method of ``service`` (declared in the ``*_pb2`` ``module``),
    calling ``servicer``'s method of that name, wrapped by ``wrap`` when given."""
    descriptor = module.DESCRIPTOR.services_by_name[service]
    refusals = refusals or RefusalLog(descriptor.full_name)
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in descriptor.methods:
        request: type[Message] = getattr(module, method.input_type.name)
        response: type[Message] = getattr(module, method.output_type.name)
        behaviour = getattr(servicer, method.name)
        if wrap is not None:
            behaviour = wrap(method.name, behaviour)
        if method.client_streaming:
            handler: Any = _stream_request(behaviour, request, refusals, method.name)
        else:
            handler = _unary_request(behaviour, request, refusals, method.name)
        make = _KINDS[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = make(
            handler,
            request_deserializer=None,  # the handler parses: see the module docstring
            response_serializer=response.SerializeToString,
        )
    return handlers


def add_service(
    server: grpc.aio.Server,
    servicer: object,
    module: ModuleType,
    service: str,
    wrap: Wrap | None = None,
) -> str:
    """Register ``servicer`` for ``service`` like the generated function does (generic and
    registered-method handlers both), each method wrapped by ``wrap``; return the service's
    full name."""
    handlers = method_handlers(servicer, module, service, wrap=wrap)
    full_name: str = module.DESCRIPTOR.services_by_name[service].full_name
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(full_name, handlers),))
    server.add_registered_method_handlers(full_name, handlers)
    return full_name
