"""Peer links of one channel of one peer: ZooKeeper's QuorumCnxManager on supervised actors.

One :class:`PeerLinks` per channel (election, quorum) per peer::

    peer-links                  one_for_one supervisor (``parent`` names it or nests it)
      listener                  serves our address; checks each HELLO; hands links over
      sender-<sid>              one per other peer: dials or waits, then runs the link
                                (a send loop and a receive loop), reconnects with backoff

Which connection is kept (QuorumCnxManager's rule, read from
``startConnection``/``handleConnection``): between two peers exactly one link
is kept, the one OPENED BY THE LARGER sid.

* ``sender-<sid>`` with ``sid < mine`` dials ``sid`` and keeps the link.
* ``sender-<sid>`` with ``sid > mine`` never keeps a link it opens.  It waits
  for ``sid`` to dial; meanwhile (at start, and after each backoff delay) it
  "pokes": dials, sends HELLO and closes at once (ZooKeeper's ``connectOne``
  to a larger sid does just that: "Have smaller server identifier, so
  dropping the connection").
* The listener, on a HELLO from a SMALLER sid, drops that connection and makes
  ``sender-<sid>`` dial now, cutting its backoff short (ZooKeeper: "Create new
  connection to server").  As ZooKeeper does, it first ends a link it still
  believes up to that sid (the poke says the other side has none), unless the
  link is younger than ``handshake_timeout``: then the poke crossed the link's
  own set-up and is ignored.
* On a HELLO from a LARGER sid it answers HELLO and the link replaces any older
  one from that sid (ZooKeeper: ``vsw.finish()``): the newest wins.
* A HELLO with another framing version, another channel, an unknown sid or our
  own sid is answered with REJECT(reason) and dropped; the dialer logs the reason.

Outboxes (per peer, kept across links):

* election: LATEST VALUE.  A new message replaces an unsent one (ZooKeeper's
  send queue of capacity 1), and it waits while the link is down; on a new
  link with nothing pending the last message sent is sent again (ZooKeeper's
  ``lastMessageSent``), since it may have died with the old link.
* quorum: FIFO, unbounded but accounted.  A link is a session: the peer
  receives a prefix of what was sent while that link was up, in order.
  Messages sent while no link is up, and unsent ones when a link goes down,
  are dropped and counted: ZAB restarts its handshake on a new link anyway.
  ``send(..., link_id=)`` drops messages meant for a link that is gone.

The sender sends everything pending in one frame (several only past the
frame limits): batching, since a WebSocket frame costs far more than a message.

Inbound: one memory channel of :class:`LinkUp`, :class:`Batch`,
:class:`LinkDown`; per sid, in that order for each link.  It is bounded
(``inbound_buffer``): a owner that stops reading stalls the receive loops, the
peers' sends then time out and they drop their links.

Failure isolation: every peer has its own task; every send is bounded
(``send_timeout``), every connect and handshake too; an idle link sends an
empty frame every ``heartbeat_interval`` and a link that receives nothing for
``heartbeat_timeout`` is dropped (a half-dead peer, a silent partition).  A
frame that fails to decode drops that link only (logged, counted); the peer is
redialled as after any failure.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

import actors
from actors import ChildSpec

from ..quorum import wire
from ..quorum.wire import Catalogue, Channel, Hello, Limits, Reject, WireError
from .backoff import Backoff
from .network import Link, LinkError, Network

log = logging.getLogger("trio_quorum.net.links")


# -- what the owner sees -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkUp:
    sid: int
    link_id: int
    dialed: bool  # True: we opened it (our sid is the larger)


@dataclass(frozen=True, slots=True)
class LinkDown:
    sid: int
    link_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class Batch:
    sid: int
    link_id: int
    messages: list[object]


Inbound = LinkUp | Batch | LinkDown


@dataclass(frozen=True, slots=True)
class LinksConfig:
    connect_timeout: float = 5.0
    handshake_timeout: float = 5.0
    send_timeout: float = 5.0
    heartbeat_interval: float = 0.5
    heartbeat_timeout: float = 2.0
    min_backoff: float = 0.05
    max_backoff: float = 2.0
    inbound_buffer: int = 1024
    limits: Limits = wire.DEFAULT_LIMITS
    seed: int = 0


@dataclass(frozen=True, slots=True)
class PeerStatistics:
    sid: int
    address: str | None
    up: bool
    link_id: int | None
    links_opened: int
    last_down_reason: str | None
    frames_sent: int
    messages_sent: int
    bytes_sent: int
    heartbeats_sent: int
    frames_received: int
    messages_received: int
    bytes_received: int
    pending_messages: int
    pending_bytes: int
    max_pending_messages: int
    replaced: int
    dropped: int
    garbage: int
    connect_failures: int
    pokes_sent: int
    pokes_received: int


@dataclass(frozen=True, slots=True)
class LinksStatistics:
    my_sid: int
    channel: Channel
    address: str | None
    handshakes_refused: int
    inbound_backlog: int
    peers: Mapping[int, PeerStatistics]


# -- outboxes ----------------------------------------------------------------


class _Outbox:
    def __init__(self) -> None:
        self.event = trio.Event()
        self.replaced = 0
        self.dropped = 0
        self.max_pending = 0

    def _wake(self) -> None:
        self.event.set()

    async def wait(self) -> None:
        if not self:
            self.event = trio.Event()
            await self.event.wait()

    def __bool__(self) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError

    def put(self, encoded: Sequence[bytes], up: bool) -> bool:  # pragma: no cover
        raise NotImplementedError

    def take(self, limits: Limits) -> list[bytes]:  # pragma: no cover
        raise NotImplementedError

    def link_up(self) -> None:
        pass

    def link_down(self) -> None:
        pass

    def pending(self) -> tuple[int, int]:  # pragma: no cover
        raise NotImplementedError


class LatestOutbox(_Outbox):
    """Election: one slot; a newer message replaces an unsent one."""

    def __init__(self) -> None:
        super().__init__()
        self.slot: bytes | None = None
        self.last_sent: bytes | None = None

    def __bool__(self) -> bool:
        return self.slot is not None

    def put(self, encoded: Sequence[bytes], up: bool) -> bool:
        if not encoded:
            return True
        self.replaced += len(encoded) - 1 + (self.slot is not None)
        self.slot = encoded[-1]
        self.max_pending = 1
        self._wake()
        return True

    def take(self, limits: Limits) -> list[bytes]:
        if self.slot is None:
            return []
        self.last_sent, self.slot = self.slot, None
        return [wire.frame([self.last_sent], limits)]

    def link_up(self) -> None:
        if self.slot is None and self.last_sent is not None:
            self.slot = self.last_sent  # it may have died with the old link
            self._wake()

    def pending(self) -> tuple[int, int]:
        return (0, 0) if self.slot is None else (1, len(self.slot))


class FifoOutbox(_Outbox):
    """Quorum: FIFO while a link is up; dropped (counted) when there is none."""

    def __init__(self) -> None:
        super().__init__()
        self.queue: deque[bytes] = deque()
        self.bytes = 0

    def __bool__(self) -> bool:
        return bool(self.queue)

    def put(self, encoded: Sequence[bytes], up: bool) -> bool:
        if not up:
            self.dropped += len(encoded)
            return False
        self.queue.extend(encoded)
        self.bytes += sum(map(len, encoded))
        if len(self.queue) > self.max_pending:
            self.max_pending = len(self.queue)
        self._wake()
        return True

    def take(self, limits: Limits) -> list[bytes]:
        if not self.queue:
            return []
        frames = list(wire.pack(self.queue, limits))
        self.queue.clear()
        self.bytes = 0
        return frames

    def link_down(self) -> None:
        self.dropped += len(self.queue)
        self.queue.clear()
        self.bytes = 0

    def pending(self) -> tuple[int, int]:
        return len(self.queue), self.bytes


# -- per-peer state ----------------------------------------------------------


@dataclass(eq=False)
class _Peer:
    sid: int
    address: str | None
    outbox: _Outbox
    backoff: Backoff
    running: bool = False
    link_id: int | None = None
    link_since: float = 0.0
    link_scope: trio.CancelScope | None = None
    offered: tuple[Link, trio.Event] | None = None
    cut_reason: str | None = None
    woken: bool = False
    wake: trio.Event = field(default_factory=trio.Event)
    counters: dict[str, int] = field(default_factory=dict)
    last_down_reason: str | None = None

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def cut(self, reason: str) -> None:
        """End the running link (if any) with ``reason``."""
        if self.link_scope is not None:
            self.cut_reason = reason
            self.link_scope.cancel(reason=reason)

    def wake_now(self) -> None:
        self.woken = True
        self.wake.set()

    async def wait_woken(self, delay: float) -> None:
        if not (self.woken or self.offered):
            self.wake = trio.Event()
            with trio.move_on_after(delay):
                await self.wake.wait()
        self.woken = False

    def release_offer(self) -> None:
        if self.offered is not None:
            self.offered[1].set()
            self.offered = None


# -- the links ---------------------------------------------------------------


class PeerLinks:
    """The links of one channel of one peer.  Open with :func:`open_peer_links`."""

    def __init__(self, network: Network, my_sid: int, peers: Mapping[int, str | None],
                 channel: Channel, catalogue: Catalogue, config: LinksConfig) -> None:
        if my_sid not in peers or not peers[my_sid]:
            raise ValueError(f"peers must give our own listen address (sid {my_sid})")
        self.network = network
        self.my_sid = my_sid
        self.channel = channel
        self.catalogue = catalogue
        self.config = config
        self.listen_address: str = peers[my_sid]  # type: ignore[assignment]
        self.address: str | None = None  # bound, once listening
        self._hello = wire.encode_hello(Hello(my_sid, wire.PROTOCOL_VERSION, channel))
        self._peers: dict[int, _Peer] = {}
        for sid, address in sorted(peers.items()):
            if sid == my_sid:
                continue
            rng = random.Random(f"{config.seed}:{channel.name}:{my_sid}->{sid}")
            outbox: _Outbox = LatestOutbox() if channel is Channel.ELECTION else FifoOutbox()
            self._peers[sid] = _Peer(sid, address, outbox,
                                     Backoff(config.min_backoff, config.max_backoff, rng=rng))
        self._inbound_send, self.inbound = trio.open_memory_channel[Inbound](config.inbound_buffer)
        self._link_ids = 0
        self._refused = 0
        self.supervisor: actors.Supervisor | None = None

    # -- owner API (never blocks) --

    def send(self, sid: int, messages: Iterable[object], *, link_id: int | None = None) -> bool:
        """Queue ``messages`` for ``sid``; False if dropped (no link, or not ``link_id``).

        Raises ``WireError`` (from the caller's own records) and ``KeyError``
        for a sid that is not a peer.
        """
        peer = self._peers[sid]
        encoded = [self.catalogue.encode(m, self.config.limits) for m in messages]
        if link_id is not None and peer.link_id != link_id:
            peer.outbox.dropped += len(encoded)
            return False
        return peer.outbox.put(encoded, peer.link_id is not None)

    def broadcast(self, messages: Iterable[object]) -> None:
        """Queue ``messages`` for every peer (encoded once)."""
        encoded = [self.catalogue.encode(m, self.config.limits) for m in messages]
        for peer in self._peers.values():
            peer.outbox.put(encoded, peer.link_id is not None)

    def set_address(self, sid: int, address: str | None) -> None:
        """Where ``sid`` listens (e.g. learned after it bound port 0, or by reconfig)."""
        peer = self._peers[sid]
        peer.address = address
        peer.wake_now()

    def is_up(self, sid: int) -> bool:
        return self._peers[sid].link_id is not None

    def statistics(self) -> LinksStatistics:
        peers = {}
        for sid, p in self._peers.items():
            c = p.counters.get
            pending_messages, pending_bytes = p.outbox.pending()
            peers[sid] = PeerStatistics(
                sid=sid, address=p.address, up=p.link_id is not None, link_id=p.link_id,
                links_opened=c("links_opened", 0), last_down_reason=p.last_down_reason,
                frames_sent=c("frames_sent", 0), messages_sent=c("messages_sent", 0),
                bytes_sent=c("bytes_sent", 0), heartbeats_sent=c("heartbeats_sent", 0),
                frames_received=c("frames_received", 0),
                messages_received=c("messages_received", 0),
                bytes_received=c("bytes_received", 0), pending_messages=pending_messages,
                pending_bytes=pending_bytes, max_pending_messages=p.outbox.max_pending,
                replaced=p.outbox.replaced, dropped=p.outbox.dropped, garbage=c("garbage", 0),
                connect_failures=c("connect_failures", 0), pokes_sent=c("pokes_sent", 0),
                pokes_received=c("pokes_received", 0),
            )
        return LinksStatistics(
            self.my_sid, self.channel, self.address, self._refused,
            self._inbound_send.statistics().current_buffer_used, peers,
        )

    # -- actors --

    async def _listener(self, ctx: actors.Context, inbox: Any, *, task_status: Any) -> None:
        failure: LinkError | None = None
        async with trio.open_nursery() as nursery:
            try:
                self.address = await nursery.start(self.network.serve, self.listen_address,
                                                   self._on_link)
            except LinkError as exc:
                failure = exc
            else:
                task_status.started(self.address)
                await ctx.wait_stop_requested()
            nursery.cancel_scope.cancel(reason=f"{ctx.path} stopping")
        if failure is not None:
            raise failure

    async def _sender(self, peer: _Peer, ctx: actors.Context, inbox: Any, *,
                      task_status: Any) -> None:
        peer.running = True
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._connect_loop, peer)
                task_status.started()
                await ctx.wait_stop_requested()
                nursery.cancel_scope.cancel(reason=f"{ctx.path} stopping")
        finally:
            peer.running = False
            peer.release_offer()

    # -- connection management --

    async def _connect_loop(self, peer: _Peer) -> None:
        while True:
            if peer.sid < self.my_sid:
                await self._dial(peer)
                await peer.wait_woken(peer.backoff.next())
            else:
                if peer.offered is not None:
                    link, done = peer.offered
                    peer.offered = None
                    try:
                        await self._run_link(peer, link, dialed=False)
                    finally:
                        done.set()
                    continue
                await self._poke(peer)
                if peer.offered is None:
                    await peer.wait_woken(peer.backoff.next())

    async def _dial(self, peer: _Peer) -> None:
        address = peer.address
        if address is None:
            return
        cfg = self.config
        try:
            async with self.network.connect(address, connect_timeout=cfg.connect_timeout) as link:
                with trio.move_on_after(cfg.handshake_timeout) as scope:
                    await link.send(self._hello)
                    reply = await link.receive()
                if scope.cancelled_caught:
                    raise LinkError(f"no HELLO from {address} in {cfg.handshake_timeout} s")
                try:
                    answer = wire.decode_handshake(reply)
                except WireError as exc:
                    raise LinkError(f"bad handshake from {address}: {exc}") from None
                if isinstance(answer, Reject):
                    raise LinkError(f"sid {peer.sid} at {address} refused the link: {answer.reason}")
                problem = self._check(answer, expected=peer.sid)
                if problem:
                    raise LinkError(f"{address}: {problem}")
                await self._run_link(peer, link, dialed=True)
        except LinkError as exc:
            peer.count("connect_failures")
            log.info("%s/%s: link to sid %d: %s", self.my_sid, self.channel.name, peer.sid, exc)

    async def _poke(self, peer: _Peer) -> None:
        """Dial a larger sid only to make it dial us (it drops what we open)."""
        if peer.address is None:
            return
        try:
            async with self.network.connect(peer.address, connect_timeout=self.config.connect_timeout) as link:
                with trio.move_on_after(self.config.send_timeout):
                    await link.send(self._hello)
                    peer.count("pokes_sent")
        except LinkError as exc:
            peer.count("connect_failures")
            log.debug("%s/%s: poke to sid %d: %s", self.my_sid, self.channel.name, peer.sid, exc)

    def _check(self, hello: Hello, expected: int | None = None) -> str | None:
        if hello.version != wire.PROTOCOL_VERSION:
            return f"framing version {hello.version}, expected {wire.PROTOCOL_VERSION}"
        if hello.channel is not self.channel:
            return f"channel {hello.channel.name}, this is the {self.channel.name} port"
        if hello.sid == self.my_sid:
            return f"sid {hello.sid} is our own (misconfigured peer?)"
        if hello.sid not in self._peers:
            return f"unknown sid {hello.sid}"
        if expected is not None and hello.sid != expected:
            return f"answered as sid {hello.sid}, expected {expected}"
        return None

    async def _on_link(self, link: Link) -> None:
        """A new link on our listener (its task ends when the link is done with)."""
        cfg = self.config
        try:
            with trio.move_on_after(cfg.handshake_timeout) as scope:
                data = await link.receive()
            if scope.cancelled_caught:
                raise LinkError(f"no HELLO in {cfg.handshake_timeout} s")
            hello = wire.decode_handshake(data)
            if isinstance(hello, Reject):
                raise LinkError("REJECT sent by the dialer")
        except (LinkError, WireError) as exc:
            self._refused += 1
            log.info("%s/%s: link from %s dropped: %s", self.my_sid, self.channel.name,
                     link.remote, exc)
            return
        problem = self._check(hello)
        if problem is not None:
            self._refused += 1
            log.warning("%s/%s: link from %s refused: %s", self.my_sid, self.channel.name,
                        link.remote, problem)
            with trio.move_on_after(cfg.send_timeout):
                try:
                    await link.send(wire.encode_reject(problem))
                except LinkError:
                    pass
            return
        peer = self._peers[hello.sid]
        if hello.sid < self.my_sid:
            # they lost the challenge: drop this one, and dial them ourselves now
            peer.count("pokes_received")
            young = trio.current_time() - peer.link_since < cfg.handshake_timeout
            if not young:
                peer.cut(f"sid {peer.sid} reconnects: our link is stale")
            peer.wake_now()
            return
        if not peer.running:
            return
        with trio.move_on_after(cfg.send_timeout) as scope:
            try:
                await link.send(self._hello)
            except LinkError:
                return
        if scope.cancelled_caught:
            return
        done = trio.Event()
        peer.release_offer()
        peer.offered = (link, done)
        peer.cut(f"replaced by a newer link from sid {peer.sid}")
        peer.wake_now()
        await done.wait()

    # -- a running link --

    async def _run_link(self, peer: _Peer, link: Link, *, dialed: bool) -> None:
        self._link_ids += 1
        link_id = self._link_ids
        peer.link_id, peer.link_since = link_id, trio.current_time()
        peer.count("links_opened")
        peer.outbox.link_up()
        log.info("%s/%s: link %d to sid %d up (%s)", self.my_sid, self.channel.name, link_id,
                 peer.sid, "dialed" if dialed else "accepted")
        reason = "cancelled"
        try:
            await self._inbound_send.send(LinkUp(peer.sid, link_id, dialed))
            peer.cut_reason = None
            with trio.CancelScope() as scope:
                peer.link_scope = scope
                reason = await self._pump(peer, link, link_id)
            if scope.cancelled_caught:
                reason = peer.cut_reason or "cut"
        finally:
            peer.link_scope = None
            peer.link_id = None
            peer.outbox.link_down()
            peer.last_down_reason = reason
            if trio.current_time() - peer.link_since >= self.config.heartbeat_timeout:
                peer.backoff.reset()  # it stayed up: the next failure starts over
            log.info("%s/%s: link %d to sid %d down: %s", self.my_sid, self.channel.name,
                     link_id, peer.sid, reason)
            try:
                self._inbound_send.send_nowait(LinkDown(peer.sid, link_id, reason))
            except trio.WouldBlock:
                with trio.CancelScope(shield=True), trio.move_on_after(self.config.send_timeout):
                    await self._inbound_send.send(LinkDown(peer.sid, link_id, reason))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    async def _pump(self, peer: _Peer, link: Link, link_id: int) -> str:
        reason = "link closed"
        async with trio.open_nursery() as nursery:

            async def run(loop: Any) -> None:
                nonlocal reason
                why = await loop(peer, link, link_id)
                if not nursery.cancel_scope.cancel_called:
                    reason = why
                    nursery.cancel_scope.cancel(reason=why)

            nursery.start_soon(run, self._send_loop)
            nursery.start_soon(run, self._receive_loop)
        return reason

    async def _send_loop(self, peer: _Peer, link: Link, link_id: int) -> str:
        cfg = self.config
        outbox = peer.outbox
        count = peer.count
        while True:
            if not outbox:
                with trio.move_on_after(cfg.heartbeat_interval):
                    await outbox.wait()
            frames = outbox.take(cfg.limits)
            if not frames:
                frames = [wire.HEARTBEAT]
                count("heartbeats_sent")
            for data in frames:
                with trio.move_on_after(cfg.send_timeout) as scope:
                    try:
                        await link.send(data)
                    except LinkError as exc:
                        return f"send failed: {exc}"
                if scope.cancelled_caught:
                    return f"send timed out after {cfg.send_timeout} s (peer not reading?)"
                count("frames_sent")
                count("bytes_sent", len(data))
                count("messages_sent", _message_count(data))

    async def _receive_loop(self, peer: _Peer, link: Link, link_id: int) -> str:
        cfg = self.config
        decode = self.catalogue.decode_frame
        count = peer.count
        while True:
            with trio.move_on_after(cfg.heartbeat_timeout) as scope:
                try:
                    data = await link.receive()
                except LinkError as exc:
                    return f"closed: {exc}"
            if scope.cancelled_caught:
                return f"nothing received for {cfg.heartbeat_timeout} s (heartbeat timeout)"
            try:
                messages = decode(data, cfg.limits)
            except WireError as exc:
                count("garbage")
                log.warning("%s/%s: garbage from sid %d, dropping link %d: %s", self.my_sid,
                            self.channel.name, peer.sid, link_id, exc)
                return f"garbage frame: {exc}"
            count("frames_received")
            count("bytes_received", len(data))
            if messages:
                count("messages_received", len(messages))
                try:
                    await self._inbound_send.send(Batch(peer.sid, link_id, messages))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass  # nobody reads inbound any more


def _message_count(frame: bytes) -> int:
    """The message count of a frame we built (from its CBOR array header)."""
    info = frame[0] & 0x1F
    if info < 24:
        return info
    width = 1 << (info - 24)
    return int.from_bytes(frame[1:1 + width], "big")


@asynccontextmanager
async def open_peer_links(
    network: Network,
    my_sid: int,
    peers: Mapping[int, str | None],
    channel: Channel,
    catalogue: Catalogue,
    *,
    config: LinksConfig = LinksConfig(),
    parent: actors.Context | str = "peer-links",
    tree: actors.ActorTree | None = None,
) -> AsyncIterator[PeerLinks]:
    """Run the links of one channel; ``peers`` maps every sid (ours too) to its address.

    Ready when listening (``links.address`` is the bound address).  The
    supervisor (``parent``: a root name, or the ``ctx`` of the actor this runs
    in) has children ``listener`` and ``sender-<sid>``; it is ``links.supervisor``.

    Raises ``LinkError`` if the listener cannot start (address in use).
    """
    links = PeerLinks(network, my_sid, peers, channel, catalogue, config)
    children = [ChildSpec("listener", links._listener, shutdown=1.0, mailbox=0)]
    for sid, peer in links._peers.items():
        children.append(ChildSpec(f"sender-{sid}", _bind(links, peer), shutdown=1.0, mailbox=0))
    try:
        async with actors.open_supervisor(
            parent, strategy=actors.ONE_FOR_ONE, children=children,
            max_restarts=10, max_seconds=10.0, tree=tree,
        ) as sup:
            links.supervisor = sup
            async with links._inbound_send:  # the owner sees the end of inbound
                yield links
    except actors.ChildStartFailed as exc:
        if isinstance(exc.__cause__, LinkError):
            raise exc.__cause__ from None
        raise


def _bind(links: PeerLinks, peer: _Peer) -> Any:
    async def sender(ctx: actors.Context, inbox: Any, *, task_status: Any) -> None:
        await links._sender(peer, ctx, inbox, task_status=task_status)

    return sender
