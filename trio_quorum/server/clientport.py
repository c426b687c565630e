"""The client port: listening sockets, one actor per connection, and the routing to a chain.

``ClientPort`` lives as long as the peer (``peer-N/client-port``); the request
chain in front of it changes with the role.  It is the connections' host
(:class:`~.connection.ConnectionHost`): it hands their batches to the chain
that is serving now, and answers a connection's fast-path reads from the
peer's tree with the same code the final stage uses.

Invariants:

* A connection only ever talks to the chain that was serving when its
  session was established; when that chain goes (role change, shutdown) the
  role closes every connection with a reason (:meth:`ClientPort.close_all`),
  as ZooKeeper does, and clients reconnect.
* While no chain serves (starting, LOOKING, stopping) a new connection is
  refused at its ConnectRequest and a batch is dropped (its connection is
  about to be closed).
* ``tracker`` is the session tracker connections create, revalidate and
  touch sessions in: the peer's (global sessions), except while a read-only
  server serves (``readonly.py``), which attaches its tracker of local
  sessions for that time; then a reconnect with a global session is refused
  (:meth:`ClientPort.validate_session`), as ZooKeeper's read-only server does.
* ``stats.outstanding`` counts requests handed to a chain and not answered;
  over ``globalOutstandingLimit`` connections with requests in flight stop
  reading (``throttle``) until the final stage releases some.
"""

from __future__ import annotations

import errno
import logging
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any

import trio

from actors import (
    ONE_FOR_ONE,
    TEMPORARY,
    ActorNotRunning,
    ChildSpec,
    ChildStartFailed,
    Context,
    Supervisor,
    open_supervisor,
)

from ..config import ServerConfig
from ..core.sessions import SessionTracker
from ..protocol.consts import OpCode
from .chain import Chain
from .connection import ClientConnection, close_socket
from .request import Request
from .state import PeerState

__all__ = ["ClientPort"]

log = logging.getLogger("trio_quorum.server.clientport")

#: accept() errors that mean "out of resources, try again soon" (as trio's serve_listeners).
_ACCEPT_CAPACITY_ERRORS = frozenset(
    getattr(errno, name) for name in ("EMFILE", "ENFILE", "ENOMEM", "ENOBUFS") if hasattr(errno, name)
)
#: accept() errors about that one connection (aborted, or a network error accept(2)
#: passes on): skip it, keep accepting.
_ACCEPT_SKIP_ERRORS = frozenset(
    getattr(errno, name)
    for name in ("ECONNABORTED", "EPERM", "EPROTO", "ENETDOWN", "ENOPROTOOPT", "EHOSTDOWN", "ENONET",
                 "EHOSTUNREACH", "EOPNOTSUPP", "ENETUNREACH")
    if hasattr(errno, name)
)
#: The accept loop yields after this many connections accepted without waiting.
_ACCEPTS_PER_CHECKPOINT = 8
_CREATE_SESSION = int(OpCode.createSession)


class ClientPort:
    """Connections, their registry, and the chain they submit to (see the module docstring)."""

    def __init__(self, state: PeerState, *, mode: Callable[[], str],
                 four_letter_word: Callable[[str], str]) -> None:
        self.state = state
        self.config: ServerConfig = state.config
        self.stats = state.stats
        self.auth = state.auth
        self.tracker = state.tracker
        self._mode = mode
        self._four_letter_word = four_letter_word
        self.throttle = trio.lowlevel.ParkingLot()
        self.port = 0
        self.listening = False
        #: The chain serving now (None while no role serves clients).
        self.chain: Chain | None = None
        self._conns: set[ClientConnection] = set()
        self._by_session: dict[int, ClientConnection] = {}
        self._per_ip: dict[str, int] = {}
        self._conn_seq = 0
        self._changed = trio.Event()
        self._local_sessions: SessionTracker | None = None

    # ------------------------------------------------------------ the chain slot
    def attach_chain(self, chain: Chain) -> None:
        self.chain = chain
        self.changed()

    def detach_chain(self, chain: Chain) -> None:
        if self.chain is chain:
            self.chain = None
            self.changed()

    def changed(self) -> None:
        """Wake :meth:`wait_until` callers: whether and how this peer serves may have changed."""
        self._changed.set()
        self._changed = trio.Event()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds, re-checked at every serving / role change."""
        while not predicate():
            await self._changed.wait()

    # ------------------------------------------------------------ local sessions (read-only mode)
    def attach_local_sessions(self, tracker: SessionTracker) -> None:
        """New sessions are ``tracker``'s (local) until :meth:`detach_local_sessions`."""
        self._local_sessions = tracker
        self.tracker = tracker

    def detach_local_sessions(self, tracker: SessionTracker) -> None:
        if self._local_sessions is tracker:
            self._local_sessions = None
            self.tracker = self.state.tracker

    @property
    def local_sessions(self) -> SessionTracker | None:
        return self._local_sessions

    def validate_session(self, session_id: int) -> str | None:
        """Why a reconnect with ``session_id`` is refused here (the connection closes), or None."""
        if self._local_sessions is not None and session_id in self.state.tracker:
            return "Refusing global session reconnection in RO mode"
        return None

    @property
    def serving(self) -> bool:
        return self.listening and self.chain is not None and self.chain.running

    def add_connection(self, conn: ClientConnection) -> None:
        """Register a connection that did not come through the listener (an in-memory
        client of a simulation): it is listed, pinged for and closed like any other."""
        self._conns.add(conn)
        ip = conn.remote[0]
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1

    def close_all(self, reason: str) -> None:
        """Close every client connection now (the chain they talked to is gone)."""
        for conn in list(self._conns):
            if not conn.closed:
                conn.abort(reason)

    # ------------------------------------------------------------ ConnectionHost
    @property
    def mode(self) -> str:
        return self._mode()

    def now_ms(self) -> int:
        return self.state.now_ms()

    def wall_ms(self) -> int:
        return self.state.wall_ms()

    def last_zxid(self) -> int:
        return self.state.last_zxid

    def submit(self, batch: list[Request]) -> None:
        """Hand a batch to the serving chain (never blocks); dropped when none serves."""
        # Counted first: the chain may answer the batch before returning (its direct path).
        self.stats.outstanding += len(batch)
        if batch[0].type == _CREATE_SESSION:  # a new bucket may now be the earliest
            self.state.expirer_wakeup.set()
        chain = self.chain
        try:
            if chain is None:
                raise ActorNotRunning("no chain is serving")
            chain.submit(batch)
        except ActorNotRunning:
            self.stats.outstanding -= len(batch)
            log.debug("no chain running: dropped a batch of %d requests", len(batch))

    def fast_reads(self) -> bool:
        """Reads may be answered by the connection itself (a chain serves; the tree is sound)."""
        return self.chain is not None and self.chain.running and self.state.tree_trusted

    def check_session(self, req: Request) -> None:
        """The session check prep does for a read (expired, moved): sets ``req.err``."""
        chain = self.chain
        if chain is not None:
            chain.check_read(req)

    def confirm_session(self, conn: ClientConnection, session_id: int, timeout: int) -> None:
        """Finish a reconnect that checked out locally (the serving role may ask its leader first)."""
        chain = self.chain
        if chain is None:
            conn.finish_session_init(session_id, timeout, False)
        else:
            chain.confirm_session(conn, session_id, timeout)

    def answer_read(self, req: Request, frames: list[bytes]) -> None:
        self.state.answer_read(req, frames)

    def outstanding_released(self) -> None:
        if self.stats.outstanding <= self.config.global_outstanding_limit:
            self.throttle.unpark_all()

    def bind_session(self, session_id: int, conn: ClientConnection) -> None:
        self._by_session[session_id] = conn

    def close_other_connections(self, session_id: int, conn: ClientConnection) -> None:
        old = self._by_session.get(session_id)
        if old is not None and old is not conn:
            old.abort(f"session 0x{session_id & 0xFFFFFFFFFFFFFFFF:x} moved to a new connection")

    def connection_for(self, session_id: int) -> ClientConnection | None:
        return self._by_session.get(session_id)

    def connection_closed(self, conn: ClientConnection) -> None:
        if conn not in self._conns:
            return
        self._conns.discard(conn)
        ip = conn.remote[0]
        n = self._per_ip.get(ip, 1) - 1
        if n <= 0:
            self._per_ip.pop(ip, None)
        else:
            self._per_ip[ip] = n
        if self._by_session.get(conn.session_id) is conn:
            del self._by_session[conn.session_id]
        self.state.forget_watcher(conn)

    def four_letter_word(self, cmd: str) -> str:
        return self._four_letter_word(cmd)

    def connections(self) -> Sequence[ClientConnection]:
        return list(self._conns)

    # ------------------------------------------------------------ the actor
    async def run(self, ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *,
                  task_status: trio.TaskStatus[int]) -> None:
        """Bind, then accept until asked to stop; one temporary ``conn-K`` child per socket."""
        cfg = self.config
        assert cfg.client_port is not None
        listening = await _open_listening_sockets(cfg.client_port_address, cfg.client_port)
        try:
            self.port = listening[0].getsockname()[1]
            cfg.client_port = self.port  # clientPort=0: report the port really bound (conf, logs)
            log.info("binding to port %s:%s", cfg.client_port_address, self.port)
            async with open_supervisor(ctx, strategy=ONE_FOR_ONE) as sup:
                self.listening = True
                self.changed()
                try:
                    async with trio.open_nursery() as nursery:
                        for lsock in listening:
                            nursery.start_soon(self._accept_loop, lsock, sup)
                        task_status.started(self.port)
                        await ctx.wait_stop_requested()
                        nursery.cancel_scope.cancel(reason=f"{ctx.path} asked to stop")
                finally:
                    self.listening = False
                # Leaving the block stops every connection together (one shared grace).
        finally:
            for lsock in listening:
                close_socket(lsock)

    async def _accept_loop(self, lsock: socket.socket, sup: Supervisor) -> None:
        """Accept from a non-blocking listening socket, waiting only when none is pending."""
        accept = lsock.accept
        streak = 0
        while True:
            try:
                sock, _addr = accept()
            except BlockingIOError:
                streak = 0
                await trio.lowlevel.wait_readable(lsock)  # a cancel point
                continue
            except OSError as exc:
                if exc.errno in _ACCEPT_CAPACITY_ERRORS:
                    log.error("accept failed (%s); sleeping 100 ms", exc)
                    await trio.sleep(0.1)
                    continue
                if exc.errno not in _ACCEPT_SKIP_ERRORS:
                    raise
            else:
                await self._start_connection(sock, sup)
            # A flood of refused or failed connections never waits: yield now and then.
            streak += 1
            if streak >= _ACCEPTS_PER_CHECKPOINT:
                streak = 0
                await trio.lowlevel.checkpoint()

    async def _start_connection(self, sock: socket.socket, sup: Supervisor) -> None:
        try:
            sock.setblocking(False)
            peer = sock.getpeername()
            remote = (str(peer[0]), int(peer[1]))
        except OSError:
            close_socket(sock)
            return
        limit = self.config.max_client_cnxns
        ip = remote[0]
        if limit and self._per_ip.get(ip, 0) >= limit:
            log.warning("Too many connections from /%s - max is %d", ip, limit)
            close_socket(sock)
            return
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        except OSError:
            pass
        conn = ClientConnection(self, sock, remote)
        self._conns.add(conn)
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        self._conn_seq += 1

        async def connection(
            ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *, task_status: trio.TaskStatus[ClientConnection]
        ) -> None:
            task_status.started(conn)
            await conn.run()

        # Temporary: a crashed connection is closed (ClientConnection.run's
        # finally) and forgotten; grace 0: a stop cancels it at once, dropping
        # unsent replies, as ZooKeeper's shutdown closes its sockets.
        try:
            await sup.start_child(
                ChildSpec(f"conn-{self._conn_seq}", connection, restart=TEMPORARY, shutdown=0.0, mailbox=0)
            )
        except BaseException as exc:
            if not conn.closed:  # it never ran: undo the bookkeeping, close the socket
                conn.closed = True
                self.connection_closed(conn)
                close_socket(sock)
            if not isinstance(exc, ChildStartFailed):
                raise
            log.error("connection from %s:%s failed to start: %r", *remote, exc.__cause__)


async def _open_listening_sockets(host: str, port: int) -> list[socket.socket]:
    """Non-blocking listening sockets, one per address ``host`` resolves to.

    As ``trio.open_tcp_listeners`` did before: ``SO_REUSEADDR`` (a SIGKILLed
    server rebinds its port at once), IPv6 sockets v6-only, the system's
    largest backlog.  ``port`` 0: each socket gets its own free port.
    """
    infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    socks: list[socket.socket] = []
    unsupported: OSError | None = None
    try:
        for family, type_, proto, _name, addr in infos:
            try:
                lsock = socket.socket(family, type_, proto)
            except OSError as exc:
                if exc.errno == errno.EAFNOSUPPORT:
                    unsupported = exc
                    continue
                raise
            socks.append(lsock)
            if sys.platform != "win32":
                lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                lsock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            lsock.bind(addr)
            lsock.listen(_listen_backlog())
            lsock.setblocking(False)
    except BaseException:
        for lsock in socks:
            lsock.close()
        raise
    if not socks:
        raise unsupported or OSError(errno.EADDRNOTAVAIL, f"no address to listen on for {host!r}")
    return socks


def _listen_backlog() -> int:
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            return min(int(f.read()), 0xFFFF)
    except (OSError, ValueError):
        return socket.SOMAXCONN
