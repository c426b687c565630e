"""What a peer link needs from a network: listen, connect, and frames with boundaries.

Two implementations: :class:`~trio_quorum.net.websocket.WebSocketNetwork`
(trio-websocket over TCP) and :class:`~trio_quorum.net.memory.MemoryNetwork`
(in-process, seeded faults, for whole-ensemble simulations under MockClock).

Contract (both implementations, relied on by ``links.py``):

* ``Link.send`` delivers one frame whole or raises :class:`LinkClosed`; frames
  of one direction arrive in the order sent (a stream, as TCP), or not at all
  once the link is broken.  It may block (backpressure): callers bound it.
* ``Link.receive`` returns the next frame, or raises :class:`LinkClosed` once
  the link is closed (by either side, or reset) and nothing is left to read.
* ``Network.serve`` reports the bound address with ``task_status.started`` and
  calls ``handler(link)`` in a new task per accepted link; the link is closed
  when the handler returns.  Nothing a handler raises stops the listener.
* ``Network.connect`` is an async context manager; every failure to open
  (refused, timed out, unreachable) is ONE :class:`LinkError` naming the
  address, never an exception group.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol


class LinkError(Exception):
    """A link could not be opened, or broke."""


class LinkClosed(LinkError):
    """The link is closed (by either side) or was reset."""


class Link(Protocol):
    @property
    def remote(self) -> str:
        """Who is at the other end (for logs)."""
        ...

    async def send(self, frame: bytes) -> None: ...

    async def receive(self) -> bytes: ...

    async def aclose(self) -> None: ...


Handler = Callable[[Link], Awaitable[None]]


class Network(Protocol):
    async def serve(self, address: str, handler: Handler, *, task_status: Any = ...) -> None:
        """Accept links on ``address`` until cancelled; ``started(bound_address)``."""
        ...

    def connect(self, address: str, *, connect_timeout: float) -> AbstractAsyncContextManager[Link]:
        """Open a link to ``address`` within ``connect_timeout`` seconds, close it on exit."""
        ...
