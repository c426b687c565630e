"""The standalone server: client port, pipeline, session expirer, container checker.

Supervision shape (one nursery per role, started in order, stopped in reverse)::

    standalone
      storage        restored first; closed (flush + fsync, shielded) last
      pipeline       prep -> sync -> final (pipeline.py), linked by memory channels of BATCHES
      session-expirer   sleeps until the next expiry bucket, submits closeSession
      container-checker every znode.container.checkIntervalMs: deleteContainer / TTL deletes
      purge-timer    autopurge.purgeInterval / snapRetainCount (durable storage only)
      client-port    TCP listener; one ClientConnection actor per accepted socket

Invariants:

* Every core (tree, session tracker, watches, prep, final) is touched only
  from this Trio thread, by synchronous code: no locks, no interleaving inside
  one step.
* The pipeline is the only writer of the tree; connections only read
  configuration and the tracker (create/revalidate/touch), exactly like
  ZooKeeper's ``processConnectRequest``.
* Shutdown (cancel of the root scope): the listener stops first, the
  connections are cancelled, then storage is closed with a bounded, shielded
  flush + fsync.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import trio

from ..auth import AuthRegistry
from ..config import ServerConfig
from ..persistence.api import Storage
from ..sessions import SessionTracker
from .connection import ClientConnection, Request
from .fourlw import VERSION, run_command
from .stats import ServerStats

__all__ = ["StandaloneServer", "serve_standalone", "open_storage"]

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


def _memstore_type() -> type:
    from ..persistence.memstore import MemStore

    return MemStore


class StandaloneServer:
    """State shared by the standalone server's actors (see the module docstring)."""

    mode = "standalone"

    def __init__(self, config: ServerConfig, storage: Storage, *, clock: Any = None) -> None:
        from .pipeline import Pipeline

        self.config = config
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

    # ------------------------------------------------------------ clocks
    def now_ms(self) -> int:
        """Monotonic ms (Trio's clock, so MockClock drives expiry in tests)."""
        return int(trio.current_time() * 1000)

    def wall_ms(self) -> int:
        return int(self._wall0 * 1000 + (trio.current_time() - self._t0) * 1000)

    # ------------------------------------------------------------ used by connections
    def submit(self, batch: list[Request]) -> None:
        """Hand a batch to the pipeline (never blocks; the pipeline is one ordered queue)."""
        self.stats.outstanding += len(batch)
        self.pipeline.submit(batch)
        if batch[0].type in (-10,):  # createSession: a new bucket may now be the earliest
            self._expirer_wakeup.set()

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

    # ------------------------------------------------------------ actors
    async def _serve_client_port(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        cfg = self.config
        assert cfg.client_port is not None
        # trio sets SO_REUSEADDR on listeners, so a SIGKILLed server rebinds at once.
        listeners = await trio.open_tcp_listeners(cfg.client_port, host=cfg.client_port_address)
        self.port = listeners[0].socket.getsockname()[1]
        cfg.client_port = self.port  # clientPort=0: report the port really bound (conf, logs)
        log.info("binding to port %s:%s", cfg.client_port_address, self.port)
        async with trio.open_nursery() as nursery:
            self._serving = True
            task_status.started(self.port)
            try:
                await trio.serve_listeners(self._handle_socket, listeners, handler_nursery=nursery)
            finally:
                self._serving = False

    async def _handle_socket(self, stream: trio.SocketStream) -> None:
        try:
            peer = stream.socket.getpeername()
            remote = (str(peer[0]), int(peer[1]))
        except OSError:
            await stream.aclose()
            return
        limit = self.config.max_client_cnxns
        ip = remote[0]
        if limit and self._per_ip.get(ip, 0) >= limit:
            log.warning("Too many connections from /%s - max is %d", ip, limit)
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await stream.aclose()
            return
        try:
            stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        except OSError:
            pass
        conn = ClientConnection(self, stream, remote)
        self._conns.add(conn)
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        await conn.run()

    async def _session_expirer(self) -> None:
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

    async def _container_checker(self) -> None:
        """``ContainerManager``: periodically delete empty containers and expired TTL nodes."""
        interval = self.config.container_check_interval_ms / 1000
        while True:
            await trio.sleep(interval)
            batch = self.pipeline.container_cleanup_requests(self.now_ms(), self.wall_ms())
            if batch:
                self.submit(batch)

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Restore storage, start the pipeline and the actors, report the bound port."""
        try:
            await self.pipeline.restore()
            async with trio.open_nursery() as nursery:
                await nursery.start(self.pipeline.run)
                if not isinstance(self.storage, _memstore_type()):
                    from ..persistence.purge import run_purge_timer

                    cfg = self.config
                    await nursery.start(run_purge_timer, cfg.data_dir, cfg.data_log_dir,
                                        cfg.snap_retain_count, cfg.purge_interval_hours)
                nursery.start_soon(self._session_expirer)
                nursery.start_soon(self._container_checker)
                port = await nursery.start(self._serve_client_port)
                log.info("serving standalone on %s:%d (dataDir %s)", self.config.client_port_address, port,
                         self.config.data_dir)
                task_status.started(port)
        finally:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(10) as cs:
                    await self.storage.aclose()
                if cs.cancelled_caught:
                    log.error("storage did not close within 10 s")
                else:
                    log.info("storage closed")


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
