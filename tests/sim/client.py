"""``SimClient``: a client connection in memory, for whole-ensemble simulations.

It implements the chain's :class:`~trio_quorum.server.request.Client`
protocol the way :class:`~trio_quorum.server.connection.ClientConnection`
does, minus the socket: replies arrive as encoded frames through
:meth:`SimClient.deliver` and are decoded with the client side of
``trio_quorum.protocol.records``.  Under ``MockClock(autojump_threshold=0)``
a real socket wait would let the clock jump past it, hence no socket.

What it mirrors of ``ClientConnection``:

* the session is created as ``_connect`` does: refused unless the peer
  serves; ``tracker.create_session`` + ``set_owner``, then a createSession
  :class:`Request` submitted through ``ClientPort.submit``; the chain answers
  with :meth:`finish_session_init`;
* each request: ``outstanding += 1``, ``tracker.touch``, ``submit`` of a
  one-request batch (no read fast path: every request goes through the chain);
* it registers with the client port (``ClientPort.add_connection``), so the
  port lists it (a follower's PINGs touch its session), and a role change
  closes it (``close_all`` -> :meth:`abort`): every request still waiting then
  fails with ``ConnectionLoss``, as a real client sees its socket close.

Invariant: a reply is matched to its request by xid; a request is
acknowledged to the test only when its reply frame arrived.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import trio

from trio_quorum.protocol.consts import OpCode
from trio_quorum.protocol.data import OPEN_ACL_UNSAFE
from trio_quorum.protocol.records import (
    CreateRequest,
    GetDataRequest,
    SetDataRequest,
    SyncRequest,
    decode_notification,
    decode_reply_header,
    decode_response,
)
from trio_quorum.server.request import Request
from trio_quorum.server.stats import ConnStats

__all__ = ["ConnectionLoss", "NotServing", "Reply", "SimClient"]

_NOTIFICATION_XID = -1
_PING_XID = -2
_seq = itertools.count(1)


class ConnectionLoss(Exception):
    """The peer closed this client (role change, crash, closeSession) before the reply."""


class NotServing(Exception):
    """The peer refused the session: it serves no clients now (LOOKING, syncing, stopping)."""


@dataclass(frozen=True, slots=True)
class Reply:
    xid: int
    zxid: int
    err: int
    body: Any


class SimClient:
    """One in-memory connection to a peer's client port (hashable by identity: a watcher key)."""

    def __init__(self, peer: Any, *, timeout_ms: int = 60_000) -> None:
        self.peer = peer
        self.port = peer.clients
        self.timeout_ms = timeout_ms
        self.remote = ("sim", next(_seq))
        self.session_id = 0
        self.session_timeout = 0
        self.outstanding = 0
        self.closed = False
        self.closing = False
        self.close_reason: str | None = None
        self.auth_ids = self.port.auth.initial_ids(self.remote[0])
        self.stats = ConnStats()
        self.notifications: list[Any] = []
        self._xids = itertools.count(1)
        self._ops: dict[int, int] = {}
        self._waiting: dict[int, trio.Event] = {}
        self._replies: dict[int, Reply] = {}
        self._session_ready = trio.Event()
        self._session_valid = False

    # ------------------------------------------------------------ the Client protocol
    def deliver(self, frames: list[bytes]) -> None:
        if self.closed:
            return
        for frame in frames:
            payload = memoryview(frame)[4:]
            hdr = decode_reply_header(payload)
            if hdr.xid == _NOTIFICATION_XID:
                self.notifications.append(decode_notification(payload))
                continue
            if hdr.xid == _PING_XID:
                continue
            op = self._ops.pop(hdr.xid, None)
            if op is None:
                raise AssertionError(f"reply to unknown xid {hdr.xid} on {self!r}")
            body = decode_response(op, payload, offset=16) if hdr.err == 0 else None
            self._replies[hdr.xid] = Reply(hdr.xid, hdr.zxid, hdr.err, body)
            self._waiting.pop(hdr.xid).set()

    def finish_session_init(self, session_id: int, timeout: int, valid: bool) -> None:
        if valid:
            self.session_id = session_id
            self.session_timeout = timeout
            self.port.bind_session(session_id, self)
        self._session_valid = valid
        self._session_ready.set()
        if not valid:
            self.close_after_flush()

    def close_after_flush(self) -> None:
        # Nothing is ever queued here: every frame was handled in deliver().
        self._close("closed by the server")

    def abort(self, reason: str) -> None:
        self._close(reason)

    def _close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = self.closing = True
        self.close_reason = reason
        self.port.connection_closed(self)
        self._session_ready.set()
        for event in self._waiting.values():
            event.set()

    # ------------------------------------------------------------ the test's side
    async def connect(self) -> int:
        """Create a session (ClientConnection._connect's new-session branch); return its id."""
        port = self.port
        if not port.serving:
            raise NotServing(f"{self.peer.name} is not serving ({self.peer.mode})")
        tracker = port.tracker
        timeout = tracker.negotiate_timeout(self.timeout_ms)
        sid = tracker.create_session(timeout, port.now_ms())
        tracker.set_owner(sid, self)
        port.add_connection(self)
        self.outstanding += 1
        port.submit([Request(self, sid, 0, OpCode.createSession, timeout, port.now_ms())])
        await self._session_ready.wait()
        if self.closed or not self._session_valid:
            raise ConnectionLoss(f"session not established on {self.peer.name}: {self.close_reason}")
        return sid

    async def request(self, op: int, record: object) -> Reply:
        """Submit one request; wait for its reply (raises ConnectionLoss if closed first)."""
        if self.closed:
            raise ConnectionLoss(f"{self!r} is closed: {self.close_reason}")
        port = self.port
        xid = next(self._xids)
        now = port.now_ms()
        event = self._waiting[xid] = trio.Event()
        self._ops[xid] = int(op)
        self.outstanding += 1
        port.tracker.touch(self.session_id, now)
        port.submit([Request(self, self.session_id, xid, int(op), record, now, self.auth_ids)])
        await event.wait()
        reply = self._replies.pop(xid, None)
        if reply is None:
            raise ConnectionLoss(f"{self!r} closed before the reply to xid {xid}: {self.close_reason}")
        return reply

    async def create(self, path: str, data: bytes = b"", *, flags: int = 0) -> Reply:
        return await self.request(OpCode.create, CreateRequest(path, data, OPEN_ACL_UNSAFE, flags))

    async def set_data(self, path: str, data: bytes, version: int = -1) -> Reply:
        return await self.request(OpCode.setData, SetDataRequest(path, data, version))

    async def get_data(self, path: str) -> Reply:
        return await self.request(OpCode.getData, GetDataRequest(path, False))

    async def sync(self, path: str = "/") -> Reply:
        return await self.request(OpCode.sync, SyncRequest(path))

    def __repr__(self) -> str:
        return f"<SimClient {self.remote[1]} on {self.peer.name} session 0x{self.session_id & (2**64 - 1):x}>"
