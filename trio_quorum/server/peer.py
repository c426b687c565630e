"""The standalone server: a supervision tree of actors built with ``actors/``.

The tree (paths as published in lifecycle events; N is ``myid``, 0 standalone)::

    peer-N                  root, rest_for_one
      storage               owns the Storage: restore before anything serves; aclose (flush +
                            fsync, shielded, bounded) when stopped
      pipeline              one_for_all, intensity 0 (pipeline.py)
        final, sync, prep   started in that order, so stopped prep, sync, final (drains)
      purge-timer           only with autopurge.purgeInterval > 0 and durable storage
      session-expirer       sleeps until the next expiry bucket, submits closeSession
      container-checker     every znode.container.checkIntervalMs: deleteContainer / TTL deletes
      client-port           one_for_one: binds, accepts in its body, and runs one temporary
        conn-K              child per accepted socket (ClientConnection, connection.py)

Invariants:

* Every core (tree, session tracker, watches, prep, final) is touched only
  from this Trio thread, by synchronous code: no locks, no interleaving inside
  one step.
* The pipeline is the only writer of the tree; connections only read
  configuration and the tracker (create/revalidate/touch), exactly like
  ZooKeeper's ``processConnectRequest``.
* ``storage`` and ``pipeline`` are VITAL: they hold state that cannot be
  rebuilt in-process with certainty (the tree, the log position, prep's
  outstanding changes).  They are temporary children (the supervisor never
  restarts them) and any exit of theirs that was not a requested stop makes
  the server fail: it stops the rest of the tree gracefully and
  :meth:`StandaloneServer.run` raises :class:`ServerFailed` (the CLI exits 1).
  The other children hold no state of their own and are permanent: the root
  restarts them (with the children after them: rest_for_one) up to 3 times in
  5 s, then gives up and the server fails the same way.
* Shutdown (:meth:`StandaloneServer.shutdown`, e.g. on SIGTERM) stops the
  root's children one by one in reverse start order with the given reason:
  client-port first (listener closed, connections cancelled), the pipeline
  drained, storage closed last.  A hard cancel of the enclosing scope cancels
  every actor at once; storage still closes, shielded and bounded.
* Lifecycle events go to one subscriber that logs them (debug; crashes and
  give-ups at error) and watches the vital children.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import platform
import socket
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import trio

from actors import (
    ONE_FOR_ONE,
    REST_FOR_ONE,
    TEMPORARY,
    ActorCrashed,
    ActorGaveUp,
    ActorNotRunning,
    ActorStopped,
    ActorTree,
    ChildSpec,
    ChildStartFailed,
    Context,
    LifecycleEvent,
    Supervisor,
    open_supervisor,
)

from ..config import ServerConfig
from ..core.auth import AuthRegistry
from ..core.sessions import SessionTracker
from ..persistence.api import Storage
from . import gcpolicy
from .connection import ClientConnection, Request, close_socket
from .fourlw import VERSION, run_command
from .stats import ServerStats

__all__ = ["ServerFailed", "StandaloneServer", "serve_standalone", "open_storage"]

log = logging.getLogger("trio_quorum.server")


def open_storage(config: ServerConfig) -> Storage:
    """The durable file store when available, else the in-memory one (with a warning)."""
    try:
        from ..persistence.filestore import FileStore  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        from ..persistence.memstore import MemStore

        log.warning("persistence.filestore is not available: data is kept in memory only")
        return MemStore()
    return FileStore(  # type: ignore[no-any-return,unused-ignore]
        config.data_dir,
        config.data_log_dir,
        snap_count=config.snap_count,
        force_sync=config.force_sync,
        pre_alloc_size=config.pre_alloc_size_kb * 1024,
    )


class ServerFailed(Exception):
    """The server stopped because a vital actor failed; its state could not be trusted.

    The message names the actor and why; the data directory holds everything
    acknowledged (restart the server to recover from it).
    """


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
#: The vital children (see the module docstring).
_VITAL = ("storage", "pipeline")
_STORAGE_CLOSE_TIMEOUT = 10.0


def _memstore_type() -> type:
    from ..persistence.memstore import MemStore

    return MemStore


class StandaloneServer:
    """State shared by the standalone server's actors (see the module docstring)."""

    mode = "standalone"

    def __init__(self, config: ServerConfig, storage: Storage, *, tree: ActorTree | None = None) -> None:
        from .pipeline import Pipeline

        self.config = config
        #: The root's name: the first component of every actor path.
        self.name = f"peer-{config.my_id}"
        #: The actor tree (subscribe to ``tree.events`` before :meth:`run` to see every event).
        self.tree = tree if tree is not None else ActorTree()
        self.storage = storage
        self.stats = ServerStats()
        self.auth = AuthRegistry(config.super_digest)
        self._t0 = trio.current_time()
        self._wall0 = time.time()
        self.tracker = SessionTracker(
            config.my_id,
            int(time.time() * 1000),
            tick_time=config.tick_time,
            min_session_timeout=config.min_session_timeout,
            max_session_timeout=config.max_session_timeout,
        )
        # SessionTracker's id seed wants wall time; its buckets want our clock.
        self.tracker.restore({}, self.now_ms())
        self.pipeline = Pipeline(self)
        self._conns: set[ClientConnection] = set()
        self._by_session: dict[int, ClientConnection] = {}
        self._per_ip: dict[str, int] = {}
        self._serving = False
        self._expirer_wakeup = trio.Event()
        self.throttle = trio.lowlevel.ParkingLot()
        self.port = 0
        self._conn_seq = 0
        self._stop_reason: str | None = None
        self._stop_requested = trio.Event()
        self._failure: str | None = None
        self.root: Supervisor | None = None

    # ------------------------------------------------------------ clocks
    def now_ms(self) -> int:
        """Monotonic ms (Trio's clock, so MockClock drives expiry in tests)."""
        return int(trio.current_time() * 1000)

    def wall_ms(self) -> int:
        return int(self._wall0 * 1000 + (trio.current_time() - self._t0) * 1000)

    # ------------------------------------------------------------ used by connections
    def submit(self, batch: list[Request]) -> None:
        """Hand a batch to the pipeline (never blocks; the pipeline is one ordered queue).

        When the pipeline is not running (the server is stopping or failed) the
        batch is dropped: its connections are about to be closed.
        """
        # Counted first: the pipeline may answer the batch before returning (its direct path).
        self.stats.outstanding += len(batch)
        if batch[0].type == -10:  # createSession: a new bucket may now be the earliest
            self._expirer_wakeup.set()
        try:
            self.pipeline.submit(batch)
        except ActorNotRunning:
            self.stats.outstanding -= len(batch)
            log.debug("pipeline not running: dropped a batch of %d requests", len(batch))

    def outstanding_released(self) -> None:
        """The final stage finished a batch: wake connections held by globalOutstandingLimit."""
        if self.stats.outstanding <= self.config.global_outstanding_limit:
            self.throttle.unpark_all()

    def last_zxid(self) -> int:
        return self.pipeline.last_processed_zxid()

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
        self.pipeline.connection_closed(conn)

    def four_letter_word(self, cmd: str) -> str:
        return run_command(cmd, self)

    # ------------------------------------------------------------ ServerView (4lw)
    @property
    def serving(self) -> bool:
        return self._serving

    def connections(self) -> Sequence[ClientConnection]:
        return list(self._conns)

    def node_count(self) -> int:
        return self.pipeline.node_count()

    def approximate_data_size(self) -> int:
        return self.pipeline.approximate_data_size()

    def watch_count(self) -> int:
        return self.pipeline.watch_count()

    def ephemerals(self) -> Mapping[int, Iterable[str]]:
        return self.pipeline.ephemerals()

    def session_buckets(self) -> Mapping[int, Iterable[int]]:
        return self.tracker.view().expiry_buckets

    def session_count(self) -> int:
        return len(self.tracker)

    def watches_by_session(self) -> Mapping[int, Iterable[str]]:
        out: dict[int, Iterable[str]] = {}
        for w, paths in self.pipeline.watches_by_watcher().items():
            sid = getattr(w, "session_id", 0)
            out[sid] = sorted(paths)
        return out

    def dir_sizes(self) -> tuple[int, int]:
        def size(d: str) -> int:
            total = 0
            try:
                with os.scandir(os.path.join(d, "version-2")) as it:
                    for e in it:
                        if e.is_file(follow_symlinks=False) and e.name.startswith(("log.", "snapshot.")):
                            total += e.stat(follow_symlinks=False).st_size
            except OSError:
                return 0
            return total

        return size(self.config.data_dir), size(self.config.data_log_dir)

    def environment(self) -> Sequence[tuple[str, str]]:
        return [
            ("zookeeper.version", VERSION),
            ("host.name", socket.gethostname()),
            ("python.version", platform.python_version()),
            ("python.implementation", platform.python_implementation()),
            ("trio.version", trio.__version__),
            ("python.executable", sys.executable),
            ("os.name", platform.system()),
            ("os.arch", platform.machine()),
            ("os.version", platform.release()),
            ("user.name", os.environ.get("USER", "")),
            ("user.home", os.path.expanduser("~")),
            ("user.dir", os.getcwd()),
        ]

    def uptime_ms(self) -> int:
        return int((trio.current_time() - self._t0) * 1000)

    def fd_counts(self) -> tuple[int, int]:
        try:
            import resource

            max_fds = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            return len(os.listdir("/proc/self/fd")), max_fds
        except (OSError, ImportError):
            return -1, -1

    # ------------------------------------------------------------ lifecycle
    @property
    def stopping(self) -> bool:
        """True once :meth:`shutdown` (or a failure) asked the tree to stop."""
        return self._stop_reason is not None

    @property
    def stop_reason(self) -> str | None:
        """The reason given to :meth:`shutdown` (nested supervisors pass it on to their children)."""
        return self._stop_reason

    @property
    def failure(self) -> str | None:
        """Why the server failed, or None."""
        return self._failure

    def shutdown(self, reason: str) -> None:
        """Stop gracefully: the root's children, in reverse start order, each told ``reason``.

        Idempotent (the first reason wins); returns at once, :meth:`run` returns
        when everything stopped.
        """
        if self._stop_reason is None:
            self._stop_reason = reason
            self._stop_requested.set()

    def fail(self, message: str) -> None:
        """A vital actor failed: stop everything; :meth:`run` raises :class:`ServerFailed`."""
        if self._failure is None and not self.stopping:
            self._failure = message
            log.error("fatal: %s; stopping the server rather than serve from uncertain state", message)
            self.shutdown(f"fatal: {message}")

    def child_specs(self) -> list[ChildSpec]:
        """The root's children, in start order (see the module docstring)."""
        cfg = self.config
        specs = [
            ChildSpec("storage", self._storage_actor, restart=TEMPORARY, mailbox=0,
                      shutdown=_STORAGE_CLOSE_TIMEOUT + 5),
            ChildSpec("pipeline", self._pipeline_actor, restart=TEMPORARY, mailbox=0, shutdown=math.inf),
        ]
        if cfg.purge_interval_hours > 0 and not isinstance(self.storage, _memstore_type()):
            specs.append(ChildSpec("purge-timer", self._purge_timer, mailbox=0, shutdown=1.0))
        specs += [
            ChildSpec("session-expirer", self._session_expirer, mailbox=0, shutdown=1.0),
            ChildSpec("container-checker", self._container_checker, mailbox=0, shutdown=1.0),
            ChildSpec("client-port", self._client_port, mailbox=0, shutdown=10.0),
        ]
        return specs

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the tree until :meth:`shutdown` (or a cancel); ``task_status.started(port)`` once serving.

        Raises:
          ServerFailed: a vital actor failed, or the root gave up restarting a child.
          actors.ChildStartFailed: a child could not start (e.g. the port is taken:
            the ``OSError`` is its ``__cause__``).
        """
        events = self.tree.events.subscribe(max_buffer=100_000)
        # A big long-lived tree makes full collections slow: see gcpolicy.py.
        old_gc = gcpolicy.tune()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch_events, events, name=f"{self.name}:events")
                try:
                    await self._run_root(task_status)
                finally:
                    nursery.cancel_scope.cancel(reason="server stopped")
        finally:
            gcpolicy.restore(old_gc)
            events.close()
            for event in events.drain():  # the root's own last events
                self._on_event(event)
            if events.dropped:
                log.warning("%d lifecycle events were not logged (subscriber buffer full)", events.dropped)
        if self._failure is not None:
            raise ServerFailed(self._failure)

    async def _run_root(self, task_status: trio.TaskStatus[int]) -> None:
        from actors import SupervisorGaveUp

        try:
            async with open_supervisor(
                self.name, tree=self.tree, strategy=REST_FOR_ONE, children=self.child_specs(),
                max_restarts=3, max_seconds=5.0,
            ) as root:
                self.root = root
                port: int = root.started_value("client-port")
                log.info("serving standalone on %s:%d (dataDir %s)", self.config.client_port_address, port,
                         self.config.data_dir)
                task_status.started(port)
                await self._stop_requested.wait()
                reason = self._stop_reason or "stopped"
                # Graceful, in reverse start order, each child told why.  (Leaving
                # the block would do the same, but with a generic reason.)
                for cid in reversed(root.child_ids()):
                    try:
                        await root.stop_child(cid, reason=reason)
                    except KeyError:
                        pass  # a temporary child already gone
        except SupervisorGaveUp as exc:
            if self._failure is None:
                self._failure = f"{exc} (last crash: {exc.__cause__!r})"
                log.error("fatal: %s", self._failure)

    async def _watch_events(self, events: Any) -> None:
        async for event in events:
            self._on_event(event)

    def _on_event(self, event: LifecycleEvent) -> None:
        cls = event.__class__
        if cls is ActorCrashed:
            log.error("actor %s crashed: %r", event.path, event.exc,  # type: ignore[attr-defined]
                      exc_info=event.exc)  # type: ignore[attr-defined]
        elif cls is ActorGaveUp:
            log.error("supervisor %s gave up after %d restarts: %r", event.path,
                      event.restarts, event.cause)  # type: ignore[attr-defined]
        elif log.isEnabledFor(logging.DEBUG):
            log.debug("%s", event)
        if cls is ActorStopped and not self.stopping:
            parent, _, cid = event.path.rpartition("/")
            if parent == self.name and cid in _VITAL and trio.current_effective_deadline() != -math.inf:
                # A vital child ended without being asked to (crash, injected
                # cancel, or a bug that returned): its state is suspect.
                self.fail(f"actor {event.path} stopped unexpectedly ({event.reason})")  # type: ignore[attr-defined]

    # ------------------------------------------------------------ actors
    async def _storage_actor(
        self, ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *, task_status: trio.TaskStatus[None]
    ) -> None:
        """Restore before anything serves; close (flush + fsync) when stopped, however it stops.

        The storage's background snapshots run in this actor's nursery (see
        ``attach_nursery``): without one, ``maybe_snapshot`` writes the whole
        snapshot inside the pipeline's final stage and every write waits for
        it (0.3-1 s at 300k znodes: the create 8x32 p99.9).  A running
        snapshot is cancelled when the actor stops (its temp file removed; the
        log still has every txn), before the store is closed.
        """
        attach = getattr(self.storage, "attach_nursery", None)
        try:
            async with trio.open_nursery() as background:
                if attach is not None:
                    attach(background)
                try:
                    await self.pipeline.restore()
                    if self.pipeline.node_count() >= gcpolicy.FREEZE_MIN_NODES:
                        gcpolicy.freeze()  # the restored tree is long-lived: keep it out of collections
                    task_status.started()
                    await ctx.wait_stop_requested()
                finally:
                    if attach is not None:
                        attach(None)  # a late maybe_snapshot runs inline, never in a closed nursery
                    background.cancel_scope.cancel(reason="storage stopping")
        finally:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(_STORAGE_CLOSE_TIMEOUT) as cs:
                    await self.storage.aclose()
                if cs.cancelled_caught:
                    log.error("storage did not close within %s s", _STORAGE_CLOSE_TIMEOUT)
                else:
                    log.info("storage closed")

    async def _pipeline_actor(
        self, ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *, task_status: trio.TaskStatus[None]
    ) -> None:
        from actors import SupervisorGaveUp

        try:
            await self.pipeline.run(ctx, inbox, task_status=task_status)
        except SupervisorGaveUp as exc:
            # Escalate at once (the event watcher would too, one hop later).
            self.fail(f"pipeline stage {exc.child} crashed: {exc.__cause__!r}")
            raise

    async def _purge_timer(
        self, ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *, task_status: trio.TaskStatus[None]
    ) -> None:
        from ..persistence.purge import run_purge_timer

        cfg = self.config
        async with trio.open_nursery() as nursery:
            await nursery.start(run_purge_timer, cfg.data_dir, cfg.data_log_dir,
                                cfg.snap_retain_count, cfg.purge_interval_hours)
            task_status.started()
            await _until_stop_requested(ctx, nursery)

    async def _session_expirer(
        self, ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *, task_status: trio.TaskStatus[None]
    ) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._expire_loop)
            task_status.started()
            await _until_stop_requested(ctx, nursery)

    async def _expire_loop(self) -> None:
        """``SessionTrackerImpl.run``: sleep until the next bucket, expire it, submit closeSession."""
        tracker = self.tracker
        while True:
            nxt = tracker.next_expiration_time()
            self._expirer_wakeup = trio.Event()
            if nxt is None:
                await self._expirer_wakeup.wait()
                continue
            with trio.move_on_at(nxt / 1000):
                await self._expirer_wakeup.wait()
            expired = tracker.expire(self.now_ms())
            if expired:
                now = self.now_ms()
                batch = []
                for sid in expired:
                    log.info("Expiring session 0x%x, timeout of %sms exceeded",
                             sid & 0xFFFFFFFFFFFFFFFF, tracker.timeout_of(sid))
                    batch.append(Request(None, sid, 0, -11, None, now))
                self.submit(batch)

    async def _container_checker(
        self, ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *, task_status: trio.TaskStatus[None]
    ) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._container_loop)
            task_status.started()
            await _until_stop_requested(ctx, nursery)

    async def _container_loop(self) -> None:
        """``ContainerManager``: periodically delete empty containers and expired TTL nodes."""
        interval = self.config.container_check_interval_ms / 1000
        while True:
            await trio.sleep(interval)
            batch = self.pipeline.container_cleanup_requests(self.now_ms(), self.wall_ms())
            if batch:
                self.submit(batch)

    async def _client_port(
        self, ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *, task_status: trio.TaskStatus[int]
    ) -> None:
        """Bind, then accept until asked to stop; one temporary ``conn-K`` child per socket."""
        cfg = self.config
        assert cfg.client_port is not None
        listening = await _open_listening_sockets(cfg.client_port_address, cfg.client_port)
        try:
            self.port = listening[0].getsockname()[1]
            cfg.client_port = self.port  # clientPort=0: report the port really bound (conf, logs)
            log.info("binding to port %s:%s", cfg.client_port_address, self.port)
            async with open_supervisor(ctx, strategy=ONE_FOR_ONE) as sup:
                self._serving = True
                try:
                    async with trio.open_nursery() as nursery:
                        for lsock in listening:
                            nursery.start_soon(self._accept_loop, lsock, sup)
                        task_status.started(self.port)
                        await _until_stop_requested(ctx, nursery)
                finally:
                    self._serving = False
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


async def _until_stop_requested(ctx: Context, nursery: trio.Nursery) -> None:
    """Park until the supervisor asks ``ctx`` to stop, then end ``nursery``'s work: a clean return."""
    await ctx.wait_stop_requested()
    nursery.cancel_scope.cancel(reason=f"{ctx.path} asked to stop")


async def serve_standalone(
    config: ServerConfig,
    *,
    storage: Storage | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a standalone server until cancelled; ``task_status.started(port)`` once it accepts clients.

    Args:
        config: a parsed zoo.cfg (``client_port`` 0 picks a free port).
        storage: defaults to :func:`open_storage` (the durable file store).
    """
    server = StandaloneServer(config, storage if storage is not None else open_storage(config))
    await server.run(task_status=task_status)

