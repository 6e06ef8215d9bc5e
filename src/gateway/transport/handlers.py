"""Registering a service so that an undecodable request body is the client's error.

The generated ``add_*Servicer_to_server`` functions give grpc the message's ``FromString``
as the request deserializer. grpc runs it *before* any of our code, so a body that is not
a valid message (random bytes, a truncated varint, a length past the end) never reaches
the status mapping: grpc logs a traceback and answers ``UNKNOWN: Unexpected <class
'DecodeError'>``. :func:`add_service` registers the same methods with no deserializer and
parses the bytes itself, inside the handler: a ``DecodeError`` becomes
``INVALID_ARGUMENT`` naming the expected message type, with nothing logged.

Handlers are built from the service's descriptor, so a method added to the ``.proto`` is
served without a change here; parsing costs exactly what grpc's own deserializer did.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message

__all__ = ["add_service", "method_handlers"]

Context = grpc.aio.ServicerContext[Any, Any]
Behaviour = Callable[[Any, Context], Awaitable[Any]]


def _parsing(behaviour: Behaviour, message: type[Message]) -> Callable[[bytes, Context], Any]:
    parse = message.FromString
    type_name = message.DESCRIPTOR.full_name

    async def handler(body: bytes, context: Context) -> Any:
        try:
            request = parse(body)
        except DecodeError:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the request body ({len(body):,} bytes) is not a valid {type_name} message",
            )
        return await behaviour(request, context)

    return handler


def method_handlers(
    servicer: object, module: ModuleType, service: str
) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """One unary handler per method of ``service`` (declared in the ``*_pb2`` ``module``),
    calling ``servicer``'s method of that name as it is now (wrappers included)."""
    descriptor = module.DESCRIPTOR.services_by_name[service]
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in descriptor.methods:
        if method.client_streaming or method.server_streaming:
            raise NotImplementedError(f"{method.full_name}: streaming methods are not handled")
        request: type[Message] = getattr(module, method.input_type.name)
        response: type[Message] = getattr(module, method.output_type.name)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            _parsing(getattr(servicer, method.name), request),
            request_deserializer=None,  # the handler parses: see the module docstring
            response_serializer=response.SerializeToString,
        )
    return handlers


def add_service(server: grpc.aio.Server, servicer: object, module: ModuleType, service: str) -> str:
    """Register ``servicer`` for ``service`` like the generated function does (generic and
    registered-method handlers both); return the service's full name."""
    handlers = method_handlers(servicer, module, service)
    full_name: str = module.DESCRIPTOR.services_by_name[service].full_name
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(full_name, handlers),))
    server.add_registered_method_handlers(full_name, handlers)
    return full_name
