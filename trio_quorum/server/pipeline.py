"""The standalone request pipeline: prep -> sync -> final, passing BATCHES.

Each stage is an actor (``peer-N/pipeline/prep`` ...) under the ``pipeline``
supervisor; it owns its part of the work and sends to the next stage's
:class:`~actors.ActorRef`.  Every message is a whole batch (a trio channel
message costs ~10 us, so never one message per request per stage):

* **prep** (``Prep`` core, ``PrepRequestProcessor``): assigns zxids, turns
  writes into txns (failed writes into error txns), checks sessions, passes
  reads through in order.
* **sync** (``SyncRequestProcessor``): takes every batch that is waiting,
  appends all their txns to storage and calls ``storage.sync()`` ONCE (group
  commit: while one fsync runs, the next batches pile up and share the next
  one), then passes the merged batch on.
* **final** (``FinalRequestProcessor``): applies txns to the tree in zxid
  order, answers reads, queues watch notifications on their connections
  BEFORE any later reply, and delivers each connection's frames with one
  ``deliver`` call per batch.

**Direct path** (``Pipeline.submit``): when nothing is in flight in the
stages and no other connection committed in the last ``_DIRECT_QUIET_S``,
the batch is processed in the caller's step: prep, append, ``sync_inline``
(write + fdatasync in the event-loop thread), apply, deliver.  On this
machine the hand-off to the syncer thread and back, plus three stage hops,
cost more than the fsync itself (docs/server.md, "Performance"), which is
what a lone client waits for.  Why it is safe:

* it contains no ``await``, so nothing interleaves: the stages are empty,
  and no later batch can be prepped, logged or applied before this one is
  done: zxid order, per-session FIFO and "reply after sync" hold as in the
  stages, which run the same helpers (``_prep_batch``, ``_append_batch``,
  ``_finish_batch``);
* a failure is sent as a ``_Crash`` message to the stage whose work failed,
  which raises it: the same escalation as a crash in that stage (the server
  stops; nothing after the failure is acknowledged);
* group commit is kept under load: a write from a connection other than
  the last committer (a commit of several connections' requests is
  nobody's), within ``_DIRECT_QUIET_S`` of the last commit, goes through the
  stages (so concurrent clients share one fsync), and so does everything
  while the stages hold anything;
* a slow disk does not stall the event loop for long: inline fsyncs slower
  than ``_DIRECT_SLOW_FSYNC_S`` on average turn the direct path off for
  ``_DIRECT_BACKOFF_S`` (the syncer thread takes the fsyncs meanwhile).

Per-session FIFO holds because every request of a session that has anything
in flight flows through this single ordered pipeline; a connection with
nothing in flight answers its plain reads itself (the read fast path,
connection.py), using this module's ``answer_read`` so the bytes are the
same.

Supervision (decided here, documented in docs/server.md): the stages start
final, sync, prep (a stage's downstream is running before it sends) so the
supervisor's reverse stop order is prep, sync, final and a graceful stop
DRAINS: each stage finishes what is in its inbox and hands it on before the
next one is asked to stop.  The supervisor is one_for_all with intensity 0: a
stage crash is never restarted in-process, because the crashed stage may
have left its core half-updated (prep's outstanding changes, a batch
appended to the log but not applied to the tree) and restarting it would
serve from state nobody can vouch for; ZooKeeper likewise exits when a
request processor thread dies.  The surviving stages are stopped (draining
batches that were complete before the crash), the supervisor gives up, and
the server escalates: it stops and exits non-zero.

Invariants: nothing is replied before the sync that covers it returned; a
storage failure stops the server; the tree is written only by the final stage.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import trio

from actors import ONE_FOR_ALL, ActorNotRunning, ActorRef, ChildSpec, Context, open_supervisor

from ..core.acl import check as acl_check
from ..core.datatree import DataTree
from ..core.final import Final
from ..core.prep import Prep
from ..protocol.consts import Err, KeeperError, KeeperState, OpCode, Perm
from ..protocol.data import ACL, is_ttl_owner, ttl_of_owner
from ..protocol.records import (
    encode_notification,
    encode_reply,
)
from ..protocol.txn import TxnHeader
from .connection import ClientConnection, Request, _UnimplementedType
from .stats import ServerStats

if TYPE_CHECKING:
    from .peer import StandaloneServer

__all__ = ["Pipeline"]

log = logging.getLogger("trio_quorum.server.pipeline")

_SYNC_CONNECTED = int(KeeperState.SyncConnected)
_PING = int(OpCode.ping)
_CREATE_SESSION = int(OpCode.createSession)
_CLOSE_SESSION = int(OpCode.closeSession)
_ERROR = int(OpCode.error)
_MULTI = int(OpCode.multi)
#: Cap on how many requests the sync stage merges under one fsync.
_MAX_GROUP = 1000
#: The direct path runs only when the last commit was this connection's or
#: ended this long ago (s): otherwise other connections are likely committing
#: too and should share one group commit instead of one inline fsync each.
_DIRECT_QUIET_S = 0.001
#: Inline fsyncs slower than this on average (moving average, 1/8 weight)
#: switch the direct path off for a while.
_DIRECT_SLOW_FSYNC_S = 0.002
_DIRECT_BACKOFF_S = 1.0
#: Stage inboxes are unbounded in practice: ``submit`` is called from
#: synchronous code and must never block; globalOutstandingLimit is the bound.
_INBOX = sys.maxsize


#: ``_last_commit_conn`` of a commit of several connections' requests.
_MANY = object()


class _Crash:
    """A stage's inbox message: raise ``exc`` (its work failed in the direct path)."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _watcher_may_read(watcher: object, acl: tuple[ACL, ...]) -> bool:
    return acl_check(acl, _READ, getattr(watcher, "auth_ids", ()))


_READ = int(Perm.READ)


class Pipeline:
    """prep -> sync -> final for one standalone server."""

    def __init__(self, server: StandaloneServer) -> None:
        self.server = server
        cfg = server.config
        self.tree = DataTree()
        self.prep = Prep(
            self.tree,
            server.auth,
            server.tracker,
            extended_types=cfg.extended_types_enabled,
        )
        self.final = Final(self.tree, who_am_i=server.auth.who_am_i)
        # A watch event reaches only connections that may READ the node (the
        # parent for NodeChildrenChanged), as in ZooKeeper since CVE-2024-23944.
        self.tree.watch_acl_filter = _watcher_may_read
        #: False once the final stage stopped abnormally: the tree may hold a
        #: half-applied write, so connections must not answer reads from it
        #: (their fast path checks this; the pipeline itself is gone).
        self.tree_trusted = True
        # A dead ref until the pipeline actor runs: submit raises ActorNotRunning.
        self._prep_ref: ActorRef[list[Request]] = ActorRef("pipeline/prep")
        self._sup: Any = None
        #: Requests handed to the stages and not yet finished by the final stage.
        self._in_flight = 0
        #: The stages run and no stop was asked: the direct path may run.
        self._running = False
        #: The direct write path (see the module docstring); tests switch it off
        #: to drive the stages.
        self.direct_enabled = True
        self.direct_batches = 0
        self._last_commit_conn: object = None
        self._last_commit_end = float("-inf")
        self._direct_off_until = 0.0
        #: Moving average (1/8 weight) of inline fsync seconds.
        self._fsync_ewma = 0.0

    # ------------------------------------------------------------ facade
    def submit(self, batch: list[Request]) -> None:
        """Process a batch: now, in the caller (direct path), or queued for prep.

        Never blocks.  Replies are delivered to the connections either way.

        Raises:
          ActorNotRunning: the pipeline is not running (stopping or failed).
        """
        if self._in_flight == 0 and self._running and self.direct_enabled and self._quiet(batch):
            self._run_direct(batch)
            return
        self._prep_ref.send_nowait(batch)
        self._in_flight += len(batch)

    def _quiet(self, batch: list[Request]) -> bool:
        """Nobody else is likely to commit in the next moment (see the module docstring)."""
        if not self.tree_trusted:
            return False
        now = time.perf_counter()
        if now < self._direct_off_until:
            return False
        return batch[0].conn is self._last_commit_conn or now - self._last_commit_end > _DIRECT_QUIET_S

    def last_processed_zxid(self) -> int:
        return self.tree.last_processed_zxid

    def node_count(self) -> int:
        return self.tree.node_count()

    def approximate_data_size(self) -> int:
        return self.tree.approximate_data_size()

    def watch_count(self) -> int:
        return self.tree.watch_count()

    def ephemerals(self) -> Mapping[int, Iterable[str]]:
        return {sid: set(p) for sid, p in self.tree.ephemerals.items() if p}

    def watches_by_watcher(self) -> Mapping[Any, Iterable[str]]:
        return self.tree.watches.by_watcher()

    def connection_closed(self, conn: ClientConnection) -> None:
        self.tree.watches.remove_watcher(conn)

    def container_cleanup_requests(self, now: int, wall: int) -> list[Request]:
        """``ContainerManager.getCandidates``: empty used containers and expired empty TTL nodes."""
        nodes = self.tree.nodes
        out = []
        for path in list(self.tree.containers):
            node = nodes.get(path)
            if node is not None and not node.children and node.cversion > 0:
                out.append(Request(None, 0, 0, OpCode.deleteContainer, path, now))
        if self.server.config.extended_types_enabled:
            for path in list(self.tree.ttls):
                node = nodes.get(path)
                if node is None or node.children or not is_ttl_owner(node.ephemeral_owner):
                    continue
                if wall - node.mtime > ttl_of_owner(node.ephemeral_owner):
                    out.append(Request(None, 0, 0, OpCode.deleteContainer, path, now))
        return out

    async def restore(self) -> None:
        """Load storage into the tree and the session table; re-arm expiry for restored sessions."""
        sessions: dict[int, int] = {}
        last = await self.server.storage.restore(self.tree, sessions)
        self.prep.reset(max(last, self.tree.last_processed_zxid))
        self.server.tracker.restore(sessions, self.server.now_ms())
        if sessions or last:
            log.info("restored %d znodes, %d sessions, last zxid 0x%x", self.tree.node_count(), len(sessions), last)

    # ------------------------------------------------------------ stages
    def stage_specs(self) -> list[ChildSpec]:
        """The stages, in START order: final, sync, prep (see the module docstring)."""
        return [
            ChildSpec("final", self._final_stage, mailbox=_INBOX, shutdown=10.0),
            ChildSpec("sync", self._sync_stage, mailbox=_INBOX, shutdown=10.0),
            ChildSpec("prep", self._prep_stage, mailbox=_INBOX, shutdown=5.0),
        ]

    async def run(
        self, ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *, task_status: trio.TaskStatus[None]
    ) -> None:
        """The ``pipeline`` actor: a one_for_all supervisor of the stages with intensity 0.

        Raises:
          actors.SupervisorGaveUp: a stage crashed (``__cause__``: the crash);
            the server treats that as fatal.
        """
        async with open_supervisor(
            ctx, strategy=ONE_FOR_ALL, children=self.stage_specs(), max_restarts=0
        ) as sup:
            self._prep_ref = sup.ref("prep")
            self._sup = sup
            self._running = True
            try:
                task_status.started()
                async for _ in inbox:  # ends when asked to stop
                    pass
            finally:
                self._running = False
            # Drain: prep, sync, final, one at a time, each told the server's reason.
            reason = self.server.stop_reason or "pipeline stopping"
            for cid in reversed(sup.child_ids()):
                await sup.stop_child(cid, reason=reason)

    async def _prep_stage(
        self, ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *, task_status: trio.TaskStatus[None]
    ) -> None:
        prep_batch = self._prep_batch
        send = ctx.supervisor.ref("sync").send
        task_status.started()
        async for batch in inbox:
            if batch.__class__ is _Crash:
                raise batch.exc
            prep_batch(batch)
            try:
                await send(batch)
            except ActorNotRunning:
                return _downstream_gone(ctx, len(batch))

    def _prep_batch(self, batch: list[Request]) -> None:
        """Prep every request of ``batch`` (zxids, txns, error codes), in order."""
        prepare = self.prep.prepare
        wall = int(time.time() * 1000)
        for req in batch:
            if req.record.__class__ is _UnimplementedType:
                req.err = Err.UNIMPLEMENTED
                continue
            try:
                r = prepare(req.session_id, req.xid, req.type, req.record, req.auth_ids, wall,
                            owner=req.conn)
            except KeeperError as exc:
                req.err = exc.code
                continue
            if r is not None:
                req.hdr, req.txn = r

    async def _sync_stage(
        self, ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *, task_status: trio.TaskStatus[None]
    ) -> None:
        storage = self.server.storage
        stats = self.server.stats
        receive_nowait = inbox.receive_nowait  # type: ignore[attr-defined]
        send = ctx.supervisor.ref("final").send
        task_status.started()
        async for batch in inbox:
            if batch.__class__ is _Crash:
                raise batch.exc
            # Group commit: everything that piled up while the last fsync ran.
            while len(batch) < _MAX_GROUP:
                try:
                    more = receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                if more.__class__ is _Crash:
                    raise more.exc
                batch = batch + more
            if self._append_batch(batch):
                t0 = trio.current_time()
                await storage.sync()
                stats.fsync_count += 1
                stats.fsync_total_ms += (trio.current_time() - t0) * 1000
            try:
                await send(batch)
            except ActorNotRunning:
                return _downstream_gone(ctx, len(batch))

    def _append_batch(self, batch: list[Request]) -> int:
        """Append the txns of ``batch`` to storage; return how many."""
        append = self.server.storage.append
        writes = 0
        for req in batch:
            if req.hdr is not None:
                append(req.hdr, req.txn)  # type: ignore[arg-type]
                writes += 1
        return writes

    async def _final_stage(
        self, ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *, task_status: trio.TaskStatus[None]
    ) -> None:
        task_status.started()
        try:
            await self._final_loop(inbox)
        except BaseException:
            self.tree_trusted = False
            raise

    async def _final_loop(self, inbox: trio.abc.ReceiveChannel[Any]) -> None:
        server = self.server
        async for batch in inbox:
            if batch.__class__ is _Crash:
                raise batch.exc
            applied = self._finish_batch(batch)
            self._in_flight -= len(batch)
            # The committer, for the direct path's quiet rule: one connection's
            # batch lets that connection's next write go direct (a lone
            # client must not stay on the staged path once it got there).
            first = batch[0].conn if batch else None
            for req in batch:
                if req.conn is not first:
                    first = _MANY
                    break
            self._last_commit_conn = first
            self._last_commit_end = time.perf_counter()
            if applied:
                await server.storage.maybe_snapshot(self.tree, server.tracker.session_timeouts())

    def _finish_batch(self, batch: list[Request]) -> bool:
        """Apply the txns and answer the reads of a synced ``batch``; True if it had txns.

        Replies and watch events are delivered per connection (one ``deliver``
        each), then the outstanding counts and latency stats are updated.
        """
        server = self.server
        out: dict[ClientConnection, list[bytes]] = {}
        to_close: list[ClientConnection] = []
        applied = False
        for req in batch:
            if req.hdr is not None:
                # No try here: a write that fails half-way leaves the tree
                # out of step with the log; this stage crashes and the
                # server escalates (see the module docstring).
                applied = True
                self._apply(req, out, to_close)
                continue
            try:
                self._read(req, out)
            except Exception:  # a read changes nothing: SYSTEMERROR for it, serve on
                log.exception("internal error processing %s (type %s)", req.record, req.type)
                if req.conn is not None:
                    out.setdefault(req.conn, []).append(
                        encode_reply(req.xid, self.tree.last_processed_zxid, Err.SYSTEMERROR)
                    )
        now = server.now_ms()
        st = server.stats
        st.outstanding -= len(batch)
        for target, frames in out.items():
            target.deliver(frames)
        _account(batch, now, self.tree.last_processed_zxid, st)
        for conn in to_close:
            conn.close_after_flush()
        server.outstanding_released()
        if applied:
            self.prep.released(self.tree.last_processed_zxid)
        return applied

    # ------------------------------------------------------------ direct path
    def _run_direct(self, batch: list[Request]) -> None:
        """prep, append, inline fsync, apply, reply: one synchronous step, no hops.

        Nothing can interleave (no ``await``), so this is the stages' work in
        their order for a pipeline with nothing in flight.  A failure is
        handed to the stage that would have failed, which raises it: the same
        escalation as a crash in the stages themselves.
        """
        server = self.server
        storage = server.storage
        try:
            self._prep_batch(batch)
        except BaseException as exc:
            return self._crash("prep", exc, batch)
        try:
            if self._append_batch(batch):
                t0 = time.perf_counter()
                if not storage.sync_inline():
                    raise RuntimeError("direct path: a group commit was in flight with nothing in the pipeline")
                t1 = time.perf_counter()
                st = server.stats
                st.fsync_count += 1
                st.fsync_total_ms += (t1 - t0) * 1000
                # A slow disk: an inline fsync stalls every connection; let the
                # syncer thread take them for a while.  Smoothed: one slow fsync
                # on a shared machine is no reason to give up the direct path.
                ewma = self._fsync_ewma = self._fsync_ewma * 0.875 + (t1 - t0) * 0.125
                if ewma > _DIRECT_SLOW_FSYNC_S:
                    self._direct_off_until = t1 + _DIRECT_BACKOFF_S
                    self._fsync_ewma = 0.0
                    log.info("inline fsyncs took %.1f ms on average: direct write path off for %.0f s",
                             ewma * 1000, _DIRECT_BACKOFF_S)
        except BaseException as exc:
            return self._crash("sync", exc, batch)
        try:
            applied = self._finish_batch(batch)
        except BaseException as exc:
            self.tree_trusted = False
            return self._crash("final", exc, batch)
        self.direct_batches += 1
        self._last_commit_conn = batch[0].conn
        self._last_commit_end = time.perf_counter()
        if applied:
            storage.snapshot_soon(self.tree, server.tracker.session_timeouts())
        return None

    def _crash(self, stage: str, exc: BaseException, batch: list[Request]) -> None:
        """Make ``stage`` raise ``exc`` (one_for_all, intensity 0: the server escalates)."""
        self._running = False  # no more direct batches: the state is not to be trusted
        log.error("direct path: %s failed on a batch of %d requests: %r", stage, len(batch), exc)
        try:
            self._sup.ref(stage).send_nowait(_Crash(exc))
        except ActorNotRunning:
            log.warning("pipeline/%s is gone; %r not escalated through it", stage, exc)

    # ------------------------------------------------------------ writes
    def _notify(self, events: list[Any], zxid: int, out: dict[ClientConnection, list[bytes]]) -> None:
        for watcher, etype, path in events:
            if isinstance(watcher, ClientConnection) and not watcher.closed:
                out.setdefault(watcher, []).append(encode_notification(etype, _SYNC_CONNECTED, path, zxid))

    def _apply(self, req: Request, out: dict[ClientConnection, list[bytes]],
               to_close: list[ClientConnection]) -> None:
        hdr: TxnHeader = req.hdr  # type: ignore[assignment]
        frame, events, rc = self.final.write_frame(hdr, req.txn, req.xid)  # type: ignore[arg-type]
        if events:
            self._notify(events, hdr.zxid, out)
        tracker = self.server.tracker
        conn = req.conn
        typ = hdr.type
        if typ == _CREATE_SESSION:
            if conn is not None:
                ok = rc.err == 0 and hdr.client_id in tracker and not tracker.is_closing(hdr.client_id)
                conn.finish_session_init(hdr.client_id, conn_timeout(req), ok)
            return
        if typ == _CLOSE_SESSION:
            tracker.remove(hdr.client_id)
            target = conn or self.server.connection_for(hdr.client_id)
            if conn is not None:
                out.setdefault(conn, []).append(encode_reply(req.xid, self.tree.last_processed_zxid, 0))
            if target is not None:
                to_close.append(target)
            return
        if conn is None:
            if rc.err:
                log.debug("internal %s failed: %s", OpCode(typ).name if typ in OpCode._value2member_map_ else typ, rc.err)
            return
        out.setdefault(conn, []).append(frame)

    # ------------------------------------------------------------ reads
    def _read(self, req: Request, out: dict[ClientConnection, list[bytes]]) -> None:
        conn = req.conn
        if conn is None:
            return
        self.answer_read(req, out.setdefault(conn, []))

    def answer_read(self, req: Request, frames: list[bytes]) -> None:
        """Append the frames answering read ``req`` (prepped: ``req.err`` set or 0) to ``frames``.

        Used by the final stage and by a connection's read fast path
        (connection.py): synchronous, so the tree cannot change under it.
        """
        zxid = self.tree.last_processed_zxid
        if req.err:
            frames.append(encode_reply(req.xid, zxid, req.err))
            return
        typ = req.type
        if typ == _PING:
            frames.append(encode_reply(-2, zxid, 0))
            return
        oc = self.final.read(typ, req.record, req.session_id, req.auth_ids, req.conn)
        if oc.events:  # setWatches: events owed to this connection, ahead of its reply
            for _w, etype, path in oc.events:
                frames.append(encode_notification(etype, _SYNC_CONNECTED, path, -1))
        frames.append(encode_reply(req.xid, oc.zxid, oc.err, oc.body if not oc.err else None))


def _account(batch: list[Request], now: int, zxid: int, st: ServerStats) -> None:
    """Outstanding counts and latency stats for an answered batch.

    Per RUN of requests with the same connection and arrival time (one socket
    read's requests travel together), not per request: two method calls per
    request were ~4% of the server's CPU under setData load.  The figures are
    the same as request by request (equal latencies within a run).
    """
    prev: ClientConnection | None = None
    start = -1
    n = 0
    cxid = -1
    typ = 0
    for req in batch:
        conn = req.conn
        if conn is None:
            continue
        if conn is not prev or req.start != start:
            if n:
                _account_run(prev, n, now - start, cxid, typ, zxid, now, st)  # type: ignore[arg-type]
            prev = conn
            start = req.start
            n = 0
            cxid = -1
        n += 1
        if req.xid >= 0:  # pings (and notifications) do not move lcxid
            cxid = req.xid
        typ = req.type
    if n:
        _account_run(prev, n, now - start, cxid, typ, zxid, now, st)  # type: ignore[arg-type]


def _account_run(conn: ClientConnection, n: int, lat: int, cxid: int, typ: int, zxid: int, now: int,
                 st: ServerStats) -> None:
    conn.outstanding -= n
    st.update_latency_n(lat, n)
    conn.stats.update_for_responses(cxid, zxid, typ, lat, now, n)


def _downstream_gone(ctx: Context, n: int) -> None:
    # Only happens while the pipeline supervisor is failing (a later stage
    # crashed): this stage's batch cannot be completed, its clients get no reply.
    log.warning("%s: next stage is gone, dropping a batch of %d requests", ctx.path, n)


def conn_timeout(req: Request) -> int:
    """The negotiated timeout a createSession request carries as its record."""
    timeout: int = req.record  # type: ignore[assignment]
    return timeout
