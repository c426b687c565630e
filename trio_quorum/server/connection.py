"""One actor per client connection: framing, the handshake, batching, coalesced replies.

A connection owns a non-blocking stdlib socket and has two tasks: the
*reader* (this actor's body) and the *writer*.  Both use trio's low-level IO
directly (``trio.lowlevel.wait_readable`` / ``wait_writable``), not
``trio.SocketStream``: a stream checkpoints (a whole scheduler round, ~10-15
us here) after every successful ``recv`` and ``send``, and a reply that goes
through a separate writer task costs another round to wake it.

* The reader tries ``recv`` first and waits for readability only when the
  kernel has nothing; it yields (``trio.lowlevel.checkpoint``) after every
  ``_READS_PER_CHECKPOINT`` consecutive successful reads, so a connection
  that is always readable cannot starve other tasks and is still cancelled
  (abort, server shutdown) within a few reads.  Every complete frame of a
  read is decoded and goes to the pipeline as ONE batch (one channel message
  per read, never one per request).
* :meth:`ClientConnection.deliver` (the final stage, once per connection per
  batch; the reader's fast path, once per read) sends at once: when nothing is
  queued it does ONE non-blocking ``send`` of the frames joined, in the
  caller's step.  What the kernel did not take is queued and the writer task
  (woken only then) sends the rest, waiting for writability.  While anything
  is queued, later frames are appended behind it, so bytes leave in the order
  they were delivered.  A send error never reaches the caller (the final
  stage serves other connections): the connection is marked broken, its
  queue dropped, and its writer ends it like any disconnect.

A fast-path read therefore costs one scheduler round (the reader's wake-up):
recv, answer, send, recv (would block), wait.

Invariants:

* The first frame is a ConnectRequest or a four-letter word.  Until the
  session is established (ConnectResponse queued) the reader takes no other
  frame: packets the client pipelined after the ConnectRequest (auth,
  setWatches) wait, as with ZooKeeper's ``disableRecv``.
* Watch notifications and replies for one connection go through the same
  out-buffer in the order the final stage produced them, so a notification is
  always ahead of any later reply.
* Read fast path: when the connection has nothing in the pipeline
  (``outstanding == 0``; the connection it took the session over from, if
  any, drained too), the reads of a socket read (getData, exists,
  getChildren(2), getACL, getAllChildrenNumber, ping) are answered right
  here, up to the first request that must go through the pipeline; from then
  on everything of that read goes to the pipeline.  Why ZooKeeper's
  guarantees still hold:

  - per-session FIFO: every earlier request of the session has been
    answered, and later ones of the same read queue behind the first one that
    went to the pipeline;
  - a watch event before any later read's reply: the final stage queues events
    on this connection's out-buffer synchronously, in the same step that
    applies the write, so any event owed for a write visible in the tree is
    already ahead of the reply appended now;
  - no read sees an unsynced write: the tree only holds applied txns, applied
    after their fsync;
  - single owner of the tree: Trio runs one task at a time and the fast path
    contains no ``await``, so it never observes the final stage half-way
    through a batch; the session check is ``Prep.prepare``'s, the answer is the
    final stage's (``Pipeline.answer_read``), so the bytes are the same;
  - a tree a crashed final stage may have half-updated is never read
    (``Pipeline.tree_trusted``).
* A framing or decode error closes THIS connection only, with a log line; the
  session stays alive until it expires or the client reconnects.
* Closing a connection removes its watches and its per-IP count; it never
  closes the session (only closeSession or expiry do).
  :meth:`ClientConnection.close_after_flush` sends everything queued, then
  closes; :meth:`ClientConnection.abort` closes at once, dropping unsent
  bytes; either way ``run``'s ``finally`` tells the server
  (``connection_closed``) and closes the socket (``notify_closing`` first, so
  no task is left waiting on a closed fd; a synchronous close, so bounded).
* Back-pressure: a connection with more than ``_OUT_HIGH_WATER`` bytes queued
  (its client is not reading) is not read until the writer brings it below.
"""

from __future__ import annotations

import logging
import socket
import struct
from typing import TYPE_CHECKING, Any, Protocol

import trio

from ..protocol.consts import Err, KeeperError, OpCode, Xid
from ..protocol.framing import FourLetterWord, FrameDecoder, FrameError
from ..protocol.records import (
    ConnectRequest,
    ProtocolError,
    decode_connect_request,
    decode_request,
    encode_connect_response,
    encode_reply,
)
from .request import UNIMPLEMENTED, Request
from .stats import ConnStats

if TYPE_CHECKING:
    from ..config import ServerConfig
    from ..core.auth import AuthRegistry
    from ..core.sessions import SessionTracker
    from ..protocol.data import Id
    from .stats import ServerStats

__all__ = ["ClientConnection", "ConnectionHost", "close_socket"]

log = logging.getLogger("trio_quorum.server.connection")

_READ_SIZE = 65536
#: The reader yields to other tasks after this many consecutive successful reads.
_READS_PER_CHECKPOINT = 8
#: Stop reading from a client whose unsent replies exceed this (it is not reading).
_OUT_HIGH_WATER = 4 * 1024 * 1024
#: Buffers per ``sendmsg`` when the writer sends a queue of several (Linux IOV_MAX is 1024).
_IOV_MAX = 512
_ZERO_PASSWD = bytes(16)
#: RequestHeader (xid, type) at the start of every frame after the ConnectRequest.
_HEADER = struct.Struct(">ii")
_AUTH_XID = int(Xid.AUTH)
_AUTH_OP = int(OpCode.auth)
#: Reads answered by the fast path: no txn, no events owed, one reply frame.
#: (setWatches*, addWatch, removeWatches, checkWatches, sync, multiRead, whoAmI
#: and getEphemerals keep going through the pipeline.)
_FAST_READS = frozenset(
    int(o) for o in (OpCode.getData, OpCode.exists, OpCode.getChildren, OpCode.getChildren2,
                     OpCode.getACL, OpCode.getAllChildrenNumber, OpCode.ping)
)


class ConnectionHost(Protocol):
    """What a connection needs of the peer (the client port implements it)."""

    config: ServerConfig
    stats: ServerStats
    auth: AuthRegistry
    tracker: SessionTracker
    throttle: trio.lowlevel.ParkingLot

    @property
    def mode(self) -> str: ...
    @property
    def serving(self) -> bool: ...
    def now_ms(self) -> int: ...
    def wall_ms(self) -> int: ...
    def last_zxid(self) -> int: ...
    def submit(self, batch: list[Request]) -> None: ...
    def fast_reads(self) -> bool: ...
    def check_session(self, req: Request) -> None: ...
    def confirm_session(self, conn: ClientConnection, session_id: int, timeout: int) -> None: ...
    def answer_read(self, req: Request, frames: list[bytes]) -> None: ...
    def bind_session(self, session_id: int, conn: ClientConnection) -> None: ...
    def close_other_connections(self, session_id: int, conn: ClientConnection) -> None: ...
    def connection_for(self, session_id: int) -> ClientConnection | None: ...
    def connection_closed(self, conn: ClientConnection) -> None: ...
    def four_letter_word(self, cmd: str) -> str: ...
    def validate_session(self, session_id: int) -> str | None: ...


class ClientConnection:
    """A client connection.  Hashable by identity: it is the watcher key."""

    def __init__(self, server: ConnectionHost, sock: socket.socket, remote: tuple[str, int]) -> None:
        #: The host (the client port): named ``server`` as in ZooKeeper's ServerCnxn.
        self.server = server
        #: Non-blocking, owned by this connection (closed by :meth:`run`).
        self.sock = sock
        self.remote = remote
        self.session_id = 0
        self.session_timeout = 0
        self.established_ms = 0
        self.auth_ids: list[Id] = server.auth.initial_ids(remote[0])
        self.stats = ConnStats()
        self.outstanding = 0
        # None: the client sent no readOnly byte (old format), echo that.
        self.read_only_format: bool | None = False
        #: Bytes delivered but not yet taken by the kernel, in order (the head may be
        #: a memoryview of a partly sent buffer).  Mutated in place, never replaced.
        self._out: list[bytes | memoryview] = []
        self._out_bytes = 0
        #: Bytes queued by ``deliver`` and not yet counted as a flush in the server's
        #: response-size stats (counted when the writer empties the queue).
        self._out_unflushed = 0
        #: Why a send failed; the writer raises it (the connection ends).
        self._broken: OSError | None = None
        self._lot = trio.lowlevel.ParkingLot()  # the writer waits here for queued bytes
        self._drained = trio.lowlevel.ParkingLot()
        self._session_ready = trio.Event()
        self.closing = False
        self.closed = False
        self._cancel = trio.CancelScope()
        #: The connection this one took the session over from (read fast path).
        self._predecessor: ClientConnection | None = None

    # ------------------------------------------------------------ used by the pipeline
    @property
    def interest_ops(self) -> int:
        return 0 if self.closing else 1

    def deliver(self, frames: list[bytes]) -> None:
        """Send reply/notification frames (already encoded), in order, in one write.

        Synchronous and never raises: with nothing queued, ONE non-blocking
        ``send`` of the frames joined, here and now; the rest (or, when bytes
        are already queued, all of it) is queued behind what is there and sent
        by the writer.  A send error marks the connection broken (see
        :meth:`_send_now`).
        """
        if self.closed or self._broken is not None or not frames:
            return
        k = len(frames)
        self.stats.packets_sent += k
        self.server.stats.packets_sent += k
        if self._out:  # never overtake queued bytes
            n = sum(map(len, frames))
            self._out.extend(frames)
            self._out_bytes += n
            self._out_unflushed += n
            return  # the writer is already awake: it only parks with an empty queue
        data = frames[0] if k == 1 else b"".join(frames)
        self._record_flush(len(data))
        self._send_now(data)

    def deliver_one(self, frame: bytes) -> None:
        """:meth:`deliver` of one frame."""
        if self.closed or self._broken is not None:
            return
        self.stats.packets_sent += 1
        self.server.stats.packets_sent += 1
        if self._out:
            self._out.append(frame)
            self._out_bytes += len(frame)
            self._out_unflushed += len(frame)
            return
        self._record_flush(len(frame))
        self._send_now(frame)

    def _send_raw(self, data: bytes) -> None:
        """Send bytes that are not protocol packets (a 4lw answer): no packet stats."""
        if self.closed or self._broken is not None:
            return
        if self._out:
            self._out.append(data)
            self._out_bytes += len(data)
            return
        self._send_now(data)

    def _send_now(self, data: bytes) -> None:
        """One non-blocking send of ``data`` (nothing is queued); queue what the kernel left."""
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            # EPIPE, ECONNRESET, ...: the caller may be the final stage, which
            # serves other connections, so never raise; the writer ends this one.
            self._break(exc)
            return
        if sent < len(data):
            self._out.append(memoryview(data)[sent:] if sent else data)
            self._out_bytes += len(data) - sent
            self._lot.unpark_all()

    def _break(self, exc: OSError) -> None:
        if self._broken is None:
            self._broken = exc
        self.closing = True
        self._out.clear()
        self._out_bytes = 0
        self._out_unflushed = 0
        self._lot.unpark_all()
        self._drained.unpark_all()

    def _record_flush(self, n: int) -> None:
        """Response-size stats, one entry per write of a batch of frames (as ZooKeeper's per flush)."""
        st = self.server.stats
        st.last_client_response_size = n
        if n > st.max_client_response_size:
            st.max_client_response_size = n
        if st.min_client_response_size < 0 or n < st.min_client_response_size:
            st.min_client_response_size = n

    def finish_session_init(self, session_id: int, timeout: int, valid: bool) -> None:
        """``ZooKeeperServer.finishSessionInit``: queue the ConnectResponse; an invalid
        session gets (timeout 0, session 0, zero password) and the connection closes."""
        if valid:
            self.session_id = session_id
            self.session_timeout = timeout
            self.established_ms = self.server.wall_ms()
            passwd = self.server.tracker.password(session_id)
            self.deliver_one(encode_connect_response(0, timeout, session_id, passwd, self._ro_answer()))
            self.server.bind_session(session_id, self)
        else:
            self.deliver_one(encode_connect_response(0, 0, 0, _ZERO_PASSWD, self._ro_answer()))
            self.close_after_flush()
        self._session_ready.set()

    def _ro_answer(self) -> bool | None:
        if self.read_only_format is None:
            return None
        return self.server.mode == "read-only"

    def close_after_flush(self) -> None:
        """Send what is queued, then close (closeSession, auth failure, expiry)."""
        self.closing = True
        self._lot.unpark_all()

    def abort(self, reason: str) -> None:
        """Close now, dropping unsent replies (a newer connection took over the session)."""
        log.info("closing connection from %s:%s: %s", self.remote[0], self.remote[1], reason)
        self.closing = True
        self._cancel.cancel(reason=reason)

    # ------------------------------------------------------------ the actor
    async def run(self) -> None:
        """Serve the connection until either side closes it; then close the socket."""
        try:
            with self._cancel:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._writer)
                    try:
                        await self._reader()
                    finally:
                        self.closing = True
                        self._lot.unpark_all()
        except BaseException as exc:
            # The peer went away (reset, closed): a normal end, not a crash.  Trio
            # wraps it in a group when it came out of the reader/writer nursery.
            if not _is_disconnect(exc):
                raise
        finally:
            self.closed = True
            self._out.clear()
            self._out_bytes = 0
            self.server.connection_closed(self)
            close_socket(self.sock)  # synchronous: needs no shield, cannot hang

    async def _writer(self) -> None:
        """Send what :meth:`deliver` queued (the kernel's buffer was full), in order."""
        sock = self.sock
        out = self._out
        wait_writable = trio.lowlevel.wait_writable
        while True:
            while not out:
                if self._broken is not None:
                    raise self._broken
                if self.closing:
                    self._cancel.cancel(reason="connection closed after flush")
                    return
                await self._lot.park()
            try:
                if len(out) == 1:
                    sent = sock.send(out[0])
                else:
                    sent = sock.sendmsg(out[:_IOV_MAX])
            except BlockingIOError:
                await wait_writable(sock)  # a cancel point (abort drops the queue)
                continue
            self._consume(sent)
            if not out and self._out_unflushed:
                self._record_flush(self._out_unflushed)
                self._out_unflushed = 0
            if self._out_bytes <= _OUT_HIGH_WATER:
                self._drained.unpark_all()

    def _consume(self, sent: int) -> None:
        """Drop the first ``sent`` bytes of the queue."""
        out = self._out
        self._out_bytes -= sent
        i = 0
        while sent:
            n = len(out[i])
            if sent < n:
                out[i] = memoryview(out[i])[sent:]
                break
            sent -= n
            i += 1
        del out[:i]

    async def _reader(self) -> None:
        server = self.server
        decoder = FrameDecoder(server.config.jute_max_buffer)
        sock = self.sock
        recv = sock.recv
        wait_readable = trio.lowlevel.wait_readable
        streak = 0
        while not self.closing:
            # Back-pressure: a client that does not read its replies stops being read.
            while self._out_bytes > _OUT_HIGH_WATER and not self.closing:
                await self._drained.park()
            # globalOutstandingLimit: stop reading from clients with requests in flight.
            while self.outstanding and server.stats.outstanding > server.config.global_outstanding_limit:
                await server.throttle.park()
            try:
                data = recv(_READ_SIZE)
            except BlockingIOError:
                streak = 0
                await wait_readable(sock)  # a cancel point
                continue
            if not data:
                return
            decoder.feed(data)
            if not await self._process(decoder):
                return
            # Always readable (a client pipelining without pause): yield now and
            # then, so other tasks run and a cancel (abort, shutdown) lands.
            streak += 1
            if streak >= _READS_PER_CHECKPOINT:
                streak = 0
                await trio.lowlevel.checkpoint()

    async def _process(self, decoder: FrameDecoder) -> bool:
        """Handle every complete frame of the last read; False when the connection must close."""
        server = self.server
        max_len = server.config.jute_max_buffer
        while True:
            try:
                frames = decoder.frames()
            except FrameError as exc:
                log.warning("closing connection from %s:%s: %s", self.remote[0], self.remote[1], exc)
                return False
            if not frames:
                return True
            if not await self._handle_frames(frames, server, max_len):
                return False

    async def _handle_frames(self, frames: list[Any], server: ConnectionHost, max_len: int) -> bool:
        """Handle one list of frames: the ConnectRequest or 4lw first, then requests."""
        i = 0
        if self.session_id == 0:
            first = frames[0]
            if isinstance(first, FourLetterWord):
                self._four_letter_word(first)
                return False
            if not await self._connect(first):
                return False
            i = 1
            if self.closing:
                return False
        now = server.now_ms()
        sid = self.session_id
        stats = self.stats
        n = len(frames) - i
        if n > 0:
            # Any request, ping included, keeps the session alive (touchSession);
            # once per socket read is enough: all its frames arrived at ``now``.
            server.tracker.touch(sid, now)
        stats.packets_received += n
        server.stats.packets_received += n
        # Read fast path (see the module docstring): while nothing of this
        # session is in the pipeline, reads are answered here, now.  Decided
        # once per socket read and switched off by the first request that
        # goes to the pipeline, so replies stay in request order.
        fast = self.outstanding == 0 and self._predecessors_drained() and server.fast_reads()
        replies: list[bytes] = []
        try:
            return self._handle_requests(frames, i, server, max_len, now, sid, fast, replies)
        finally:
            if replies:
                self.deliver(replies)

    def _handle_requests(self, frames: list[Any], i: int, server: ConnectionHost, max_len: int,
                         now: int, sid: int, fast: bool, replies: list[bytes]) -> bool:
        # The per-request loop of the server: ~1 µs of its own per request
        # (docs/server.md, "Performance"), so locals and int constants only.
        batch: list[Request] = []
        append = batch.append
        auth_ids = self.auth_ids
        unpack_header = _HEADER.unpack_from
        for k in range(i, len(frames)):
            payload = frames[k]
            if payload.__class__ is FourLetterWord:  # pragma: no cover - framing never yields these later
                continue
            if len(payload) < 8:
                log.warning(
                    "closing connection from %s:%s: packet of %d bytes has no request header",
                    self.remote[0], self.remote[1], len(payload),
                )
                self._flush_batch(batch, replies)
                return False
            xid, op = unpack_header(payload)
            if op == _AUTH_OP and xid == _AUTH_XID:
                self._flush_batch(batch, replies)  # their replies go ahead of the auth reply
                batch = []
                append = batch.append
                if not self._auth(payload, max_len):
                    return False
                continue
            try:
                rec = decode_request(op, payload, max_len=max_len, offset=8)
            except ProtocolError as exc:
                if exc.err == Err.UNIMPLEMENTED:
                    # Unknown opcode: ZooKeeper answers UNIMPLEMENTED in order and keeps the session.
                    append(Request(self, sid, xid, op, UNIMPLEMENTED, now, auth_ids))
                    fast = False
                    continue
                log.warning(
                    "closing connection from %s:%s (session 0x%x): %s",
                    self.remote[0], self.remote[1], sid & 0xFFFFFFFFFFFFFFFF, exc,
                )
                self._flush_batch(batch, replies)
                return False
            if fast:
                if op in _FAST_READS:
                    self._answer_now(Request(self, sid, xid, op, rec, now, auth_ids), server, replies)
                    continue
                fast = False
            append(Request(self, sid, xid, op, rec, now, auth_ids))
        self._flush_batch(batch, replies)
        return True

    def _answer_now(self, req: Request, server: ConnectionHost, replies: list[bytes]) -> None:
        """The read fast path: what prep and final would do for ``req``, without the hops."""
        # Reads make no txn: this is only the session check (expired, moved).
        server.check_session(req)
        try:
            server.answer_read(req, replies)
        except Exception:  # a read changes nothing: SYSTEMERROR for it, serve on (as final does)
            log.exception("internal error processing %s (type %s)", req.record, req.type)
            replies.append(encode_reply(req.xid, server.last_zxid(), Err.SYSTEMERROR))
        # Latency is 0 ms by construction (the request arrived at ``now``).
        server.stats.update_latency(0)
        self.stats.update_for_response(req.xid, server.last_zxid(), req.type, req.start, req.start)

    def _predecessors_drained(self) -> bool:
        """True when no earlier connection of this session still has requests in the pipeline."""
        p = self._predecessor
        while p is not None:
            if p.outstanding:
                return False
            p = p._predecessor
        self._predecessor = None
        return True

    def _flush_batch(self, batch: list[Request], replies: list[bytes]) -> None:
        """Send the fast path's replies so far, then hand ``batch`` to the pipeline.

        In that order: the fast-path replies answer requests that came before
        the batch's, and the pipeline may answer (``deliver``) a batch before
        ``submit`` returns.
        """
        if replies:
            self.deliver(replies)
            replies.clear()
        if batch:
            self.outstanding += len(batch)
            self.server.submit(batch)

    def _four_letter_word(self, flw: FourLetterWord) -> None:
        """Answer a 4lw; the caller then closes (the writer sends what did not fit first)."""
        text = self.server.four_letter_word(flw.cmd)
        self.server.stats.packets_received += 1
        self._send_raw(text.encode("utf-8"))

    async def _connect(self, payload: bytes | memoryview) -> bool:
        """Handle the ConnectRequest; False when the connection must close now."""
        server = self.server
        try:
            req: ConnectRequest = decode_connect_request(payload, max_len=server.config.jute_max_buffer)
        except ProtocolError as exc:
            log.warning("closing connection from %s:%s: bad ConnectRequest: %s", self.remote[0], self.remote[1], exc)
            return False
        self.stats.packets_received += 1
        server.stats.packets_received += 1
        self.read_only_format = None if req.read_only is None else bool(req.read_only)
        if not server.serving:
            # ZooKeeper: "ZooKeeperServer not running" (starting, electing, stopping).
            log.info("Refusing session request for client /%s:%s: this server is not serving", *self.remote)
            return False
        last = server.last_zxid()
        if req.last_zxid_seen > last:
            log.info(
                "Refusing session request for client /%s:%s as it has seen zxid 0x%x our last zxid is 0x%x "
                "client must try another server",
                self.remote[0], self.remote[1], req.last_zxid_seen, last,
            )
            return False
        if server.mode == "read-only" and not req.read_only:
            log.info("Refusing non-read-only client /%s:%s on a read-only server", *self.remote)
            return False
        timeout = server.tracker.negotiate_timeout(req.timeout)
        if req.session_id == 0:
            sid = server.tracker.create_session(timeout, server.now_ms())
            server.tracker.set_owner(sid, self)
            self.outstanding += 1
            server.submit([Request(self, sid, 0, OpCode.createSession, timeout, server.now_ms())])
            log.debug("creating session 0x%x for /%s:%s", sid, *self.remote)
        else:
            sid = req.session_id
            refusal = server.validate_session(sid)
            if refusal is not None:  # ZooKeeper: validateSession's CloseRequestException (read-only mode)
                log.info("%s /%s:%s (session 0x%x)", refusal, self.remote[0], self.remote[1],
                         sid & 0xFFFFFFFFFFFFFFFF)
                return False
            ok = server.tracker.revalidate(sid, req.passwd, server.now_ms(), owner=self)
            if ok:
                # The old connection's requests may still be in the pipeline;
                # this one's reads must not overtake them (fast path).
                self._predecessor = server.connection_for(sid)
                server.close_other_connections(sid, self)
                timeout = server.tracker.timeout_of(sid) or timeout
                log.info("revalidated session 0x%x for /%s:%s", sid & 0xFFFFFFFFFFFFFFFF, *self.remote)
                # Standalone and leader: done; a learner asks its leader (REVALIDATE).
                server.confirm_session(self, sid, timeout)
            else:
                log.info(
                    "Invalid session 0x%x for client /%s:%s, probably expired",
                    sid & 0xFFFFFFFFFFFFFFFF, *self.remote,
                )
                self.finish_session_init(sid, timeout, False)
        await self._session_ready.wait()
        return True

    def _auth(self, payload: bytes | memoryview, max_len: int) -> bool:
        server = self.server
        try:
            pkt = decode_request(OpCode.auth, payload, max_len=max_len, offset=8)
            ids = server.auth.authenticate(pkt.scheme, pkt.auth, self.remote[0])
        except ProtocolError as exc:
            log.warning("closing connection from %s:%s: bad auth packet: %s", self.remote[0], self.remote[1], exc)
            return False
        except KeeperError:
            ids = []
        scheme = getattr(pkt, "scheme", "?")
        if not ids:
            server.stats.auth_failed += 1
            log.warning("Authentication failed for scheme: %s from /%s:%s", scheme, *self.remote)
            self.deliver_one(encode_reply(Xid.AUTH, 0, Err.AUTHFAILED))
            self.close_after_flush()
            return False
        server.auth.add_ids(self.auth_ids, ids)
        self.deliver_one(encode_reply(Xid.AUTH, 0, 0))
        return True

    def __repr__(self) -> str:
        return f"<ClientConnection /{self.remote[0]}:{self.remote[1]} session 0x{self.session_id & 0xFFFFFFFFFFFFFFFF:x}>"


_DISCONNECTS = (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError)


def close_socket(sock: socket.socket) -> None:
    """Wake any task waiting on ``sock`` (``ClosedResourceError``), then close it."""
    if sock.fileno() >= 0:
        trio.lowlevel.notify_closing(sock)
    sock.close()


def _is_disconnect(exc: BaseException) -> bool:
    """True when ``exc`` (or every leaf of the group it is) says the socket is gone."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(_DISCONNECTS)[1] is None
    return isinstance(exc, _DISCONNECTS)
