"""The peer: the root actor, which owns the state and runs one role at a time.

The tree (paths as published in lifecycle events; N is ``myid``, 0 standalone)::

    peer-N                  root, one_for_one, auto_shutdown: any significant child
      storage               temporary, significant: restore before anything serves;
                            aclose (flush + fsync, shielded, bounded) when stopped
      purge-timer           only with autopurge.purgeInterval > 0 and durable storage
      client-port           one_for_one: binds, accepts in its body, and runs one temporary
        conn-K              child per accepted socket (clientport.py, connection.py)
      standalone            the role (roles.py): temporary, significant; replaced at
                            run time by :meth:`Peer.restart_role`

Invariants:

* The peer owns what outlives a role (:class:`~.state.PeerState`: the tree,
  the session tracker, storage, stats) and the client port; a role is the
  request chain in front of them, replaced whole on a role change.
* Every core is touched only from this Trio thread, by synchronous code: no
  locks, no interleaving inside one step.
* ``storage`` and the role are SIGNIFICANT: they hold state that cannot be
  rebuilt in-process with certainty (the tree, the log position, prep's
  outstanding changes).  Any exit of theirs that was not a requested stop
  shuts the root down (OTP's auto_shutdown) and :meth:`Peer.run` raises
  :class:`ServerFailed` (the CLI exits 1).  The other children hold no state
  and are restarted by the root up to 3 times in 5 s.
* Shutdown (:meth:`Peer.shutdown`, e.g. on SIGTERM) stops the root's children
  one by one in reverse start order with the given reason: the role first
  (chain drained, clients closed), the client port, storage closed last.  A
  hard cancel of the enclosing scope cancels every actor at once; storage
  still closes, shielded and bounded.
* Lifecycle events go to one subscriber that logs them (debug; crashes and
  give-ups at error).
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import trio

from actors import (
    ONE_FOR_ONE,
    TEMPORARY,
    ActorCrashed,
    ActorGaveUp,
    ActorTree,
    AutoShutdown,
    ChildSpec,
    Context,
    LifecycleEvent,
    Supervisor,
    SupervisorGaveUp,
    open_supervisor,
)

from ..config import ServerConfig
from ..persistence.api import Storage
from . import gcpolicy
from .chain import Chain
from .clientport import ClientPort
from .connection import ClientConnection
from .fourlw import VERSION, run_command
from .quorumpeer import QuorumPeer
from .roles import standalone_role
from .state import PeerState
from .stats import QuorumStats

__all__ = ["Peer", "ServerFailed", "open_storage", "serve"]

log = logging.getLogger("trio_quorum.server")

_STORAGE_CLOSE_TIMEOUT = 10.0


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


def _memstore_type() -> type:
    from ..persistence.memstore import MemStore

    return MemStore


class Peer:
    """One peer: its state, its client port, and the role it runs (see the module docstring)."""

    def __init__(self, config: ServerConfig, storage: Storage, *, tree: ActorTree | None = None,
                 network: Any = None) -> None:
        self.config = config
        #: The root's name: the first component of every actor path.
        self.name = f"peer-{config.my_id}"
        #: The actor tree (subscribe to ``tree.events`` before :meth:`run` to see every event).
        self.tree = tree if tree is not None else ActorTree()
        self.state = PeerState(config, storage)
        self.storage = storage
        self.stats = self.state.stats
        self.tracker = self.state.tracker
        self.clients = ClientPort(self.state, mode=lambda: self.mode, four_letter_word=self.four_letter_word)
        #: The chain of the role running now (None between roles).
        self.chain: Chain | None = None
        self.role: str | None = None
        #: The ensemble's part (None when standalone): election, quorum links, the role loop.
        self.quorum = QuorumPeer(self, network) if config.quorum is not None else None
        self._stop_reason: str | None = None
        self._stop_requested = trio.Event()
        self._failure: str | None = None
        self.root: Supervisor | None = None

    @property
    def mode(self) -> str:
        """``srvr``'s Mode: standalone, or leader / follower / observer (``looking`` between roles)."""
        if self.quorum is None:
            return "standalone"
        return self.quorum.mode

    # ------------------------------------------------------------ clocks (ServerView)
    def now_ms(self) -> int:
        return self.state.now_ms()

    def wall_ms(self) -> int:
        return self.state.wall_ms()

    def uptime_ms(self) -> int:
        return self.state.uptime_ms()

    # ------------------------------------------------------------ ServerView (4lw)
    @property
    def port(self) -> int:
        return self.clients.port

    @property
    def serving(self) -> bool:
        return self.clients.serving

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds, re-checked whenever this peer's role or serving state changes."""
        await self.clients.wait_until(predicate)

    def four_letter_word(self, cmd: str) -> str:
        return run_command(cmd, self)

    def last_zxid(self) -> int:
        return self.state.last_zxid

    def connections(self) -> Sequence[ClientConnection]:
        return self.clients.connections()

    def node_count(self) -> int:
        return self.state.tree.node_count()

    def approximate_data_size(self) -> int:
        return self.state.tree.approximate_data_size()

    def watch_count(self) -> int:
        return self.state.tree.watch_count()

    def ephemerals(self) -> Mapping[int, Iterable[str]]:
        return self.state.ephemerals()

    def session_buckets(self) -> Mapping[int, Iterable[int]]:
        return self.tracker.view().expiry_buckets

    def session_count(self) -> int:
        return len(self.tracker)

    # ------------------------------------------------------------ ServerView, ensemble parts (fourlw.py)
    def quorum_stats(self) -> QuorumStats | None:
        return self.quorum.quorum_stats() if self.quorum is not None else None

    def session_timeouts(self) -> Mapping[int, int]:
        return self.tracker.session_timeouts()

    def local_session_buckets(self) -> Mapping[int, Iterable[int]] | None:
        local = self.clients.local_sessions
        return None if local is None else local.view().expiry_buckets

    def watches_by_session(self) -> Mapping[int, Iterable[str]]:
        out: dict[int, Iterable[str]] = {}
        for w, paths in self.state.watches_by_watcher().items():
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
        """The root's static children, in start order (the role is started after them)."""
        cfg = self.config
        specs = [
            ChildSpec("storage", self._storage_actor, restart=TEMPORARY, mailbox=0,
                      shutdown=_STORAGE_CLOSE_TIMEOUT + 5, significant=True),
        ]
        if cfg.purge_interval_hours > 0 and not isinstance(self.storage, _memstore_type()):
            specs.append(ChildSpec("purge-timer", self._purge_timer, mailbox=0, shutdown=1.0))
        specs.append(ChildSpec("client-port", self.clients.run, mailbox=0, shutdown=10.0))
        if self.quorum is not None:
            specs += self.quorum.child_specs()
        return specs

    def _role_spec(self) -> ChildSpec:
        return standalone_role(self.state, self.clients, on_chain=self._set_chain)

    def _set_chain(self, chain: Chain | None) -> None:
        self.chain = chain

    async def restart_role(self, reason: str) -> None:
        """Stop the running role with ``reason`` (chain drained, clients closed) and start a fresh one.

        What a role change does, with the same role again: the tree, the
        sessions and storage are untouched.
        """
        root = self.root
        if root is None or self.stopping:
            raise RuntimeError("the peer is not running")
        if self.role is not None:
            old, self.role = self.role, None
            log.info("leaving role %s: %s", old, reason)
            await root.stop_child(old, reason=reason)
        await self._start_role(root)

    async def _start_role(self, root: Supervisor) -> None:
        spec = self._role_spec()
        await root.start_child(spec)
        self.role = spec.id

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
        root: Supervisor | None = None
        try:
            async with open_supervisor(
                self.name, tree=self.tree, strategy=ONE_FOR_ONE, children=self.child_specs(),
                max_restarts=3, max_seconds=5.0, auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
            ) as root:
                self.root = root
                if self.quorum is None:
                    await self._start_role(root)
                    log.info("serving %s on %s:%d (dataDir %s)", self.mode, self.config.client_port_address,
                             self.port, self.config.data_dir)
                    task_status.started(self.port)
                    await self._stop_requested.wait()
                else:
                    task_status.started(self.port)
                    async with trio.open_nursery() as loop:
                        loop.start_soon(self.quorum.role_loop, root)
                        await self._stop_requested.wait()
                        loop.cancel_scope.cancel(reason=self._stop_reason or "stopped")
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
        finally:
            self.root = None
        cause = root.auto_shutdown_cause if root is not None else None
        if cause is not None and self._failure is None:
            # A significant child (storage, the role) ended without being asked:
            # its state is suspect; the peer stopped rather than serve from it.
            self._failure = f"actor {cause.path} stopped unexpectedly: {cause.reason}"
            log.error("fatal: %s; stopped the server rather than serve from uncertain state", self._failure)

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

    # ------------------------------------------------------------ actors
    async def _storage_actor(
        self, ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *, task_status: trio.TaskStatus[None]
    ) -> None:
        """Restore before anything serves; close (flush + fsync) when stopped, however it stops.

        The storage's background snapshots run in this actor's nursery (see
        ``attach_nursery``): without one, ``maybe_snapshot`` writes the whole
        snapshot inside the final stage and every write waits for it (0.3-1 s
        at 300k znodes: the create 8x32 p99.9).  A running snapshot is
        cancelled when the actor stops (its temp file removed; the log still
        has every txn), before the store is closed.
        """
        attach = getattr(self.storage, "attach_nursery", None)
        try:
            async with trio.open_nursery() as background:
                if attach is not None:
                    attach(background)
                try:
                    await self.state.restore()
                    if self.state.tree.node_count() >= gcpolicy.FREEZE_MIN_NODES:
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

    async def _purge_timer(
        self, ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *, task_status: trio.TaskStatus[None]
    ) -> None:
        from ..persistence.purge import run_purge_timer

        cfg = self.config
        async with trio.open_nursery() as nursery:
            await nursery.start(run_purge_timer, cfg.data_dir, cfg.data_log_dir,
                                cfg.snap_retain_count, cfg.purge_interval_hours)
            task_status.started()
            await ctx.wait_stop_requested()
            nursery.cancel_scope.cancel(reason=f"{ctx.path} asked to stop")


async def serve(
    config: ServerConfig,
    *,
    storage: Storage | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a peer until cancelled; ``task_status.started(port)`` once it accepts clients.

    Args:
        config: a parsed zoo.cfg (``client_port`` 0 picks a free port).
        storage: defaults to :func:`open_storage` (the durable file store).
    """
    peer = Peer(config, storage if storage is not None else open_storage(config))
    await peer.run(task_status=task_status)
