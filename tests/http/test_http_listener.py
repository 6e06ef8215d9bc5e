"""The HTTP face's listening socket: every accepted connection has Nagle off.

uvicorn writes a response's headers and body in two writes; with Nagle on, the body of every
keep-alive response after the first waits for the client's delayed ACK (about 40 ms), which
held 64 callers to 1,300 req/s. asyncio turns Nagle off only for sockets made with
``IPPROTO_TCP``, so this asserts the option on a connection accepted through asyncio itself.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from gateway.transport.http.server import tcp_listener


@pytest.mark.parametrize("reuse_port", [False, True])
def test_accepted_connections_have_nagle_off(reuse_port: bool) -> None:
    async def main() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def on_connect(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        listener = tcp_listener("127.0.0.1", 0, reuse_port=reuse_port)
        server = await asyncio.start_server(on_connect, sock=listener)
        try:
            port = listener.getsockname()[1]
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            value = await asyncio.wait_for(seen, 10)
            writer.close()
            return value
        finally:
            server.close()
            await server.wait_closed()

    assert asyncio.run(main()) != 0


def test_a_taken_port_is_an_os_error() -> None:
    first = tcp_listener("127.0.0.1", 0, reuse_port=False)
    try:
        with pytest.raises(OSError):
            tcp_listener("127.0.0.1", first.getsockname()[1], reuse_port=False).close()
    finally:
        first.close()
