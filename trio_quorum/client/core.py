"""The client side of ZooKeeper's client protocol, as a state machine (sans-IO).

:class:`ClientCore` knows the session (id, password, negotiated timeout, the
last zxid seen), the requests in flight, the watches and the auth data; it
turns calls into frames and received frames into completions and watch
events.  The Trio driver (:mod:`.session`) owns the sockets, the clock and the
tasks; it calls, in order: :meth:`ClientCore.connect_frame` on a fresh
connection, :meth:`~ClientCore.connected` with the ConnectResponse (which
primes the connection: setWatches and auth packets go out first),
:meth:`~ClientCore.submit` per request, :meth:`~ClientCore.receive` per batch
of reply frames, :meth:`~ClientCore.connection_lost` when the socket dies.

Invariants (ZooKeeper's ``ClientCnxn`` rules):

* Replies to ordinary requests come back in the order they were sent, on one
  connection: the pending table is a FIFO and a reply whose xid is not its
  head's is a protocol violation (the connection must be dropped).  Pings
  (xid -2), auth packets (xid -4) and notifications (xid -1) are outside it;
  setWatches (xid -8) is inside it, as in the Java client.
* Xids are allocated 1, 2, ... and wrap before 2**31; special xids are negative.
* ``last_zxid`` only grows; it is taken from replies with ``zxid > 0`` (not
  from pings, auth replies or notifications) and sent in the next
  ConnectRequest, so a server behind what this client saw refuses it.
* A watch is registered when its request succeeds (``exists`` on a missing
  node registers an exist watch), and fires at most once per registration;
  persistent watches stay until removed.  On reconnect every registered watch
  is re-sent in one setWatches(2) packet with ``relative_zxid = last_zxid``.
* A lost connection fails every pending request with CONNECTIONLOSS; a
  session the server calls expired fails everything for good.
"""

from __future__ import annotations

__sans_io__ = True

import struct
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ..protocol.consts import AddWatchMode, Err, EventType, KeeperState, OpCode, Xid
from ..protocol.records import (
    AuthPacket,
    ConnectRequest,
    SetWatches,
    decode_connect_response,
    decode_notification,
    decode_response,
    encode_connect_request,
    encode_request,
)
from .errors import ConnectionLoss, SessionExpiredError, ZookeeperError

__all__ = [
    "SessionState",
    "WatchKind",
    "WatchedEvent",
    "Pending",
    "Notification",
    "AuthReply",
    "ClientProtocolError",
    "ClientCore",
    "MAX_XID",
]

MAX_XID = 2**31 - 1
_REPLY_HEADER = struct.Struct(">iqi")
_unpack_header = _REPLY_HEADER.unpack_from
_PING_FRAME = encode_request(Xid.PING, OpCode.ping)


class SessionState(Enum):
    """Where the session stands, as seen by this client (kazoo's states, finer)."""

    #: no connection yet (or between connections before the session was ever established)
    CONNECTING = "CONNECTING"
    CONNECTED = "CONNECTED"
    #: connected to a read-only server (only reads succeed)
    CONNECTED_READ_ONLY = "CONNECTED_READ_ONLY"
    #: connection lost, session maybe still alive: reconnecting (kazoo's SUSPENDED)
    SUSPENDED = "SUSPENDED"
    #: the server said the session expired (kazoo's LOST); final
    EXPIRED = "EXPIRED"
    #: an auth packet was refused; final
    AUTH_FAILED = "AUTH_FAILED"
    #: closed by the user; final
    CLOSED = "CLOSED"


FINAL_STATES = frozenset({SessionState.EXPIRED, SessionState.AUTH_FAILED, SessionState.CLOSED})


class WatchKind(Enum):
    """What a watcher is registered as (ZooKeeper's ``ZKWatchManager`` maps)."""

    DATA = "data"          # getData, or exists on an existing node
    EXIST = "exist"        # exists on a missing node
    CHILD = "child"        # getChildren
    PERSISTENT = "persistent"
    PERSISTENT_RECURSIVE = "persistent_recursive"


@dataclass(frozen=True, slots=True)
class WatchedEvent:
    """A watch notification: ``type`` (:class:`EventType`), ``state`` and the server-side path."""

    type: EventType
    state: KeeperState
    path: str


class Pending:
    """One request in flight.  The driver reads ``err``/``result`` once it completes.

    ``waiter`` belongs to the driver (who to wake); ``watch`` is ``(kind,
    watcher)`` to register on success.
    """

    __slots__ = ("xid", "opcode", "path", "watch", "waiter", "err", "result", "zxid")

    def __init__(self, xid: int, opcode: int, path: str | None, watch: tuple[WatchKind, object] | None) -> None:
        self.xid = xid
        self.opcode = opcode
        self.path = path
        self.watch = watch
        self.waiter: Any = None
        self.err = 0
        self.result: Any = None
        self.zxid = 0


@dataclass(frozen=True, slots=True)
class Notification:
    """A watch event and the watchers it goes to (each at most once)."""

    event: WatchedEvent
    watchers: tuple[object, ...]


@dataclass(frozen=True, slots=True)
class AuthReply:
    """The answer to an auth packet; ``waiter`` is ``None`` for one re-sent on reconnect."""

    waiter: object
    err: int


class ClientProtocolError(Exception):
    """The server broke the protocol (an out-of-order xid, a frame that does not decode)."""


_DATA_EVENTS = frozenset({EventType.NodeCreated, EventType.NodeDataChanged})


class ClientCore:
    """The session's protocol state; see the module docstring for the contract.

    Args:
        session_timeout_ms: the timeout to ask for.
        read_only: ask to be served by read-only servers too.
    """

    def __init__(self, session_timeout_ms: int, *, read_only: bool = False) -> None:
        self.session_timeout_ms = session_timeout_ms
        self.read_only = read_only
        self.state = SessionState.CONNECTING
        self.session_id = 0
        self.passwd = b"\0" * 16
        self.negotiated_timeout_ms = 0
        self.server_read_only = False
        self.last_zxid = 0
        self._xid = 0
        self.pending: deque[Pending] = deque()
        self._auth_waiters: deque[object] = deque()
        #: (scheme, credential) pairs, re-sent on every new connection
        self.auth_data: list[tuple[str, bytes]] = []
        self._watches: dict[WatchKind, dict[str, list[object]]] = {k: {} for k in WatchKind}
        self.outbox: list[bytes] = []

    # ---------------------------------------------------------------- connecting

    def connect_frame(self) -> bytes:
        """The ConnectRequest that opens (or resumes) the session on a new connection."""
        return encode_connect_request(ConnectRequest(
            0, self.last_zxid, self.session_timeout_ms, self.session_id, self.passwd, self.read_only))

    def connected(self, payload: bytes | bytearray | memoryview) -> list[Pending]:
        """Apply the ConnectResponse; queue the priming packets in :attr:`outbox`.

        Returns the requests failed by the outcome (none unless it is final).

        Raises:
            SessionExpiredError: the server refused the session (timeout <= 0).
            ClientProtocolError: the response does not decode.
        """
        try:
            rsp = decode_connect_response(payload)
        except ZookeeperError as exc:  # pragma: no cover - decode raises ProtocolError only
            raise ClientProtocolError(str(exc)) from None
        except Exception as exc:
            raise ClientProtocolError(f"bad ConnectResponse: {exc}") from None
        if rsp.timeout <= 0:
            self.state = SessionState.EXPIRED
            raise SessionExpiredError()
        self.session_id = rsp.session_id
        self.passwd = bytes(rsp.passwd)
        self.negotiated_timeout_ms = rsp.timeout
        self.server_read_only = bool(rsp.read_only)
        self.state = SessionState.CONNECTED_READ_ONLY if self.server_read_only else SessionState.CONNECTED
        self._prime()
        return []

    def _prime(self) -> None:
        w = self._watches
        sw = SetWatches(
            self.last_zxid,
            tuple(w[WatchKind.DATA]), tuple(w[WatchKind.EXIST]), tuple(w[WatchKind.CHILD]),
            tuple(w[WatchKind.PERSISTENT]), tuple(w[WatchKind.PERSISTENT_RECURSIVE]),
        )
        if _has_watches(sw):
            p = Pending(Xid.SET_WATCHES, sw.opcode, None, None)
            self.pending.append(p)
            self.outbox.append(encode_request(Xid.SET_WATCHES, sw.opcode, sw))
        for scheme, cred in self.auth_data:
            self._auth_waiters.append(None)
            self.outbox.append(encode_request(Xid.AUTH, OpCode.auth, AuthPacket(0, scheme, cred)))

    def connection_lost(self) -> list[Pending]:
        """The connection died: every pending request fails with CONNECTIONLOSS.

        Returns those requests (``err`` set) and moves to SUSPENDED unless final.
        """
        failed = [p for p in self.pending if p.xid != Xid.SET_WATCHES]
        for p in failed:
            p.err = Err.CONNECTIONLOSS
        self.pending.clear()
        self._auth_waiters.clear()
        self.outbox.clear()
        if self.state not in FINAL_STATES:
            self.state = SessionState.SUSPENDED
        return failed

    def fail_all(self, state: SessionState, err: int) -> list[Pending]:
        """A final state: fail every pending request with ``err``; watches are dropped."""
        failed = self.connection_lost()
        for p in failed:
            p.err = err
        self.state = state
        for m in self._watches.values():
            m.clear()
        return failed

    # ---------------------------------------------------------------- requests

    def next_xid(self) -> int:
        x = self._xid + 1
        if x > MAX_XID:
            x = 1
        self._xid = x
        return x

    def submit(self, opcode: int, record: Any = None, *, path: str | None = None,
               watch: tuple[WatchKind, object] | None = None) -> Pending:
        """Queue one request (its frame goes to :attr:`outbox`); returns its :class:`Pending`.

        Raises:
            ConnectionLoss: not connected (the driver waits before calling).
            SessionExpiredError: the session expired.
        """
        if self.state is not SessionState.CONNECTED and self.state is not SessionState.CONNECTED_READ_ONLY:
            if self.state is SessionState.EXPIRED:
                raise SessionExpiredError(path)
            raise ConnectionLoss(path)
        xid = self.next_xid()
        p = Pending(xid, opcode, path, watch)
        self.pending.append(p)
        self.outbox.append(encode_request(xid, opcode, record))
        return p

    def add_auth(self, scheme: str, credential: bytes, waiter: object) -> None:
        """Send an auth packet now and remember it for every later connection."""
        self.auth_data.append((scheme, credential))
        if self.state in (SessionState.CONNECTED, SessionState.CONNECTED_READ_ONLY):
            self._auth_waiters.append(waiter)
            self.outbox.append(encode_request(Xid.AUTH, OpCode.auth, AuthPacket(0, scheme, credential)))

    def ping_frame(self) -> bytes:
        return _PING_FRAME

    def take_outbox(self) -> bytes:
        """Every queued frame, joined, in submission order (and the outbox emptied)."""
        out = self.outbox
        if len(out) == 1:
            data = out[0]
        else:
            data = b"".join(out)
        out.clear()
        return data

    # ---------------------------------------------------------------- replies

    def receive(self, frames: Iterable[Any]) -> list[Pending | Notification | AuthReply]:
        """Match reply frames to requests, route notifications.

        Raises:
            ClientProtocolError: an xid out of order or a body that does not
                decode; drop the connection (pending requests then fail).
        """
        out: list[Pending | Notification | AuthReply] = []
        pending = self.pending
        for payload in frames:
            if len(payload) < 16:
                raise ClientProtocolError(f"short reply frame ({len(payload)} bytes)")
            xid, zxid, err = _unpack_header(payload, 0)
            if xid > 0 or xid == Xid.SET_WATCHES:
                if not pending or pending[0].xid != xid:
                    want = pending[0].xid if pending else None
                    raise ClientProtocolError(f"xid out of order: got {xid}, expected {want}")
                p = pending.popleft()
                if zxid > self.last_zxid:
                    self.last_zxid = zxid
                p.err = err
                p.zxid = zxid
                if err == 0:
                    try:
                        p.result = decode_response(p.opcode, payload, offset=16)
                    except Exception as exc:
                        raise ClientProtocolError(f"bad reply to xid {xid}: {exc}") from None
                if p.watch is not None:
                    self._register(p)
                if xid > 0:
                    out.append(p)
            elif xid == Xid.NOTIFICATION:
                try:
                    ev = decode_notification(payload)
                except Exception as exc:
                    raise ClientProtocolError(f"bad notification: {exc}") from None
                n = self._route(WatchedEvent(_event_type(ev.type), _keeper_state(ev.state), ev.path))
                if n is not None:
                    out.append(n)
            elif xid == Xid.PING:
                continue
            elif xid == Xid.AUTH:
                waiter = self._auth_waiters.popleft() if self._auth_waiters else None
                if err == Err.AUTHFAILED:
                    self.state = SessionState.AUTH_FAILED
                out.append(AuthReply(waiter, err))
            else:
                raise ClientProtocolError(f"reply with unexpected xid {xid}")
        return out

    # ---------------------------------------------------------------- watches

    def _register(self, p: Pending) -> None:
        assert p.watch is not None and p.path is not None
        kind, watcher = p.watch
        if kind is WatchKind.EXIST:
            # exists: a data watch on a node that is there, an exist watch on one that is not
            if p.err == 0:
                kind = WatchKind.DATA
            elif p.err != Err.NONODE:
                return
        elif p.err != 0:
            return
        self._watches[kind].setdefault(p.path, []).append(watcher)

    def add_local_watch(self, kind: WatchKind, path: str, watcher: object) -> None:
        """Register ``watcher`` without a request (a persistent watch re-added by another caller)."""
        self._watches[kind].setdefault(path, []).append(watcher)

    def remove_watcher(self, watcher: object, path: str | None = None) -> list[tuple[WatchKind, str, bool]]:
        """Forget ``watcher`` everywhere (or on ``path`` only).

        Returns ``(kind, path, last)`` per registration removed; ``last`` says no
        other watcher of that kind is left on that path (time to tell the server).
        """
        removed: list[tuple[WatchKind, str, bool]] = []
        for kind, m in self._watches.items():
            paths = [path] if path is not None else list(m)
            for pth in paths:
                ws = m.get(pth)
                if ws is None:
                    continue
                kept = [w for w in ws if w is not watcher]
                if len(kept) == len(ws):
                    continue
                if kept:
                    m[pth] = kept
                else:
                    del m[pth]
                removed.append((kind, pth, not kept))
        return removed

    def watchers(self, kind: WatchKind, path: str) -> list[object]:
        """The watchers registered as ``kind`` on ``path`` (a copy)."""
        return list(self._watches[kind].get(path, ()))

    def has_watches(self, kind: WatchKind, path: str) -> bool:
        return path in self._watches[kind]

    def watch_count(self) -> int:
        return sum(len(ws) for m in self._watches.values() for ws in m.values())

    def _route(self, ev: WatchedEvent) -> Notification | None:
        """The watchers ``ev`` goes to; one-shot registrations are consumed."""
        if ev.type is EventType.None_:
            return None  # a state change sent by the server: the driver reports states itself
        w = self._watches
        path = ev.path
        hit: list[object] = []
        t = ev.type
        if t in _DATA_EVENTS:
            hit += w[WatchKind.DATA].pop(path, ())
            hit += w[WatchKind.EXIST].pop(path, ())
        elif t is EventType.NodeDeleted:
            hit += w[WatchKind.DATA].pop(path, ())
            hit += w[WatchKind.EXIST].pop(path, ())
            hit += w[WatchKind.CHILD].pop(path, ())
        elif t is EventType.NodeChildrenChanged:
            hit += w[WatchKind.CHILD].pop(path, ())
        elif t in (EventType.DataWatchRemoved, EventType.ChildWatchRemoved, EventType.PersistentWatchRemoved):
            return None
        hit += w[WatchKind.PERSISTENT].get(path, ())
        if t is not EventType.NodeChildrenChanged:
            # recursive watches see every node event below them, but not child-list changes
            rec = w[WatchKind.PERSISTENT_RECURSIVE]
            if rec:
                p = path
                while True:
                    hit += rec.get(p, ())
                    if p == "/":
                        break
                    p = p.rsplit("/", 1)[0] or "/"
        if not hit:
            return None
        seen: dict[int, object] = {}
        for x in hit:
            seen.setdefault(id(x), x)
        return Notification(ev, tuple(seen.values()))


def _has_watches(sw: SetWatches) -> bool:
    return bool(sw.data_watches or sw.exist_watches or sw.child_watches
                or sw.persistent_watches or sw.persistent_recursive_watches)


def _event_type(v: int) -> EventType:
    try:
        return EventType(v)
    except ValueError:
        return EventType.None_


def _keeper_state(v: int) -> KeeperState:
    try:
        return KeeperState(v)
    except ValueError:
        return KeeperState.Unknown


def add_watch_kind(mode: AddWatchMode) -> WatchKind:
    return WatchKind.PERSISTENT_RECURSIVE if mode == AddWatchMode.PERSISTENT_RECURSIVE else WatchKind.PERSISTENT
