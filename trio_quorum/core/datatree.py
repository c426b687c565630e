"""The in-memory znode tree: ZooKeeper's ``DataTree`` (sans-IO).

:class:`DataTree` applies committed transactions (:meth:`DataTree.apply`, ZooKeeper's
``DataTree.processTxn``), answers the lookups reads need, keeps the session ->
ephemeral index, the container/TTL sets, the reference-counted ACL cache, quota
statistics (:class:`~trio_quorum.core.quota.QuotaStats`), and the watch tables
(:class:`~trio_quorum.core.watches.WatchManager`).  It also walks itself for
snapshots and rebuilds itself from one (:mod:`trio_quorum.core.tree_snapshot`).

Every txn type has one applier, found in :data:`_APPLIERS` with the record
class it takes, and :meth:`DataTree.apply` is the one dispatch: a multi's
sub-txns go through it too.  There is no second copy of any op for speed:
the appliers are the fast code; apply asks for setData and create before
the lookup and calls the very applier the table holds for them.

Invariants:

* ``nodes`` maps every full path to its :class:`~trio_quorum.core.node.DataNode`;
  ``"/"`` is the root (ZooKeeper also keys it as ``""``; we do not, but
  :meth:`node_count` reports ZooKeeper's number).  A node's ``children`` holds
  the names of exactly the nodes ``nodes`` has directly below it.
* Node fields are ZooKeeper's *persisted* values: ``cversion`` counts child
  creations (the sequential suffix source); deletes move only ``pzxid``.
  Clients see ``cversion * 2 - numChildren`` through ``DataNode.stat_bytes``.
* Applying a txn never raises for a tree-level failure: NONODE / NODEEXISTS /
  BADARGUMENTS come back in :attr:`ApplyResult.err` and leave the tree as
  ZooKeeper leaves it.  That is what makes replay over a *fuzzy* snapshot
  idempotent: a create whose node is already there still raises the parent's
  cversion/pzxid to the txn's, a delete of a missing child still moves the
  parent's pzxid (both only forwards).
* ``last_processed_zxid`` only grows; it is the txn's zxid once the txn (a
  multi with all its sub-txns) is applied.
* Time is ``TxnHeader.time``; this module reads no clock and does no IO.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any

from ..protocol.consts import EPHEMERAL_CONTAINER, TTL_MASK, EventType
from ..protocol.data import ACL, OPEN_ACL_UNSAFE, OPEN_UNSAFE_ACL_ID, READ_ACL_UNSAFE, ttl_owner
from ..protocol.txn import (
    CheckVersionTxn,
    CloseSessionTxn,
    CreateContainerTxn,
    CreateSessionTxn,
    CreateTTLTxn,
    CreateTxn,
    DeleteTxn,
    ErrorTxn,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
    TxnHeader,
    TxnRecord,
)
from .codes import (
    BADARGUMENTS,
    MULTI_OPS,
    NODEEXISTS,
    NONODE,
    OK,
    RUNTIMEINCONSISTENCY,
    T_CHECK,
    T_CLOSE_SESSION,
    T_CREATE,
    T_CREATE2,
    T_CREATE_CONTAINER,
    T_CREATE_SESSION,
    T_CREATE_TTL,
    T_DELETE,
    T_DELETE_CONTAINER,
    T_ERROR,
    T_MULTI,
    T_RECONFIG,
    T_SET_ACL,
    T_SET_DATA,
)
from .node import AclCache, DataNode
from .quota import (
    LIMIT_NODE,
    QUOTA_ROOT,
    STAT_NODE,
    QuotaStats,
    format_stats_track,
    parse_stats_track,
)
from .tree_snapshot import java_hashset_order, java_string_hash, load, walk
from .watches import WatchEvent, WatchManager

__sans_io__ = True

__all__ = [
    "DataTree",
    "ApplyResult",
    "QUOTA_ROOT",
    "LIMIT_NODE",
    "STAT_NODE",
    "CONFIG_NODE",
    "java_string_hash",
    "parse_stats_track",
    "format_stats_track",
]

CONFIG_NODE = "/zookeeper/config"
#: The walk's child order (re-exported under its name from before the split).
_java_hashset_order = java_hashset_order

_NODE_CREATED = int(EventType.NodeCreated)
_NODE_DELETED = int(EventType.NodeDeleted)
_NODE_DATA_CHANGED = int(EventType.NodeDataChanged)
_NODE_CHILDREN_CHANGED = int(EventType.NodeChildrenChanged)
_new = object.__new__


class ApplyResult:
    """What applying one txn did (ZooKeeper's ``ProcessTxnResult``).

    Made only by :meth:`DataTree.apply` (which stores every slot).

    ``stat`` is the packed 68-byte client Stat where the reply needs one
    (create2/createTTL/createContainer, setData, setACL), else ``None``.
    ``multi`` holds one result per sub-txn of a multi.  ``events`` lists the
    watch notifications the txn triggered, in trigger order; all of them
    carry ``zxid``.
    """

    __slots__ = ("client_id", "cxid", "zxid", "type", "err", "path", "stat", "multi", "events")
    client_id: int
    cxid: int
    zxid: int
    type: int
    err: int
    path: str | None
    stat: bytes | None
    multi: list[ApplyResult] | None
    events: list[WatchEvent]

    def __repr__(self) -> str:
        return (
            f"ApplyResult(type={self.type}, err={self.err}, path={self.path!r}, "
            f"zxid={self.zxid:#x}, multi={self.multi!r}, events={len(self.events)})"
        )


_init_node = DataNode.__init__


class _TxnFailed(Exception):
    """Internal: a KeeperException inside processTxn (carries the code)."""

    def __init__(self, err: int) -> None:
        self.err = err


# ---------------------------------------------------------------- the tree


class DataTree(QuotaStats):
    """ZooKeeper's ``DataTree``: znodes, ephemerals, ACL cache, quotas, watches."""

    def __init__(self) -> None:
        self.nodes: dict[str, DataNode] = {}
        self.acl_cache = AclCache()
        self.last_processed_zxid = 0
        self.ephemerals: dict[int, set[str]] = {}
        self.containers: set[str] = set()
        self.ttls: set[str] = set()
        self.watches = WatchManager()
        #: ``(watcher, acl) -> may it READ?``; set by the server to filter events.
        self.watch_acl_filter: Callable[[Hashable, tuple[ACL, ...]], bool] | None = None
        #: Paths with a ``zookeeper_limits`` node (ZooKeeper's ``PathTrie``).
        self.quota_paths: set[str] = set()
        self._data_size = 0
        # The constructor's nodes exactly as ZooKeeper 3.8 makes them: all Stat
        # fields 0, OPEN ACL, and /zookeeper/config READ-only with aversion -1
        # (its ACL is set through setACL(path, READ_ACL_UNSAFE, -1)).
        root = DataNode(b"", -1, 0, 0, 0, 0)
        proc = DataNode(b"", -1, 0, 0, 0, 0)
        quota = DataNode(b"", -1, 0, 0, 0, 0)
        config = DataNode(b"", self.acl_cache.intern(READ_ACL_UNSAFE), 0, 0, 0, 0, aversion=-1)
        root.children = {"zookeeper"}
        proc.children = {"quota", "config"}
        self.nodes["/"] = root
        self.nodes["/zookeeper"] = proc
        self.nodes[QUOTA_ROOT] = quota
        self.nodes[CONFIG_NODE] = config
        self._data_size = sum(len(p) for p in self.nodes)

    # ------------------------------------------------------------ lookups

    def get_node(self, path: str) -> DataNode | None:
        return self.nodes.get(path)

    def get_acl(self, node: DataNode) -> tuple[ACL, ...]:
        """The ACL list of ``node`` (an unknown cache id reads as empty: allow-all,
        which is what ZooKeeper's ``checkACL`` does with an empty list)."""
        try:
            return self.acl_cache.get(node.acl)
        except KeyError:
            return ()

    def get_children(self, node: DataNode) -> list[str]:
        c = node.children
        return [] if c is None else list(c)

    def get_all_children_number(self, path: str) -> int:
        """Number of descendants of ``path`` (``getAllChildrenNumber``)."""
        if path == "/":
            return len(self.nodes) - 1
        node = self.nodes.get(path)
        if node is None:
            return 0
        count = 0
        stack = [(path, node)]
        nodes = self.nodes
        while stack:
            p, n = stack.pop()
            if n.children:
                for c in n.children:
                    cp = p + "/" + c
                    cn = nodes.get(cp)
                    if cn is not None:
                        count += 1
                        stack.append((cp, cn))
        return count

    def get_ephemerals(self, session_id: int, prefix: str | None = None) -> list[str]:
        """The session's ephemeral paths starting with ``prefix`` (all for None, "" or "/")."""
        paths = self.ephemerals.get(session_id)
        if not paths:
            return []
        if prefix is None or not prefix.strip() or prefix.strip() == "/":
            return list(paths)
        return [p for p in paths if p.startswith(prefix)]

    # ------------------------------------------------------------ counters

    def node_count(self) -> int:
        """ZooKeeper's ``getNodeCount`` (mntr ``zk_znode_count``): it counts the
        root twice ("" and "/"), so a fresh tree reports 5."""
        return len(self.nodes) + 1

    def approximate_data_size(self) -> int:
        """Sum of path lengths + data lengths (mntr ``zk_approximate_data_size``)."""
        return self._data_size

    def ephemerals_count(self) -> int:
        return sum(len(s) for s in self.ephemerals.values())

    def watch_count(self) -> int:
        return self.watches.watch_count()

    # ------------------------------------------------------------ apply

    def apply(self, hdr: TxnHeader, rec: TxnRecord | None) -> ApplyResult:
        """Apply one committed txn (``DataTree.processTxn``) and return its result.

        Never raises for ZooKeeper-level failures; they are in ``result.err``.
        ``rec`` may be ``None`` for a closeSession without a body.  The one
        dispatch of every txn type (a multi's sub-txns come back through it).
        """
        typ = hdr.type
        zxid = hdr.zxid
        events: list[WatchEvent] = []
        # The one place an ApplyResult is made: its slots stored here, without a
        # constructor call (a call costs ~35 ns of a setData's ~1 us here).
        rc: ApplyResult = _new(ApplyResult)
        rc.client_id = hdr.client_id
        rc.cxid = hdr.cxid
        rc.zxid = zxid
        rc.type = typ
        rc.err = OK
        rc.path = None
        rc.stat = None
        rc.multi = None
        rc.events = events
        # The hot writes ask first: the very applier _APPLIERS holds for them
        # (and for the same record class), without the lookup.
        if typ == T_SET_DATA and rec.__class__ is SetDataTxn:
            applier: _Applier = _apply_set_data
        elif (typ == T_CREATE or typ == T_CREATE2) and rec.__class__ is CreateTxn:
            applier = _apply_create
        else:
            entry = _APPLIERS.get(typ)
            # unknown type, or a record that does not match it: refused
            applier = _apply_refused if entry is None or not isinstance(rec, entry[0]) else entry[1]
        try:
            applier(self, hdr, rec, rc, events)
        except _TxnFailed as e:
            rc.err = e.err
        if zxid > self.last_processed_zxid:
            self.last_processed_zxid = zxid
        return rc

    # The appliers: ``(self, hdr, rec, rc, events)``; they fill in ``rc`` and
    # raise _TxnFailed for a failure ZooKeeper reports in the result.

    def _apply_set_data(self, hdr: TxnHeader, rec: SetDataTxn, rc: ApplyResult, events: list[WatchEvent]) -> None:
        # setData, and reconfig (a SetDataTxn on /zookeeper/config)
        rc.path = path = rec.path
        n = self.nodes.get(path)
        if n is None:
            raise _TxnFailed(NONODE)
        data = rec.data
        last = n.data
        n.data = data
        n.mtime = hdr.time
        n.mzxid = zxid = hdr.zxid
        n.version = rec.version
        rc.stat = n.stat_bytes()
        self._data_size += len(data) - len(last)
        if self.quota_paths:
            self._quota_moved(path, len(data) - len(last), 0)
        w = self.watches
        if w._data:
            evs = w.trigger(path, _NODE_DATA_CHANGED, zxid)
            if evs:
                self._deliver(evs, None, None, events, n)

    def _apply_create(self, hdr: TxnHeader, rec: _CreateRec, rc: ApplyResult, events: list[WatchEvent]) -> None:
        # create, create2, createContainer, createTTL
        rc.path = path = rec.path
        if rec.__class__ is CreateTxn:
            owner = hdr.client_id if rec.ephemeral else 0  # type: ignore[union-attr,unused-ignore]
        elif rec.__class__ is CreateContainerTxn:
            owner = EPHEMERAL_CONTAINER
        else:
            owner = ttl_owner(rec.ttl)  # type: ignore[union-attr]
        parent_name, child_name, parent = self._parent_of(path)
        zxid = hdr.zxid
        # setCversionPzxid: the parent's cversion (-1: one more) and pzxid move,
        # only ever forwards (a replayed create whose node was created and
        # deleted inside a fuzzy snapshot's range must not move them back), and
        # whether or not the child is already there: ZooKeeper's processTxn does
        # it again after NODEEXISTS (for create only; we do it for every create
        # kind, which only moves them forwards), which makes replay idempotent.
        cversion = rec.parent_cversion
        if cversion == -1:
            cversion = parent.cversion + 1
        if cversion > parent.cversion:
            parent.cversion = cversion
            parent.pzxid = zxid
        children = parent.children
        if children is not None and child_name in children:
            self._fuzzy_create_fixup(rec)
            raise _TxnFailed(NODEEXISTS)
        acl = rec.acl
        data = rec.data
        time = hdr.time
        node: DataNode = _new(DataNode)
        _init_node(
            node,
            data,
            OPEN_UNSAFE_ACL_ID if acl is OPEN_ACL_UNSAFE else self.acl_cache.intern(acl),
            zxid, zxid, time, time, 0, 0, 0, owner, zxid,
        )
        if children is None:
            parent.children = {child_name}
        else:
            children.add(child_name)
        self.nodes[path] = node
        self._data_size += len(path) + len(data)
        if owner:
            self._owned_by(owner, True).add(path)
        if parent_name.startswith(QUOTA_ROOT):
            self._quota_node_created(parent_name, child_name)
        if self.quota_paths:
            self._quota_moved(path, len(data), 1)
        w = self.watches
        if w._data or w._child:
            evs = w.trigger(path, _NODE_CREATED, zxid)
            if evs:
                self._deliver(evs, acl, parent, events)
        if rc.type != T_CREATE:
            rc.stat = node.stat_bytes()

    def _apply_delete(self, hdr: TxnHeader, rec: DeleteTxn, rc: ApplyResult, events: list[WatchEvent]) -> None:
        # delete, deleteContainer
        rc.path = rec.path
        self._delete_node(rec.path, hdr.zxid, events)

    def _apply_set_acl(self, hdr: TxnHeader, rec: SetACLTxn, rc: ApplyResult, events: list[WatchEvent]) -> None:
        rc.path = path = rec.path
        n = self.nodes.get(path)
        if n is None:
            raise _TxnFailed(NONODE)
        self.acl_cache.release(n.acl)
        n.aversion = rec.version
        n.acl = self.acl_cache.intern(rec.acl)
        rc.stat = n.stat_bytes()

    def _apply_close_session(
        self, hdr: TxnHeader, rec: CloseSessionTxn | None, rc: ApplyResult, events: list[WatchEvent]
    ) -> None:
        self._kill_session(hdr.client_id, hdr.zxid, None if rec is None else rec.paths, events)

    def _apply_error(self, hdr: TxnHeader, rec: ErrorTxn, rc: ApplyResult, events: list[WatchEvent]) -> None:
        rc.err = rec.err

    def _apply_check(self, hdr: TxnHeader, rec: CheckVersionTxn, rc: ApplyResult, events: list[WatchEvent]) -> None:
        rc.path = rec.path

    def _apply_refused(self, hdr: TxnHeader, rec: Any, rc: ApplyResult, events: list[WatchEvent]) -> None:
        rc.err = BADARGUMENTS

    def _apply_nothing(self, hdr: TxnHeader, rec: Any, rc: ApplyResult, events: list[WatchEvent]) -> None:
        pass  # createSession: the session tracker's business, not the tree's

    def _apply_multi(self, hdr: TxnHeader, rec: MultiTxn, rc: ApplyResult, events: list[WatchEvent]) -> None:
        # A multi holding an ErrorTxn failed in prep: every sub-op becomes an
        # error result (OK before the failure, RUNTIMEINCONSISTENCY after) and
        # the tree does not change.
        failed = any(t == T_ERROR for t, _ in rec.txns)
        post_failed = False
        results: list[ApplyResult] = []
        for sub_type, sub_rec in rec.txns:
            if sub_type == T_ERROR:
                post_failed = True
            elif failed:
                sub_type = T_ERROR
                sub_rec = ErrorTxn(RUNTIMEINCONSISTENCY if post_failed else OK)
            elif sub_type not in _MULTI_SUB_TYPES:
                sub_rec = _NOT_A_SUB_TXN  # refused by apply: BADARGUMENTS
            # Through apply, as a txn of its own with the multi's header (its zxid
            # is the multi's: last_processed_zxid reaches it at the first sub-txn).
            sub = self.apply(TxnHeader(hdr.client_id, hdr.cxid, hdr.zxid, hdr.time, sub_type), sub_rec)
            events += sub.events  # the multi's result carries them, in order
            sub.events = []
            results.append(sub)
            if sub.err != OK and rc.err == OK:
                rc.err = sub.err
        rc.multi = results

    # ------------------------------------------------------------ primitives

    def _fuzzy_create_fixup(self, rec: _CreateRec) -> None:
        """A create found its node already there (replay over a fuzzy snapshot)."""
        node = self.nodes.get(rec.path)
        if node is not None and node.acl != OPEN_UNSAFE_ACL_ID and node.acl not in self.acl_cache:
            # The snapshot's ACL section was written before this node got a brand
            # new ACL mid-walk, so its ACL id dangles; the create txn carries the
            # ACL (later setACL txns are replayed after it), so re-intern it rather
            # than leave the node readable by all.
            node.acl = self.acl_cache.intern(rec.acl)

    def _owned_by(self, owner: int, create: bool) -> set[str]:
        """The set a node of ``ephemeral_owner`` ``owner`` (non-zero) is indexed in:
        the containers, the TTL nodes, or its session's ephemerals (made when
        ``create``; an empty stand-in otherwise)."""
        if owner == EPHEMERAL_CONTAINER:
            return self.containers
        if owner < 0 and owner & TTL_MASK == TTL_MASK:
            return self.ttls
        s = self.ephemerals.get(owner)
        if s is None:
            s = set()
            if create:
                self.ephemerals[owner] = s
        return s

    def _parent_of(self, path: str) -> tuple[str, str, DataNode]:
        """``(parent path, child name, parent node)`` of a create or delete."""
        i = path.rfind("/")
        if i < 0 or len(path) < 2 or path[-1] == "/":
            raise _TxnFailed(BADARGUMENTS)
        parent_name = path[:i] or "/"
        parent = self.nodes.get(parent_name)
        if parent is None:
            raise _TxnFailed(NONODE)
        return parent_name, path[i + 1 :], parent

    def _delete_node(self, path: str, zxid: int, events: list[WatchEvent]) -> None:
        parent_name, child_name, parent = self._parent_of(path)
        # The child may already be gone in a fuzzy snapshot; the parent's pzxid
        # still moves (only forwards: a later create may have set it higher).
        children = parent.children
        if children is not None:
            children.discard(child_name)
            if not children:
                parent.children = None
        if zxid > parent.pzxid:
            parent.pzxid = zxid
        node = self.nodes.pop(path, None)
        if node is None:
            raise _TxnFailed(NONODE)
        if node.children:
            # Only reachable with a corrupt txn stream; keep the tree consistent
            # by dropping the orphaned subtree too.
            self._drop_subtree(path, node)
        node_acl = self.get_acl(node) if self.watch_acl_filter is not None else ()
        self.acl_cache.release(node.acl)
        self._data_size -= len(path) + len(node.data)
        owner = node.ephemeral_owner
        if owner:
            owned = self._owned_by(owner, False)
            owned.discard(path)
            if not owned and self.ephemerals.get(owner) is owned:
                del self.ephemerals[owner]  # a session's set goes with its last node
        if self.quota_paths:
            if child_name == LIMIT_NODE and parent_name.startswith("/zookeeper"):
                self.quota_paths.discard(parent_name[len(QUOTA_ROOT) :])
            self._quota_moved(path, -len(node.data), -1)
        w = self.watches
        if w._data or w._child:
            evs = w.trigger(path, _NODE_DELETED, zxid)
            if evs:
                self._deliver(evs, node_acl, parent, events)

    def _drop_subtree(self, path: str, node: DataNode) -> None:
        stack = [(path, node)]
        while stack:
            p, n = stack.pop()
            for c in n.children or ():
                cp = p + "/" + c
                cn = self.nodes.pop(cp, None)
                if cn is not None:
                    self.acl_cache.release(cn.acl)
                    self._data_size -= len(cp) + len(cn.data)
                    stack.append((cp, cn))

    def _deliver(
        self,
        evs: list[WatchEvent],
        acl: tuple[ACL, ...] | None,
        parent: DataNode | None,
        events: list[WatchEvent],
        node: DataNode | None = None,
    ) -> None:
        """Queue ``evs``, dropping those whose watcher may not READ the node.

        ZooKeeper (CVE-2024-23944, ZOOKEEPER-4799; in 3.9.2+, 3.8.4+ and
        Debian's 3.8.0) checks the watcher's READ permission on the node's
        ACL — the parent's for NodeChildrenChanged — before it sends an event,
        so a persistent recursive watch cannot leak the names of nodes its
        owner may not read.  ``watch_acl_filter`` is the server's
        ``(watcher, acl) -> bool``; without one, everything is delivered.
        """
        allowed = self.watch_acl_filter
        if allowed is None:
            events.extend(evs)
            return
        for ev in evs:
            if ev[1] == _NODE_CHILDREN_CHANGED:
                ev_acl = self.get_acl(parent) if parent is not None else ()
            elif acl is not None:
                ev_acl = acl
            else:
                ev_acl = self.get_acl(node) if node is not None else ()
            if not ev_acl or allowed(ev[0], ev_acl):
                events.append(ev)

    def _kill_session(
        self, session: int, zxid: int, txn_paths: tuple[str, ...] | None, events: list[WatchEvent]
    ) -> None:
        local = self.ephemerals.pop(session, None)
        if txn_paths is not None:
            for p in txn_paths:
                try:
                    self._delete_node(p, zxid, events)
                except _TxnFailed:
                    pass  # already gone: ZooKeeper ignores NoNode here
            if local is not None:
                local.difference_update(txn_paths)
        if local:
            for p in sorted(local):
                try:
                    self._delete_node(p, zxid, events)
                except _TxnFailed:
                    pass

    def kill_session(self, session: int, zxid: int) -> list[WatchEvent]:
        """Delete a session's ephemerals outside a txn (``killSession``); returns events."""
        events: list[WatchEvent] = []
        self._kill_session(session, zxid, None, events)
        return events

    # ------------------------------------------------------------ watches

    def set_watches(
        self,
        relative_zxid: int,
        data_watches: Iterable[str],
        exist_watches: Iterable[str],
        child_watches: Iterable[str],
        persistent_watches: Iterable[str],
        persistent_recursive_watches: Iterable[str],
        watcher: Hashable,
    ) -> list[WatchEvent]:
        """``DataTree.setWatches``; returns the events to send at once."""
        return self.watches.set_watches(
            self.nodes,
            relative_zxid,
            data_watches,
            exist_watches,
            child_watches,
            watcher,
            persistent_watches,
            persistent_recursive_watches,
        )

    # ------------------------------------------------------------ snapshots

    def snapshot_nodes(self, *, java_order: bool = True) -> Iterator[tuple[str, DataNode]]:
        """Pre-order DFS as ``DataTree.serializeNode`` writes a snapshot.

        The root comes first with path ``""``; then each node's children, in
        (approximately) the order a Java ``HashSet`` iterates them when
        ``java_order`` is true, or in any order otherwise (faster).

        The walk is lazy so that each ``next()`` is short (a background
        snapshot runs it in the event loop between other work): a stack of
        iterators, one per node on the current path, each over a copy of that
        node's child-name set taken when the node is yielded (``list(set)``,
        5-8 ms per 100k names here; with ``java_order`` the Java ordering of those
        names, which hashes each in Python, is also done then).  Children are
        looked up when reached, so the walk tolerates changes made between
        ``next()`` calls (a fuzzy snapshot): a child deleted since the copy is
        skipped, as in ZooKeeper; one added since is not visited (replay of the
        log after the snapshot's zxid recreates it); a node is yielded as it
        is when reached, and always after its parent.
        """
        return walk(self.nodes, java_order)

    @classmethod
    def load_snapshot(
        cls,
        acl_items: Iterable[tuple[int, Iterable[ACL]]],
        nodes_iter: Iterable[tuple[str, DataNode]],
        last_zxid: int,
    ) -> DataTree:
        """Rebuild a tree from a snapshot's ACL map and node stream (``DataTree.deserialize``).

        ``nodes_iter`` yields ``(path, node)`` in snapshot order (root as
        ``""``, every parent before its children); ``node.children`` is
        ignored and rebuilt.  Raises ValueError when a node's parent was not
        seen first (ZooKeeper's "Invalid Datatree").
        """
        loaded = load(acl_items, nodes_iter)
        tree = cls.__new__(cls)
        tree.nodes = loaded.nodes
        tree.acl_cache = loaded.acl_cache
        tree.last_processed_zxid = last_zxid
        tree.ephemerals = loaded.ephemerals
        tree.containers = loaded.containers
        tree.ttls = loaded.ttls
        tree.watches = WatchManager()
        tree.watch_acl_filter = None
        tree.quota_paths = set()
        tree._data_size = loaded.data_size
        tree._setup_quota()
        return tree

    # ------------------------------------------------------------ comparison

    def dump(self) -> dict[str, tuple[bytes, tuple[ACL, ...], tuple[int, ...], tuple[str, ...]]]:
        """Every node's (data, ACL list, persisted stat, sorted children): for tests and checks."""
        out: dict[str, tuple[bytes, tuple[ACL, ...], tuple[int, ...], tuple[str, ...]]] = {}
        for p, n in self.nodes.items():
            out[p] = (
                n.data,
                self.get_acl(n),
                (
                    n.czxid,
                    n.mzxid,
                    n.ctime,
                    n.mtime,
                    n.version,
                    n.cversion,
                    n.aversion,
                    n.ephemeral_owner,
                    n.pzxid,
                ),
                tuple(sorted(n.children or ())),
            )
        return out


#: What a multi's sub-txn may be (deleteContainer: the server's own multis).
_MULTI_SUB_TYPES = MULTI_OPS | {T_DELETE_CONTAINER, T_ERROR}

#: What apply gets for a sub-txn of a type a multi may not hold: a record of no
#: txn type, so apply refuses it (BADARGUMENTS) and makes its result.
_NOT_A_SUB_TXN: Any = object()

_CreateRec = CreateTxn | CreateContainerTxn | CreateTTLTxn
_Applier = Callable[[DataTree, TxnHeader, Any, ApplyResult, list[WatchEvent]], None]
_D = DataTree

#: Per txn type: the record class(es) it must carry (a mismatch is refused, not
#: applied) and its applier.  The one place a txn type meets its code.
_APPLIERS: dict[int, tuple[type | tuple[type, ...], _Applier]] = {
    **dict.fromkeys((T_CREATE, T_CREATE2), (CreateTxn, _D._apply_create)),
    T_CREATE_CONTAINER: (CreateContainerTxn, _D._apply_create),
    T_CREATE_TTL: (CreateTTLTxn, _D._apply_create),
    **dict.fromkeys((T_DELETE, T_DELETE_CONTAINER), (DeleteTxn, _D._apply_delete)),
    **dict.fromkeys((T_SET_DATA, T_RECONFIG), (SetDataTxn, _D._apply_set_data)),
    T_SET_ACL: (SetACLTxn, _D._apply_set_acl),
    T_CHECK: (CheckVersionTxn, _D._apply_check),
    T_ERROR: (ErrorTxn, _D._apply_error),
    T_MULTI: (MultiTxn, _D._apply_multi),
    # createSession: the session tracker's business; the body may be missing
    T_CREATE_SESSION: ((CreateSessionTxn, type(None)), _D._apply_nothing),
    T_CLOSE_SESSION: ((CloseSessionTxn, type(None)), _D._apply_close_session),
}
#: The hot writes' appliers, as apply calls them before the table (the same functions).
_apply_set_data = _D._apply_set_data
_apply_create = _D._apply_create
_apply_refused = _D._apply_refused
