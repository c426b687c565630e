"""The standalone request pipeline: prep -> sync -> final, passing BATCHES.

Each stage is a task that owns its part of the work and is linked to the next
by a memory channel whose messages are whole batches (a trio channel message
costs ~10 us, so never one message per request per stage):

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

Per-session FIFO holds because every request of every session flows through
this single ordered pipeline.

Invariants: nothing is replied before the sync that covers it returned; a
storage failure stops the server (``StorageFailed`` propagates and cancels
everything); the tree is written only by the final stage.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import trio

from ..acl import check as acl_check
from ..consts import Err, EventType, KeeperError, KeeperState, OpCode, Perm, WatcherType
from ..data import is_ttl_owner, ttl_of_owner
from ..datatree import ApplyResult, DataTree
from ..prep import Prep
from ..proto import (
    Create2Response,
    CreateResponse,
    ExistsResponse,
    GetACLResponse,
    GetAllChildrenNumberResponse,
    GetChildren2Response,
    GetChildrenResponse,
    GetDataResponse,
    GetEphemeralsResponse,
    MultiResponse,
    SetACLResponse,
    SetDataResponse,
    SyncResponse,
    WhoAmIResponse,
    encode_notification,
    encode_reply,
)
from ..txn import TxnHeader
from .connection import ClientConnection, Request, _UnimplementedType

if TYPE_CHECKING:
    from .standalone import StandaloneServer

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
        self._prep_send, self._prep_recv = trio.open_memory_channel[list[Request]](math.inf)
        self._sync_send, self._sync_recv = trio.open_memory_channel[list[Request]](math.inf)
        self._final_send, self._final_recv = trio.open_memory_channel[list[Request]](math.inf)
        self._reads: dict[int, Any] = {
            OpCode.getData: self._get_data,
            OpCode.exists: self._exists,
            OpCode.getChildren: self._get_children,
            OpCode.getChildren2: self._get_children2,
            OpCode.getACL: self._get_acl,
            OpCode.sync: self._sync,
            OpCode.getAllChildrenNumber: self._get_all_children_number,
            OpCode.getEphemerals: self._get_ephemerals,
            OpCode.addWatch: self._add_watch,
            OpCode.checkWatches: self._check_watches,
            OpCode.removeWatches: self._remove_watches,
            OpCode.setWatches: self._set_watches,
            OpCode.setWatches2: self._set_watches,
            OpCode.whoAmI: self._who_am_i,
            OpCode.multiRead: self._multi_read,
        }

    # ------------------------------------------------------------ facade
    def submit(self, batch: list[Request]) -> None:
        self._prep_send.send_nowait(batch)

    def last_processed_zxid(self) -> int:
        return self.tree.last_processed_zxid

    def node_count(self) -> int:
        return self.tree.node_count()

    def approximate_data_size(self) -> int:
        return self.tree.approximate_data_size()

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
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._prep_stage)
            nursery.start_soon(self._sync_stage)
            nursery.start_soon(self._final_stage)
            task_status.started()

    async def _prep_stage(self) -> None:
        prep = self.prep
        prepare = prep.prepare
        send = self._sync_send.send
        async for batch in self._prep_recv:
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
            await send(batch)

    async def _sync_stage(self) -> None:
        storage = self.server.storage
        stats = self.server.stats
        recv = self._sync_recv
        send = self._final_send.send
        while True:
            batch = await recv.receive()
            # Group commit: everything that piled up while the last fsync ran.
            while len(batch) < _MAX_GROUP:
                try:
                    batch = batch + recv.receive_nowait()
                except trio.WouldBlock:
                    break
            writes = 0
            for req in batch:
                if req.hdr is not None:
                    storage.append(req.hdr, req.txn)  # type: ignore[arg-type]
                    writes += 1
            if writes:
                t0 = trio.current_time()
                await storage.sync()
                stats.fsync_count += 1
                stats.fsync_total_ms += (trio.current_time() - t0) * 1000
            await send(batch)

    async def _final_stage(self) -> None:
        recv = self._final_recv
        server = self.server
        while True:
            batch = await recv.receive()
            out: dict[ClientConnection, list[bytes]] = {}
            to_close: list[ClientConnection] = []
            applied = False
            for req in batch:
                try:
                    if req.hdr is not None:
                        applied = True
                        self._apply(req, out, to_close)
                    else:
                        self._read(req, out)
                except Exception:  # a bug must not take the whole server down with it
                    log.exception("internal error processing %s (type %s)", req.record, req.type)
                    if req.conn is not None:
                        out.setdefault(req.conn, []).append(
                            encode_reply(req.xid, self.tree.last_processed_zxid, Err.SYSTEMERROR)
                        )
            now = server.now_ms()
            st = server.stats
            st.outstanding -= len(batch)
            for conn, frames in out.items():
                conn.deliver(frames)
            for req in batch:
                conn = req.conn
                if conn is not None:
                    conn.outstanding -= 1
                    lat = now - req.start
                    st.update_latency(lat)
                    conn.stats.update_for_response(req.xid, self.tree.last_processed_zxid, req.type,
                                                   req.start, now)
            for conn in to_close:
                conn.close_after_flush()
            server.outstanding_released()
            if applied:
                self.prep.released(self.tree.last_processed_zxid)
                await server.storage.maybe_snapshot(self.tree, server.tracker.session_timeouts())

    # ------------------------------------------------------------ writes
    def _notify(self, events: list[Any], zxid: int, out: dict[ClientConnection, list[bytes]]) -> None:
        for watcher, etype, path in events:
            if isinstance(watcher, ClientConnection) and not watcher.closed:
                out.setdefault(watcher, []).append(encode_notification(etype, _SYNC_CONNECTED, path, zxid))

    def _apply(self, req: Request, out: dict[ClientConnection, list[bytes]],
               to_close: list[ClientConnection]) -> None:
        hdr: TxnHeader = req.hdr  # type: ignore[assignment]
        rc = self.tree.apply(hdr, req.txn)  # type: ignore[arg-type]
        if rc.events:
            self._notify(rc.events, hdr.zxid, out)
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
        zxid = self.tree.last_processed_zxid
        frames = out.setdefault(conn, [])
        if typ == _ERROR:
            frames.append(encode_reply(req.xid, zxid, rc.err))
            return
        if rc.err and typ != _MULTI:  # a failed multi still answers err 0 + per-op results
            frames.append(encode_reply(req.xid, zxid, rc.err))
            return
        frames.append(encode_reply(req.xid, zxid, 0, _write_body(typ, rc)))

    # ------------------------------------------------------------ reads
    def _read(self, req: Request, out: dict[ClientConnection, list[bytes]]) -> None:
        conn = req.conn
        if conn is None:
            return
        frames = out.setdefault(conn, [])
        zxid = self.tree.last_processed_zxid
        if req.err:
            frames.append(encode_reply(req.xid, zxid, req.err))
            return
        typ = req.type
        if typ == _PING:
            frames.append(encode_reply(-2, zxid, 0))
            return
        handler = self._reads.get(typ)
        if handler is None:
            frames.append(encode_reply(req.xid, zxid, Err.UNIMPLEMENTED))
            return
        try:
            body = handler(req, conn, frames)
        except KeeperError as exc:
            frames.append(encode_reply(req.xid, zxid, exc.code))
            return
        frames.append(encode_reply(req.xid, zxid, 0, body))

    def _node_for_read(self, path: str, auth_ids: list[Any], perm: int = Perm.READ) -> Any:
        node = self.tree.nodes.get(path)
        if node is None:
            raise KeeperError(Err.NONODE, path)
        if not acl_check(self.tree.get_acl(node), perm, auth_ids):
            raise KeeperError(Err.NOAUTH, path)
        return node

    def _get_data(self, req: Request, conn: ClientConnection, frames: list[bytes]) -> Any:
        r = req.record
        node = self._node_for_read(r.path, req.auth_ids)  # type: ignore[attr-defined]
        if r.watch:  # type: ignore[attr-defined]
            self.tree.watches.add_data_watch(r.path, conn)  # type: ignore[attr-defined]
        return GetDataResponse(node.data, node.stat_bytes())

    def _exists(self, req: Request, conn: ClientConnection, frames: list[bytes]) -> Any:
        r: Any = req.record
        node = self.tree.nodes.get(r.path)
        if r.watch:
            self.tree.watches.add_data_watch(r.path, conn)
        if node is None:
            raise KeeperError(Err.NONODE, r.path)
        if not acl_check(self.tree.get_acl(node), Perm.READ, req.auth_ids):
            raise KeeperError(Err.NOAUTH, r.path)
        return ExistsResponse(node.stat_bytes())

    def _get_children(self, req: Request, conn: ClientConnection, frames: list[bytes]) -> Any:
        r: Any = req.record
        node = self._node_for_read(r.path, req.auth_ids)
        if r.watch:
            self.tree.watches.add_child_watch(r.path, conn)
        return GetChildrenResponse(tuple(node.children or ()))

    def _get_children2(self, req: Request, conn: ClientConnection, frames: list[bytes]) -> Any:
        r: Any = req.record
        node = self._node_for_read(r.path, req.auth_ids)
        if r.watch:
            self.tree.watches.add_child_watch(r.path, conn)
        return GetChildren2Response(tuple(node.children or ()), node.stat_bytes())

    def _get_acl(self, req: Request, conn: ClientConnection, frames: list[bytes]) -> Any:
        r: Any = req.record
        node = self.tree.nodes.get(r.path)
        if node is None:
            raise KeeperError(Err.NONODE, r.path)
        acl = self.tree.get_acl(node)
        ids = req.auth_ids
        if not acl_check(acl, Perm.READ, ids) and not acl_check(acl, Perm.ADMIN, ids):
            raise KeeperError(Err.NOAUTH, r.path)
        if not acl_check(acl, Perm.ADMIN, ids):
            # ZooKeeper masks digest hashes from callers without ADMIN.
            acl = tuple(
                a._replace(id=a.id._replace(id=a.id.id.split(":", 1)[0] + ":x")) if a.id.scheme == "digest" else a
                for a in acl
            )
        return GetACLResponse(tuple(acl), node.stat_bytes())

    def _sync(self, req: Request, conn: ClientConnection, frames: list[bytes]) -> Any:
        return SyncResponse(req.record.path)  # type: ignore[attr-defined]

    def _get_all_children_number(self, req: Request, conn: ClientConnection, frames: list[bytes]) -> Any:
        r: Any = req.record
        self._node_for_read(r.path, req.auth_ids)
        return GetAllChildrenNumberResponse(self.tree.get_all_children_number(r.path))

    def _get_ephemerals(self, req: Request, conn: ClientConnection, frames: list[bytes]) -> Any:
        r: Any = req.record
        return GetEphemeralsResponse(tuple(sorted(self.tree.get_ephemerals(req.session_id, r.prefix_path))))

    def _add_watch(self, req: Request, conn: ClientConnection, frames: list[bytes]) -> Any:
        r: Any = req.record
        try:
            self.tree.watches.add_watch(r.path, conn, r.mode)
        except ValueError:
            raise KeeperError(Err.BADARGUMENTS, r.path) from None
        from ..proto import ErrorResponse

        return ErrorResponse(0)

    def _check_watches(self, req: Request, conn: ClientConnection, frames: list[bytes]) -> Any:
        r: Any = req.record
        if not self.tree.watches.check_watches(r.path, r.type, conn):
            raise KeeperError(Err.NOWATCHER, r.path)
        return None

    def _remove_watches(self, req: Request, conn: ClientConnection, frames: list[bytes]) -> Any:
        r: Any = req.record
        try:
            removed = self.tree.watches.remove_watches(r.path, r.type, conn)
        except ValueError:
            raise KeeperError(Err.BADARGUMENTS, r.path) from None
        if not removed:
            raise KeeperError(Err.NOWATCHER, r.path)
        return None

    def _set_watches(self, req: Request, conn: ClientConnection, frames: list[bytes]) -> Any:
        r: Any = req.record
        events = self.tree.set_watches(
            r.relative_zxid, r.data_watches, r.exist_watches, r.child_watches,
            r.persistent_watches, r.persistent_recursive_watches, conn,
        )
        for _w, etype, path in events:
            frames.append(encode_notification(etype, _SYNC_CONNECTED, path, -1))
        return None

    def _who_am_i(self, req: Request, conn: ClientConnection, frames: list[bytes]) -> Any:
        infos = self.server.auth.who_am_i(req.auth_ids)
        return WhoAmIResponse(tuple((i.auth_scheme, i.user) for i in infos))

    def _multi_read(self, req: Request, conn: ClientConnection, frames: list[bytes]) -> Any:
        results: list[tuple[int, Any]] = []
        for op, rec in req.record.ops:  # type: ignore[attr-defined]
            sub = Request(conn, req.session_id, req.xid, op, rec, req.start, req.auth_ids)
            try:
                if op == OpCode.getData:
                    results.append((op, self._get_data(sub, conn, frames)))
                else:
                    results.append((op, self._get_children(sub, conn, frames)))
            except KeeperError as exc:
                results.append((_ERROR, int(exc.code)))
        return MultiResponse(tuple(results))


def conn_timeout(req: Request) -> int:
    """The negotiated timeout a createSession request carries as its record."""
    return int(req.record)  # type: ignore[call-overload]


def _write_body(typ: int, rc: ApplyResult) -> Any:
    if typ == OpCode.create:
        return CreateResponse(rc.path or "")
    if typ in (OpCode.create2, OpCode.createContainer, OpCode.createTTL):
        return Create2Response(rc.path or "", rc.stat or b"")
    if typ == OpCode.setData:
        return SetDataResponse(rc.stat or b"")
    if typ == OpCode.setACL:
        return SetACLResponse(rc.stat or b"")
    if typ == _MULTI:
        results: list[tuple[int, Any]] = []
        for sub in rc.multi or ():
            if sub.type == _ERROR:
                results.append((_ERROR, sub.err))
            else:
                results.append((sub.type, _write_body(sub.type, sub)))
        return MultiResponse(tuple(results))
    return None  # delete, deleteContainer, check


_ = EventType  # re-exported names used by callers of this module's events
_ = WatcherType
