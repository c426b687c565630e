"""An in-memory network for simulations: a whole ensemble in one ``trio.run``.

Each peer gets an :meth:`MemoryNetwork.endpoint` (a :class:`~.network.Network`
bound to its name); addresses are plain strings owned by whichever endpoint
serves them.  Links behave as TCP connections carrying frames:

* ordered and whole per direction; ``capacity`` frames buffered per direction,
  then ``send`` blocks (backpressure: a reader that stops reading stalls its
  writer, whose bounded send then times out, as with a full socket buffer);
* ``close`` by one side: the other side still reads what was sent, then
  :class:`LinkClosed`; :meth:`MemoryNetwork.disconnect` is a reset: pending
  frames are lost and both sides see :class:`LinkClosed` at once (a crash);
* :meth:`MemoryNetwork.partition` cuts pairs of nodes SILENTLY, as a dead switch
  does: frames across the cut are held, not delivered (so buffers fill and
  writers block), connects across it hang until healed or timed out; nobody
  is told, so only heartbeats find out.  :meth:`heal` delivers what was held
  on links still open (TCP retransmits);
* per-direction faults (:meth:`faults`): ``drop`` (probability a frame is lost:
  breaks the stream guarantee, meant for election-loss tests), ``delay``
  (uniform in ``[lo, hi]`` seconds, FIFO kept), ``mutate`` (rewrite a frame,
  e.g. garbage).

Determinism: every fault decision of a link direction comes from its own RNG,
seeded from ``(seed, src, dst, n-th link between them)``, so the k-th frame of
a given link meets the same fate whatever the interleaving of other tasks
(trio's scheduler itself is not seeded).  All waiting uses trio's clock, so
``MockClock(autojump_threshold=0)`` runs delays and timeouts instantly.
"""

from __future__ import annotations

import logging
import random
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

from .network import Handler, Link, LinkClosed, LinkError

log = logging.getLogger("trio_quorum.net.memory")


class _Signal:
    """Wake every waiter at once (an Event renewed on each notify)."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = trio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = trio.Event()

    async def wait(self) -> None:
        await self._event.wait()


@dataclass
class LinkFaults:
    """Faults of one direction ``src -> dst`` (mutable: tests flip them at will)."""

    drop: float = 0.0
    delay: tuple[float, float] = (0.0, 0.0)
    mutate: Callable[[bytes], bytes] | None = None


@dataclass(frozen=True, slots=True)
class ConnectAttempt:
    time: float
    src: str
    address: str
    outcome: str  # "connected", "refused", "timed out"


@dataclass(frozen=True, slots=True)
class LinkInfo:
    dialer: str
    acceptor: str
    address: str


class _Pipe:
    """One direction of a link."""

    def __init__(self, net: MemoryNetwork, src: str, dst: str, rng: random.Random) -> None:
        self.net, self.src, self.dst, self.rng = net, src, dst, rng
        self.buf: deque[tuple[float, bytes]] = deque()
        self.closed: str | None = None
        self.reset = False
        self.last_at = -float("inf")
        self.signal = _Signal()
        self.frames = 0
        self.dropped = 0

    def close(self, reason: str, *, reset: bool = False) -> None:
        if self.closed is None:
            self.closed = reason
        if reset:
            self.reset = True
            self.buf.clear()
        self.signal.notify()

    async def send(self, frame: bytes) -> None:
        while self.closed is None and len(self.buf) >= self.net.capacity:
            await self.signal.wait()
        if self.closed is not None:
            raise LinkClosed(f"{self.src}->{self.dst}: {self.closed}")
        delay = 0.0
        faults = self.net._faults.get((self.src, self.dst))
        if faults is not None:
            if faults.drop and self.rng.random() < faults.drop:
                self.dropped += 1
                await trio.lowlevel.checkpoint()
                return
            if faults.mutate is not None:
                frame = faults.mutate(frame)
            lo, hi = faults.delay
            if hi > 0:
                delay = self.rng.uniform(lo, hi)
        self.last_at = max(self.last_at, trio.current_time() + delay)
        self.buf.append((self.last_at, frame))
        self.frames += 1
        self.signal.notify()
        await trio.lowlevel.checkpoint()

    async def receive(self) -> bytes:
        while True:
            if self.reset:
                raise LinkClosed(f"{self.src}->{self.dst}: {self.closed}")
            if self.buf and not self.net.is_cut(self.src, self.dst):
                at, frame = self.buf[0]
                if at <= trio.current_time():
                    self.buf.popleft()
                    self.signal.notify()
                    await trio.lowlevel.checkpoint()
                    return frame
                with trio.move_on_at(at):
                    await self.signal.wait()
                continue
            if self.closed is not None and not self.buf:
                raise LinkClosed(f"{self.src}->{self.dst}: {self.closed}")
            await self.signal.wait()


class _MemoryLink:
    def __init__(self, net: MemoryNetwork, info: LinkInfo, out: _Pipe, inn: _Pipe) -> None:
        self.net, self.info, self._out, self._in = net, info, out, inn

    @property
    def remote(self) -> str:
        return self._out.dst

    async def send(self, frame: bytes) -> None:
        await self._out.send(frame)

    async def receive(self) -> bytes:
        return await self._in.receive()

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()

    def close(self, reason: str = "closed by the other side") -> None:
        self._out.close(reason)
        self._in.close("closed", reset=True)  # what we did not read is gone
        self.net._forget(self)


class MemoryEndpoint:
    """One node's view of a :class:`MemoryNetwork` (implements ``Network``)."""

    def __init__(self, net: MemoryNetwork, name: str) -> None:
        self.net, self.name = net, name

    async def serve(self, address: str, handler: Handler, *,
                    task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        net = self.net
        if address in net._listeners:
            raise LinkError(f"{address}: address already in use")
        async with trio.open_nursery() as nursery:
            net._listeners[address] = (self.name, handler, nursery)
            try:
                task_status.started(address)
                await trio.sleep_forever()
            finally:
                del net._listeners[address]
                nursery.cancel_scope.cancel(reason=f"listener {address} stopped")

    @asynccontextmanager
    async def connect(self, address: str, *, connect_timeout: float) -> AsyncIterator[Link]:
        net = self.net
        listener: tuple[str, Handler, trio.Nursery] | None = None
        with trio.move_on_after(connect_timeout) as scope:
            await trio.lowlevel.checkpoint()
            while True:
                listener = net._listeners.get(address)
                if listener is None:
                    net._attempt(self.name, address, "refused")
                    raise LinkError(f"{address}: connection refused")
                if not net.is_cut(self.name, listener[0]):
                    break
                await net._changed.wait()  # a SYN into a partition: wait for heal or connect_timeout
        if scope.cancelled_caught or listener is None:
            net._attempt(self.name, address, "timed out")
            raise LinkError(f"{address}: connect timed out after {connect_timeout} s")
        net._attempt(self.name, address, "connected")
        client, server = net._pair(self.name, listener[0], address)
        listener[2].start_soon(_handle, listener[1], server)
        try:
            yield client
        finally:
            client.close()


async def _handle(handler: Handler, link: _MemoryLink) -> None:
    try:
        await handler(link)
    except Exception:
        log.exception("handler for a link from %s crashed", link.remote)
    finally:
        link.close()


class MemoryNetwork:
    """Named endpoints joined by in-memory links with seeded faults (see the module doc)."""

    def __init__(self, seed: int = 0, *, capacity: int = 64) -> None:
        self.seed = seed
        self.capacity = capacity
        self._listeners: dict[str, tuple[str, Handler, trio.Nursery]] = {}
        self._faults: dict[tuple[str, str], LinkFaults] = {}
        self._cut: set[tuple[str, str]] = set()
        self._links: dict[_MemoryLink, None] = {}
        self._serials: Counter[tuple[str, str]] = Counter()
        self._changed = _Signal()
        self._logged = _Signal()
        self.connect_log: list[ConnectAttempt] = []

    def endpoint(self, name: str) -> MemoryEndpoint:
        return MemoryEndpoint(self, name)

    def faults(self, src: str, dst: str) -> LinkFaults:
        """The (mutable) faults of direction ``src -> dst``, for current and future links."""
        return self._faults.setdefault((src, dst), LinkFaults())

    def is_cut(self, src: str, dst: str) -> bool:
        return (src, dst) in self._cut

    def partition(self, side_a: Iterable[str], side_b: Iterable[str]) -> None:
        """Cut every pair across the two sides, both ways, silently."""
        side_b = list(side_b)
        for a in side_a:
            for b in side_b:
                self._cut.update({(a, b), (b, a)})

    def heal(self) -> None:
        """Remove every cut; held frames flow again on links still open."""
        self._cut.clear()
        self._changed.notify()
        for link in self._links:
            link._out.signal.notify()
            link._in.signal.notify()

    def disconnect(self, name: str, reason: str = "connection reset") -> int:
        """Reset every link of ``name`` (both ends see LinkClosed at once); how many."""
        doomed = [link for link in self._links if name in (link.info.dialer, link.info.acceptor)]
        for link in doomed:
            link._out.close(reason, reset=True)
            link._in.close(reason, reset=True)
            self._forget(link)
        return len(doomed) // 2

    def links(self) -> list[LinkInfo]:
        """The open links, one entry each (seen from the dialer's side)."""
        return sorted({link.info for link in self._links},
                      key=lambda i: (i.dialer, i.acceptor, i.address))

    def _attempt(self, src: str, address: str, outcome: str) -> None:
        self.connect_log.append(ConnectAttempt(trio.current_time(), src, address, outcome))
        self._logged.notify()

    async def wait_connect_log(self, predicate: Callable[[list[ConnectAttempt]], bool]) -> None:
        """Until ``predicate(connect_log)`` holds (checked after each attempt)."""
        while not predicate(self.connect_log):
            await self._logged.wait()

    def _pair(self, dialer: str, acceptor: str, address: str) -> tuple[_MemoryLink, _MemoryLink]:
        n = self._serials[(dialer, acceptor)]
        self._serials[(dialer, acceptor)] += 1
        up = _Pipe(self, dialer, acceptor, random.Random(f"{self.seed}:{dialer}->{acceptor}#{n}"))
        down = _Pipe(self, acceptor, dialer, random.Random(f"{self.seed}:{acceptor}->{dialer}#{n}"))
        info = LinkInfo(dialer, acceptor, address)
        client, server = _MemoryLink(self, info, up, down), _MemoryLink(self, info, down, up)
        self._links[client] = None
        self._links[server] = None
        return client, server

    def _forget(self, link: _MemoryLink) -> None:
        self._links.pop(link, None)
        # the other end of a link whose both pipes are closed is gone too
        for other in [x for x in self._links if x._out is link._in and x._in is link._out]:
            if other._out.closed is not None and other._in.closed is not None:
                self._links.pop(other, None)
