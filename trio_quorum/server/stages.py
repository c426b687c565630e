"""The stages chains are built from: prep, sync, final (ZooKeeper's processors).

Each is a :class:`~trio_quorum.server.chain.Stage`: ``handle`` (the stage
actor's awaiting step) and ``handle_now`` (the same work for the direct path)
share every helper, so there is one implementation of each step.

* :class:`PrepStage` (``PrepRequestProcessor``): zxids, txns, error txns,
  session checks; reads pass through in order.
* :class:`SyncStage` (``SyncRequestProcessor``): appends the txns of every
  waiting batch and syncs ONCE (group commit); inline fsync on the direct
  path, switched off for a while when the disk is slow.
* :class:`FinalStage` (``FinalRequestProcessor``): applies txns in zxid order,
  answers reads, queues watch events on their connections BEFORE any later
  reply, delivers each connection's frames in one call, accounts latency.

They meet through narrow interfaces: the peer's :class:`~.state.PeerState`, a
:class:`ClientDirectory` (the client port's registry), and one ``Prep`` core
shared by prep (which adds outstanding changes) and final (which releases
them), as ZooKeeper's ``outstandingChanges``.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol, cast

from ..core.prep import Prep
from ..persistence.api import Storage
from ..protocol.consts import Err, KeeperError, KeeperState, OpCode
from ..protocol.records import encode_notification, encode_reply
from ..protocol.txn import TxnHeader
from .request import UNIMPLEMENTED, Client, Request, conn_timeout
from .state import PeerState
from .stats import ServerStats

__all__ = ["ClientDirectory", "FinalStage", "PrepStage", "SyncStage"]

log = logging.getLogger("trio_quorum.server.stages")

_SYNC_CONNECTED = int(KeeperState.SyncConnected)
_CREATE_SESSION = int(OpCode.createSession)
_CLOSE_SESSION = int(OpCode.closeSession)
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
#: ``FinalStage.last_commit_conn`` of a commit of several connections' requests.
_MANY = object()


class ClientDirectory(Protocol):
    """What the final stage needs of the client port."""

    def connection_for(self, session_id: int) -> Client | None:
        """The connection serving ``session_id`` here, if any."""

    def outstanding_released(self) -> None:
        """A batch was answered: wake connections held by globalOutstandingLimit."""


class PrepStage:
    """Prep every request of a batch (zxids, txns, error codes), in order."""

    name = "prep"
    merge = 0
    shutdown = 5.0

    def __init__(self, prep: Prep) -> None:
        self.prep = prep

    async def handle(self, batch: list[Request]) -> None:
        self.handle_now(batch)

    def accepts_direct(self, batch: list[Request]) -> bool:
        return True

    def handle_now(self, batch: list[Request]) -> None:
        prepare = self.prep.prepare
        wall = int(time.time() * 1000)
        for req in batch:
            if req.record is UNIMPLEMENTED:
                req.err = Err.UNIMPLEMENTED
                continue
            try:
                r = prepare(req.session_id, req.xid, req.type, req.record, req.auth_ids, wall, owner=req.owner)
            except KeeperError as exc:
                req.err = exc.code
                continue
            if r is not None:
                req.hdr, req.txn = r


class SyncStage:
    """Append the txns of everything waiting and sync once (group commit)."""

    name = "sync"
    merge = _MAX_GROUP
    shutdown = 10.0

    def __init__(self, storage: Storage, stats: ServerStats) -> None:
        self.storage = storage
        self.stats = stats
        self._direct_off_until = 0.0
        #: Moving average (1/8 weight) of inline fsync seconds.
        self._fsync_ewma = 0.0

    def _append(self, batch: list[Request]) -> int:
        append = self.storage.append
        writes = 0
        for req in batch:
            if req.hdr is not None:
                append(req.hdr, req.txn)  # type: ignore[arg-type]
                writes += 1
        return writes

    async def handle(self, batch: list[Request]) -> None:
        if self._append(batch):
            t0 = time.perf_counter()
            await self.storage.sync()
            self._count(time.perf_counter() - t0)

    def _count(self, seconds: float) -> None:
        st = self.stats
        st.fsync_count += 1
        st.fsync_total_ms += seconds * 1000

    def accepts_direct(self, batch: list[Request]) -> bool:
        return time.perf_counter() >= self._direct_off_until

    def handle_now(self, batch: list[Request]) -> None:
        if not self._append(batch):
            return
        t0 = time.perf_counter()
        if not self.storage.sync_inline():
            raise RuntimeError("direct path: a group commit was in flight with nothing in the chain")
        t1 = time.perf_counter()
        self._count(t1 - t0)
        # A slow disk: an inline fsync stalls every connection; let the syncer
        # thread take them for a while.  Smoothed: one slow fsync on a shared
        # machine is no reason to give up the direct path.
        ewma = self._fsync_ewma = self._fsync_ewma * 0.875 + (t1 - t0) * 0.125
        if ewma > _DIRECT_SLOW_FSYNC_S:
            self._direct_off_until = t1 + _DIRECT_BACKOFF_S
            self._fsync_ewma = 0.0
            log.info("inline fsyncs took %.1f ms on average: direct write path off for %.0f s",
                     ewma * 1000, _DIRECT_BACKOFF_S)


class FinalStage:
    """Apply, answer, notify, deliver, account (see the module docstring)."""

    name = "final"
    merge = 0
    shutdown = 10.0

    def __init__(self, state: PeerState, prep: Prep | None, clients: ClientDirectory) -> None:
        self.state = state
        #: The chain's prep core, whose outstanding changes this stage releases (None: a learner's chain).
        self.prep = prep
        self.clients = clients
        #: The committer, for the direct path's quiet rule: one connection's
        #: batch lets that connection's next write go direct (a lone client
        #: must not stay on the staged path once it got there).
        self.last_commit_conn: object = None
        self.last_commit_end = float("-inf")

    def accepts_direct(self, batch: list[Request]) -> bool:
        if not self.state.tree_trusted:
            return False
        return batch[0].conn is self.last_commit_conn or time.perf_counter() - self.last_commit_end > _DIRECT_QUIET_S

    async def handle(self, batch: list[Request]) -> None:
        if self._finish(batch):
            state = self.state
            await state.storage.maybe_snapshot(state.tree, state.tracker.session_timeouts())

    def handle_now(self, batch: list[Request]) -> None:
        if self._finish(batch):
            state = self.state
            state.storage.snapshot_soon(state.tree, state.tracker.session_timeouts())

    def _finish(self, batch: list[Request]) -> bool:
        try:
            applied = self._finish_batch(batch)
        except BaseException:
            # The tree may hold a half-applied write: nobody reads it again.
            self.state.tree_trusted = False
            raise
        first: object = batch[0].conn if batch else None
        for req in batch:
            if req.conn is not first:
                first = _MANY
                break
        self.last_commit_conn = first
        self.last_commit_end = time.perf_counter()
        return applied

    def _finish_batch(self, batch: list[Request]) -> bool:
        """Apply the txns and answer the reads of a synced ``batch``; True if it had txns."""
        state = self.state
        out: dict[Client, list[bytes]] = {}
        to_close: list[Client] = []
        applied = False
        for req in batch:
            if req.hdr is not None:
                # No try here: a write that fails half-way leaves the tree out of
                # step with the log; this stage crashes and the peer escalates.
                applied = True
                self._apply(req, out, to_close)
                continue
            if req.conn is None:
                continue
            frames = out.setdefault(req.conn, [])
            try:
                state.answer_read(req, frames)
            except Exception:  # a read changes nothing: SYSTEMERROR for it, serve on
                log.exception("internal error processing %s (type %s)", req.record, req.type)
                frames.append(encode_reply(req.xid, state.tree.last_processed_zxid, Err.SYSTEMERROR))
        now = state.now_ms()
        st = state.stats
        st.outstanding -= len(batch)
        for target, frames in out.items():
            target.deliver(frames)
        _account(batch, now, state.tree.last_processed_zxid, st)
        for conn in to_close:
            conn.close_after_flush()
        self.clients.outstanding_released()
        if applied and self.prep is not None:
            self.prep.released(state.tree.last_processed_zxid)
        return applied

    def _apply(self, req: Request, out: dict[Client, list[bytes]], to_close: list[Client]) -> None:
        state = self.state
        hdr: TxnHeader = req.hdr  # type: ignore[assignment]
        frame, events, rc = state.final.write_frame(hdr, req.txn, req.xid)  # type: ignore[arg-type]
        if events:
            zxid = hdr.zxid
            for watched, etype, path in events:
                watcher = cast(Client, watched)  # the server's watchers are its client connections
                if not watcher.closed:
                    out.setdefault(watcher, []).append(encode_notification(etype, _SYNC_CONNECTED, path, zxid))
        tracker = state.tracker
        conn = req.conn
        typ = hdr.type
        if typ == _CREATE_SESSION:
            if conn is not None:
                ok = rc.err == 0 and hdr.client_id in tracker and not tracker.is_closing(hdr.client_id)
                conn.finish_session_init(hdr.client_id, conn_timeout(req), ok)
            return
        if typ == _CLOSE_SESSION:
            tracker.remove(hdr.client_id)
            target = conn or self.clients.connection_for(hdr.client_id)
            if conn is not None:
                out.setdefault(conn, []).append(encode_reply(req.xid, state.tree.last_processed_zxid, 0))
            if target is not None:
                to_close.append(target)
            return
        if conn is None:
            if rc.err:
                log.debug("internal %s failed: %s", OpCode(typ).name if typ in OpCode._value2member_map_ else typ,
                          rc.err)
            return
        out.setdefault(conn, []).append(frame)


def _account(batch: list[Request], now: int, zxid: int, st: ServerStats) -> None:
    """Outstanding counts and latency stats for an answered batch.

    Per RUN of requests with the same connection and arrival time (one socket
    read's requests travel together), not per request: two method calls per
    request were ~4% of the server's CPU under setData load.  The figures are
    the same as request by request (equal latencies within a run).
    """
    prev: Any = None
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
                _account_run(prev, n, now - start, cxid, typ, zxid, now, st)
            prev = conn
            start = req.start
            n = 0
            cxid = -1
        n += 1
        if req.xid >= 0:  # pings (and notifications) do not move lcxid
            cxid = req.xid
        typ = req.type
    if n:
        _account_run(prev, n, now - start, cxid, typ, zxid, now, st)


def _account_run(conn: Client, n: int, lat: int, cxid: int, typ: int, zxid: int, now: int,
                 st: ServerStats) -> None:
    conn.outstanding -= n
    st.update_latency_n(lat, n)
    conn.stats.update_for_responses(cxid, zxid, typ, lat, now, n)
