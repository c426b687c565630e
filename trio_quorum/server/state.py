"""What a peer owns for its whole life, whatever its role: ``PeerState``.

ZooKeeper's ``ZKDatabase`` plus the session tracker, auth and stats: the data
tree (with the final-processor core that applies txns to it and answers
reads from it), the session tracker, the storage, the server statistics.
Roles (standalone, and later leader / follower / observer) are request chains
built IN FRONT of this state and replaced at run time; the state survives
every role change (LOOKING -> FOLLOWING -> LOOKING -> LEADING ...).

Invariants:

* Only the running chain's final stage writes the tree (``apply``); reads are
  answered from it by the final stage or by a connection's read fast path.
* ``tree_trusted`` turns False for good when a final stage stopped half-way
  through a batch (the tree may hold a half-applied write): nothing reads
  from it again in this process and the peer fails.
* Clocks come from Trio (``now_ms``), so a MockClock drives expiry in tests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import trio

from ..config import ServerConfig
from ..core.acl import check as acl_check
from ..core.auth import AuthRegistry
from ..core.datatree import DataTree
from ..core.final import Final
from ..core.sessions import SessionTracker
from ..persistence.api import Storage
from ..protocol.consts import KeeperState, OpCode, Perm
from ..protocol.data import ACL, is_ttl_owner, ttl_of_owner
from ..protocol.records import encode_notification, encode_reply
from .request import Request
from .stats import ServerStats

__all__ = ["PeerState"]

log = logging.getLogger("trio_quorum.server.state")

_SYNC_CONNECTED = int(KeeperState.SyncConnected)
_PING = int(OpCode.ping)
_CREATE_SESSION = int(OpCode.createSession)
_CLOSE_SESSION = int(OpCode.closeSession)
_READ = int(Perm.READ)


def _watcher_may_read(watcher: object, acl: tuple[ACL, ...]) -> bool:
    return acl_check(acl, _READ, getattr(watcher, "auth_ids", ()))


class PeerState:
    """The tree, sessions, storage and stats of one peer (see the module docstring)."""

    def __init__(self, config: ServerConfig, storage: Storage) -> None:
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
        self.tree = DataTree()
        self.final = Final(self.tree, who_am_i=self.auth.who_am_i)
        # A watch event reaches only connections that may READ the node (the
        # parent for NodeChildrenChanged), as in ZooKeeper since CVE-2024-23944.
        self.tree.watch_acl_filter = _watcher_may_read
        self.tree_trusted = True
        #: Set by the session expirer's owner: wakes it when a new bucket may be the earliest.
        self.expirer_wakeup = trio.Event()

    # ------------------------------------------------------------ clocks
    def now_ms(self) -> int:
        """Monotonic ms (Trio's clock, so MockClock drives expiry in tests)."""
        return int(trio.current_time() * 1000)

    def wall_ms(self) -> int:
        return int(self._wall0 * 1000 + (trio.current_time() - self._t0) * 1000)

    def uptime_ms(self) -> int:
        return int((trio.current_time() - self._t0) * 1000)

    # ------------------------------------------------------------ storage
    async def restore(self) -> int:
        """Load storage into the tree and the session table; re-arm expiry. Returns the last zxid."""
        sessions: dict[int, int] = {}
        last = await self.storage.restore(self.tree, sessions)
        self.tracker.restore(sessions, self.now_ms())
        if sessions or last:
            log.info("restored %d znodes, %d sessions, last zxid 0x%x", self.tree.node_count(), len(sessions), last)
        return max(last, self.tree.last_processed_zxid)

    async def reload(self) -> int:
        """Rebuild the tree from storage (after a TRUNC dropped logged txns it had applied)."""
        self.replace_tree(DataTree(), {})
        return await self.restore()

    def replace_tree(self, tree: DataTree, sessions: dict[int, int]) -> None:
        """Serve from ``tree`` from now on (a SNAP from the leader, or a reload).

        Only between roles' serving phases: no chain is answering from the old
        tree (a learner installs before UPTODATE).  Watches of the old tree are
        dropped: its clients were closed when the role changed.
        """
        tree.watch_acl_filter = _watcher_may_read
        self.tree = tree
        self.final = Final(tree, who_am_i=self.auth.who_am_i)
        self.tracker.restore(sessions, self.now_ms())

    async def apply_log_tail(self) -> int:
        """Apply the logged txns the tree does not hold yet; return the tree's last zxid.

        A learner logs proposals before their COMMIT arrives; when its role
        ends, the tree lags its log.  A vote (and a new role's sync) must speak
        for the whole log, as ZooKeeper's peer reloads its database from disk
        before it looks: a txn a quorum logged (and a client may have been
        told about) is then on the peer that wins.  Uncommitted txns applied
        here are truncated later if the new leader says so (TRUNC).
        """
        storage: Any = self.storage
        await storage.sync()  # a role cancelled inside its group commit left appends unsynced
        last = self.tree.last_processed_zxid
        if storage.last_zxid <= last:
            return last
        now = self.now_ms()
        tracker = self.tracker
        for hdr, rec in await storage.read_txns(last):
            if hdr.zxid <= self.tree.last_processed_zxid:
                continue
            self.tree.apply(hdr, rec)
            if hdr.type == _CREATE_SESSION:
                tracker.track_session(hdr.client_id, rec.timeout, now)
            elif hdr.type == _CLOSE_SESSION:
                tracker.remove(hdr.client_id)
        log.info("applied the log's tail: last zxid 0x%x -> 0x%x", last, self.tree.last_processed_zxid)
        return self.tree.last_processed_zxid

    def enter_epoch(self, start_zxid: int) -> None:
        """A new epoch is established: the tree's last zxid is at least ``epoch << 32``.

        As ZooKeeper's learners set lastProcessedZxid to NEWLEADER's zxid and its
        leader starts counting there: ``srvr`` shows the epoch at once.
        """
        if self.tree.last_processed_zxid < start_zxid:
            self.tree.last_processed_zxid = start_zxid

    # ------------------------------------------------------------ the tree
    @property
    def last_zxid(self) -> int:
        return self.tree.last_processed_zxid

    def answer_read(self, req: Request, frames: list[bytes]) -> None:
        """Append the frames answering read ``req`` (prepped: ``req.err`` set or 0) to ``frames``.

        Used by every chain's final stage and by a connection's read fast
        path: synchronous, so the tree cannot change under it.
        """
        zxid = self.tree.last_processed_zxid
        if req.err:
            frames.append(encode_reply(req.xid, zxid, req.err))
            return
        typ = req.type
        if typ == _PING:
            frames.append(encode_reply(-2, zxid, 0))
            return
        oc = self.final.read(typ, req.record, req.session_id, req.auth_ids, req.conn)  # type: ignore[arg-type]
        if oc.events:  # setWatches: events owed to this connection, ahead of its reply
            for _w, etype, path in oc.events:
                frames.append(encode_notification(etype, _SYNC_CONNECTED, path, -1))
        frames.append(encode_reply(req.xid, oc.zxid, oc.err, oc.body if not oc.err else None))

    def container_cleanup_requests(self) -> list[Request]:
        """``ContainerManager.getCandidates``: empty used containers and expired empty TTL nodes."""
        now, wall = self.now_ms(), self.wall_ms()
        nodes = self.tree.nodes
        out = []
        for path in list(self.tree.containers):
            node = nodes.get(path)
            if node is not None and not node.children and node.cversion > 0:
                out.append(Request(None, 0, 0, OpCode.deleteContainer, path, now))
        if self.config.extended_types_enabled:
            for path in list(self.tree.ttls):
                node = nodes.get(path)
                if node is None or node.children or not is_ttl_owner(node.ephemeral_owner):
                    continue
                if wall - node.mtime > ttl_of_owner(node.ephemeral_owner):
                    out.append(Request(None, 0, 0, OpCode.deleteContainer, path, now))
        return out

    def ephemerals(self) -> Mapping[int, Iterable[str]]:
        return {sid: set(p) for sid, p in self.tree.ephemerals.items() if p}

    def watches_by_watcher(self) -> Mapping[Any, Iterable[str]]:
        return self.tree.watches.by_watcher()

    def forget_watcher(self, watcher: object) -> None:
        self.tree.watches.remove_watcher(watcher)
