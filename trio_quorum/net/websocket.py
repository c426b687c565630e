"""Peer links over WebSocket (trio-websocket): one binary WebSocket message per frame.

Addresses are ``"host:port"`` (``"[::1]:port"`` for IPv6); port 0 binds any
free port and ``serve`` reports the real one.

trio-websocket runs a reader task per connection in a nursery, so its errors
can surface as exception groups (a rejected handshake is raised by the reader
task, not by ``connect_websocket``).  This module is where that stops:
``connect`` raises ONE :class:`LinkError` for any failure to open, body
exceptions come out unchanged, and a pure cancellation is re-raised as trio
gave it, for its cancel scope to catch.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
from trio_websocket import (
    ConnectionClosed,
    HandshakeError,
    WebSocketConnection,
    WebSocketRequest,
    WebSocketServer,
    wrap_client_stream,
)

from .network import Handler, Link, LinkClosed, LinkError

log = logging.getLogger("trio_quorum.net.websocket")

#: The trio-websocket default reads 4 KiB at a time: too small for batched frames.
RECEIVE_BUFFER = 256 * 1024


def split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise LinkError(f"{address!r}: expected host:port")
    return host.strip("[]"), int(port)


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"


class WebSocketLink:
    def __init__(self, ws: WebSocketConnection, remote: str) -> None:
        self._ws = ws
        self._remote = remote

    @property
    def remote(self) -> str:
        return self._remote

    async def send(self, frame: bytes) -> None:
        try:
            await self._ws.send_message(frame)
        except ConnectionClosed as exc:
            raise LinkClosed(f"{self._remote}: {exc.reason}") from None

    async def receive(self) -> bytes:
        try:
            message = await self._ws.get_message()
        except ConnectionClosed as exc:
            raise LinkClosed(f"{self._remote}: {exc.reason}") from None
        if isinstance(message, str):
            raise LinkError(f"{self._remote}: a text message on a binary link")
        return message

    async def aclose(self) -> None:
        await self._ws.aclose()


class _StartedAs:
    """Pass ``started(value)`` on with another value (the address, not the server)."""

    def __init__(self, task_status: Any, value: str) -> None:
        self._task_status, self._value = task_status, value

    def started(self, value: Any = None) -> None:
        self._task_status.started(self._value)


class WebSocketNetwork:
    """``Network`` over TCP WebSockets (``ws://host:port/<resource>``)."""

    def __init__(self, *, resource: str = "/trio-quorum/peer", max_frame_bytes: int = 4 * 1024 * 1024,
                 close_timeout: float = 2.0, handshake_timeout: float = 10.0) -> None:
        self.resource = resource
        # WebSocket's own limit, a little over ours: our decoder says what is wrong
        self.max_message_size = max_frame_bytes + 1024
        self.close_timeout = close_timeout
        self.handshake_timeout = handshake_timeout

    async def serve(self, address: str, handler: Handler, *,
                    task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        host, port = split_address(address)
        try:
            listeners = await trio.open_tcp_listeners(port, host=host)
        except OSError as exc:
            raise LinkError(f"cannot listen on {address}: {exc}") from None
        bound = _join(host, listeners[0].socket.getsockname()[1])

        async def on_request(request: WebSocketRequest) -> None:
            # nothing may escape: trio-websocket would let it stop the whole server
            try:
                if request.path != self.resource:
                    await request.reject(404)
                    return
                remote = request.remote
                name = (str(remote) if isinstance(remote, str)
                        else _join(str(remote.address), remote.port))
                ws = await request.accept()
                await handler(WebSocketLink(ws, name))
            except ConnectionClosed:
                pass
            except Exception:
                log.exception("handler for a link on %s crashed", bound)

        server = WebSocketServer(
            on_request, listeners, max_message_size=self.max_message_size,
            receive_buffer_size=RECEIVE_BUFFER, connect_timeout=self.handshake_timeout,
            disconnect_timeout=self.close_timeout,
        )
        await server.run(task_status=_StartedAs(task_status, bound))

    @asynccontextmanager
    async def connect(self, address: str, *, connect_timeout: float) -> AsyncIterator[Link]:
        host, port = split_address(address)
        failure: BaseException | None = None
        body_error: BaseException | None = None
        with trio.move_on_after(connect_timeout) as scope:
            try:
                # our own stream, so that we close it whatever trio-websocket does
                stream = await trio.open_tcp_stream(host, port)
            except OSError as exc:
                raise LinkError(f"{address}: {_describe(exc)}") from None
        if scope.cancelled_caught:
            raise LinkError(f"{address}: connect timed out after {connect_timeout} s")
        try:
            async with trio.open_nursery() as nursery:
                ws = None
                try:
                    with trio.fail_after(connect_timeout):
                        ws = await wrap_client_stream(
                            nursery, stream, address, self.resource,
                            max_message_size=self.max_message_size,
                            receive_buffer_size=RECEIVE_BUFFER,
                        )
                except (HandshakeError, trio.TooSlowError) as exc:
                    failure = exc
                if ws is None:
                    nursery.cancel_scope.cancel(reason=f"connect to {address} failed")
                else:
                    try:
                        yield WebSocketLink(ws, address)
                    except BaseException as exc:  # re-raised below, outside the nursery
                        body_error = exc
                    finally:
                        with trio.CancelScope(shield=True), trio.move_on_after(self.close_timeout):
                            await ws.aclose()
                        nursery.cancel_scope.cancel(reason="link closed")
        except BaseExceptionGroup as group:
            _, rest = group.split(trio.Cancelled)
            if rest is None:
                raise  # pure cancellation: for the cancel scope that asked
            if body_error is None:
                raise LinkError(f"{address}: {_describe(rest)}") from group
        finally:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)
        if body_error is not None:
            raise body_error
        if failure is not None:
            if isinstance(failure, trio.TooSlowError):
                raise LinkError(f"{address}: WebSocket handshake timed out after {connect_timeout} s") from None
            raise LinkError(f"{address}: {_describe(failure)}") from failure
