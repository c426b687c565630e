"""SessionTracker core: ids, passwords, timeouts, expiry (sans-IO).

ZooKeeper's ``SessionTrackerImpl`` without its thread: the owning actor asks
:meth:`SessionTracker.next_expiration_time`, sleeps until then, calls
:meth:`SessionTracker.expire` with the time, and submits a ``closeSession``
request for every id it gets back.

Rules kept from ZooKeeper (``shared/reference/zookeeper-protocol.md`` 1.2, 2.1):

* Session ids: ``((now_ms << 24) >>> 8) | (server_id << 56)`` as a signed
  64-bit long, then +1 per new session; the high byte names the server that
  made it, the rest is unique as long as fewer than 2**24 sessions are made per
  millisecond of downtime.  The container marker ``Long.MIN_VALUE`` is skipped.
* Passwords: 16 bytes of ``new java.util.Random(sessionId ^ 0xB3415C00L).nextBytes()``,
  so any server (ours or Apache ZooKeeper's) can recompute and check a
  password without storing it.  :class:`JavaRandom` is bit-exact with Java.
* Timeouts are clamped to ``[min_session_timeout, max_session_timeout]``
  (defaults ``2 * tickTime`` and ``20 * tickTime``).
* Expiry buckets of width tickTime (:class:`~trio_quorum.core.expiry.ExpiryQueue`);
  an expired session is marked *closing*: touching it fails, and
  :meth:`SessionTracker.check_session` answers SESSIONEXPIRED, until its
  ``closeSession`` is applied and :meth:`SessionTracker.remove` forgets it.

All times are integer milliseconds on the caller's monotonic clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ..protocol.consts import EPHEMERAL_CONTAINER, Err, KeeperError
from .expiry import ExpiryQueue

__sans_io__ = True

__all__ = [
    "JavaRandom",
    "session_password",
    "initial_session_id",
    "SessionInfo",
    "SessionsView",
    "SessionTracker",
    "PASSWORD_SUPER_SECRET",
    "DEFAULT_TICK_TIME",
]

#: ``ZooKeeperServer.superSecret``: XORed into the session id to seed the password RNG.
PASSWORD_SUPER_SECRET: Final = 0xB3415C00
DEFAULT_TICK_TIME: Final = 3000

_MASK48 = (1 << 48) - 1
_MASK64 = (1 << 64) - 1
_MULT = 0x5DEECE66D


def _signed64(v: int) -> int:
    v &= _MASK64
    return v - (1 << 64) if v >> 63 else v


class JavaRandom:
    """``java.util.Random``'s 48-bit LCG, bit for bit (only what ZooKeeper uses)."""

    __slots__ = ("_seed",)

    def __init__(self, seed: int) -> None:
        self._seed = (seed ^ _MULT) & _MASK48

    def next(self, bits: int) -> int:
        """``Random.next(bits)``: the top ``bits`` of the new seed, as a signed Java int."""
        self._seed = (self._seed * _MULT + 0xB) & _MASK48
        v = self._seed >> (48 - bits)
        # (int) cast of the 48-bit shift: keep 32 bits, sign-extend.
        v &= 0xFFFFFFFF
        return v - (1 << 32) if v >> 31 else v

    def next_int(self) -> int:
        return self.next(32)

    def next_long(self) -> int:
        return _signed64((self.next(32) << 32) + self.next(32))

    def next_bytes(self, n: int) -> bytes:
        """``Random.nextBytes`` of an ``n``-byte array: each int fills 4 bytes, low byte first."""
        out = bytearray(n)
        i = 0
        while i < n:
            rnd = self.next(32)
            for _ in range(min(n - i, 4)):
                out[i] = rnd & 0xFF
                rnd >>= 8
                i += 1
        return bytes(out)


def session_password(session_id: int) -> bytes:
    """The 16-byte password ZooKeeper gives session ``session_id``."""
    return JavaRandom(session_id ^ PASSWORD_SUPER_SECRET).next_bytes(16)


def initial_session_id(server_id: int, now_ms: int) -> int:
    """``SessionTrackerImpl.initializeNextSessionId``: the first id this server hands out."""
    nxt = ((now_ms << 24) & _MASK64) >> 8
    nxt |= (server_id << 56) & _MASK64
    sid = _signed64(nxt)
    if sid == EPHEMERAL_CONTAINER:
        sid += 1
    return sid


@dataclass(slots=True)
class SessionInfo:
    """One tracked session.  ``owner`` is the connection/server that serves it
    (``None`` until first checked, as in ZooKeeper)."""

    session_id: int
    timeout: int
    closing: bool = False
    owner: object | None = None


@dataclass(frozen=True, slots=True)
class SessionsView:
    """A read-only picture for ``dump`` / ``cons`` / ``mntr`` / the admin server."""

    global_sessions: int
    #: ``{expiry time ms: sorted session ids}`` in time order.
    expiry_buckets: dict[int, tuple[int, ...]]
    #: ``{session id: negotiated timeout ms}``.
    timeouts: dict[int, int]
    closing: frozenset[int]


class SessionTracker:
    """Tracks global sessions: create, touch, check, close, expire, restore.

    Args:
        server_id: this server's ``myid`` (0 in standalone mode); the high byte of ids.
        now: current monotonic time in ms (seeds the id counter and the buckets).
        tick_time: expiry bucket width in ms.
        min_session_timeout / max_session_timeout: clamp bounds; ``None`` or
            a negative value means ZooKeeper's default (2x / 20x tickTime).
    """

    __slots__ = (
        "server_id",
        "tick_time",
        "min_session_timeout",
        "max_session_timeout",
        "next_session_id",
        "_sessions",
        "_queue",
    )

    def __init__(
        self,
        server_id: int,
        now: int,
        *,
        tick_time: int = DEFAULT_TICK_TIME,
        min_session_timeout: int | None = None,
        max_session_timeout: int | None = None,
    ) -> None:
        if tick_time <= 0:
            raise ValueError(f"tick_time must be > 0, got {tick_time}")
        self.server_id = server_id
        self.tick_time = tick_time
        lo = (
            tick_time * 2
            if min_session_timeout is None or min_session_timeout < 0
            else min_session_timeout
        )
        hi = (
            tick_time * 20
            if max_session_timeout is None or max_session_timeout < 0
            else max_session_timeout
        )
        if lo > hi:
            raise ValueError(f"minSessionTimeout {lo} > maxSessionTimeout {hi}")
        self.min_session_timeout = lo
        self.max_session_timeout = hi
        self.next_session_id = initial_session_id(server_id, now)
        self._sessions: dict[int, SessionInfo] = {}
        self._queue: ExpiryQueue[int] = ExpiryQueue(tick_time)

    # -- ids, passwords, timeouts ------------------------------------------

    def negotiate_timeout(self, requested: int) -> int:
        """Clamp a client's requested timeout (``processConnectRequest``)."""
        if requested < self.min_session_timeout:
            return self.min_session_timeout
        if requested > self.max_session_timeout:
            return self.max_session_timeout
        return requested

    @staticmethod
    def password(session_id: int) -> bytes:
        """The session's 16-byte password (recomputable anywhere)."""
        return session_password(session_id)

    def allocate_session_id(self) -> int:
        """Hand out the next id (does not track it)."""
        sid = self.next_session_id
        nxt = _signed64(sid + 1)
        if nxt == EPHEMERAL_CONTAINER:
            nxt += 1
        self.next_session_id = nxt
        return sid

    # -- lifecycle ----------------------------------------------------------

    def create_session(self, timeout: int, now: int) -> int:
        """Allocate an id and track it with ``timeout`` (already negotiated)."""
        sid = self.allocate_session_id()
        self.track_session(sid, timeout, now)
        return sid

    def track_session(self, session_id: int, timeout: int, now: int) -> bool:
        """Track a session made elsewhere (a committed createSession, a restore).

        Returns True when the session was new.  An existing session keeps its
        state and only gets its expiry refreshed.
        """
        s = self._sessions.get(session_id)
        new = s is None
        if s is None:
            s = self._sessions[session_id] = SessionInfo(session_id, timeout)
        else:
            s.timeout = timeout
        if not s.closing:
            self._queue.update(session_id, timeout, now)
        return new

    def touch(self, session_id: int, now: int, timeout: int | None = None) -> bool:
        """Push the session's expiry out (any request or ping).  False when the
        session is unknown or closing (``touchSession``)."""
        s = self._sessions.get(session_id)
        if s is None or s.closing:
            return False
        if timeout is not None:
            s.timeout = timeout
        self._queue.update(session_id, s.timeout, now)
        return True

    def check_session(self, session_id: int, owner: object | None = None) -> None:
        """``checkSession``: raise UNKNOWNSESSION, SESSIONEXPIRED (closing) or
        SESSIONMOVED (served by another owner); adopt ``owner`` if none yet."""
        s = self._sessions.get(session_id)
        if s is None:
            raise KeeperError(Err.UNKNOWNSESSION)
        if s.closing:
            raise KeeperError(Err.SESSIONEXPIRED)
        current = s.owner
        if current is owner:  # every request of a settled session: no __ne__ call
            return
        if current is None:
            s.owner = owner
        elif owner is not None and current != owner:
            raise KeeperError(Err.SESSIONMOVED)

    def set_owner(self, session_id: int, owner: object) -> None:
        """Record which connection/server now serves the session (reconnect)."""
        s = self._sessions.get(session_id)
        if s is None:
            raise KeeperError(Err.SESSIONEXPIRED)
        s.owner = owner

    def revalidate(
        self, session_id: int, passwd: bytes, now: int, owner: object | None = None
    ) -> bool:
        """A reconnect with ``(session_id, passwd)``: True and touched when the
        password is right and the session is alive; False otherwise."""
        if passwd != session_password(session_id):
            return False
        if not self.touch(session_id, now):
            return False
        if owner is not None:
            self._sessions[session_id].owner = owner
        return True

    def set_closing(self, session_id: int) -> bool:
        """Mark the session closing (a closeSession is on its way); no more
        touches.  False when unknown."""
        s = self._sessions.get(session_id)
        if s is None:
            return False
        s.closing = True
        self._queue.remove(session_id)
        return True

    def remove(self, session_id: int) -> bool:
        """Forget the session (its closeSession was applied)."""
        self._queue.remove(session_id)
        return self._sessions.pop(session_id, None) is not None

    def expire(self, now: int) -> list[int]:
        """Sessions whose time is up: marked closing and returned, oldest bucket
        first; the caller submits a closeSession for each."""
        out = self._queue.poll(now)
        for sid in out:
            self._sessions[sid].closing = True
        return out

    def next_expiration_time(self) -> int | None:
        """When :meth:`expire` next has something to return (``None``: nothing tracked)."""
        return self._queue.next_expiration_time()

    # -- queries, snapshots -------------------------------------------------

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._sessions

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: int) -> SessionInfo | None:
        return self._sessions.get(session_id)

    def is_closing(self, session_id: int) -> bool:
        s = self._sessions.get(session_id)
        return s is None or s.closing

    def timeout_of(self, session_id: int) -> int | None:
        s = self._sessions.get(session_id)
        return None if s is None else s.timeout

    def session_timeouts(self) -> dict[int, int]:
        """``{session id: timeout}``: the table a snapshot stores (``sessionsWithTimeout``)."""
        return {sid: s.timeout for sid, s in self._sessions.items()}

    def restore(self, table: dict[int, int], now: int) -> None:
        """Load a snapshot's session table: every session restarts its full timeout
        from ``now`` (as ZooKeeper does on load).  Replaces what was tracked."""
        self._sessions.clear()
        self._queue = ExpiryQueue(self.tick_time)
        for sid, timeout in table.items():
            self._sessions[sid] = SessionInfo(sid, timeout)
            self._queue.update(sid, timeout, now)

    def view(self) -> SessionsView:
        """A frozen picture of the tracker for ``dump``, ``cons`` and ``mntr``."""
        return SessionsView(
            global_sessions=len(self._sessions),
            expiry_buckets={t: tuple(sorted(ids)) for t, ids in self._queue.buckets().items()},
            timeouts=self.session_timeouts(),
            closing=frozenset(sid for sid, s in self._sessions.items() if s.closing),
        )
