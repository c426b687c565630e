"""The in-memory znode tree: ZooKeeper's ``DataTree`` (sans-IO).

:class:`DataTree` applies committed transactions (:meth:`DataTree.apply`, ZooKeeper's
``DataTree.processTxn``), answers the lookups reads need, keeps the session ->
ephemeral index, the container/TTL sets, the reference-counted ACL cache, quota
statistics, and the watch tables (:class:`~trio_quorum.core.watches.WatchManager`).
It also walks itself for snapshots and rebuilds itself from one.

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
* ``last_processed_zxid`` only grows, and moves after the whole txn (a multi
  included) is applied.
* Time is ``TxnHeader.time``; this module reads no clock and does no IO.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Iterator
from operator import mul as _mul

from ..protocol.consts import EPHEMERAL_CONTAINER, TTL_MASK, Err, EventType, OpCode
from ..protocol.data import (
    ACL,
    OPEN_ACL_UNSAFE,
    OPEN_UNSAFE_ACL_ID,
    READ_ACL_UNSAFE,
    STAT_STRUCT,
    ttl_owner,
)
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
from .node import AclCache, DataNode
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

QUOTA_ROOT = "/zookeeper/quota"
LIMIT_NODE = "zookeeper_limits"
STAT_NODE = "zookeeper_stats"
CONFIG_NODE = "/zookeeper/config"

_NODE_CREATED = int(EventType.NodeCreated)
_NODE_DELETED = int(EventType.NodeDeleted)
_NODE_DATA_CHANGED = int(EventType.NodeDataChanged)
_NODE_CHILDREN_CHANGED = int(EventType.NodeChildrenChanged)
_OK = 0
_NONODE = int(Err.NONODE)
_NODEEXISTS = int(Err.NODEEXISTS)
_BADARGUMENTS = int(Err.BADARGUMENTS)
_RUNTIMEINCONSISTENCY = int(Err.RUNTIMEINCONSISTENCY)
_T_setData = int(OpCode.setData)
_T_create = int(OpCode.create)
_T_create2 = int(OpCode.create2)
_T_delete = int(OpCode.delete)
_T_deleteContainer = int(OpCode.deleteContainer)
_T_setACL = int(OpCode.setACL)
_T_closeSession = int(OpCode.closeSession)
_T_error = int(OpCode.error)
_T_check = int(OpCode.check)
_T_multi = int(OpCode.multi)
_T_createSession = int(OpCode.createSession)
_T_reconfig = int(OpCode.reconfig)
_CREATE_TYPES = frozenset(
    int(t) for t in (OpCode.create, OpCode.create2, OpCode.createTTL, OpCode.createContainer)
)

_CreateRec = CreateTxn | CreateContainerTxn | CreateTTLTxn
_pack_stat = STAT_STRUCT.pack
_new = object.__new__


class ApplyResult:
    """What applying one txn did (ZooKeeper's ``ProcessTxnResult``).

    ``stat`` is the packed 68-byte client Stat where the reply needs one
    (create2/createTTL/createContainer, setData, setACL), else ``None``.
    ``multi`` holds one result per sub-txn of a multi.  ``events`` lists the
    watch notifications the txn triggered, in trigger order; all of them
    carry ``zxid``.
    """

    __slots__ = ("client_id", "cxid", "zxid", "type", "err", "path", "stat", "multi", "events")

    def __init__(self, hdr: TxnHeader, typ: int, events: list[WatchEvent] | None = None) -> None:
        self.client_id = hdr.client_id
        self.cxid = hdr.cxid
        self.zxid = hdr.zxid
        self.type = typ
        self.err = _OK
        self.path: str | None = None
        self.stat: bytes | None = None
        self.multi: list[ApplyResult] | None = None
        self.events: list[WatchEvent] = [] if events is None else events

    def __repr__(self) -> str:
        return (
            f"ApplyResult(type={self.type}, err={self.err}, path={self.path!r}, "
            f"zxid={self.zxid:#x}, multi={self.multi!r}, events={len(self.events)})"
        )


class _TxnFailed(Exception):
    """Internal: a KeeperException inside processTxn (carries the code)."""

    def __init__(self, err: int) -> None:
        self.err = err


# ---------------------------------------------------------------- quota text


_PAIRS_SEPARATOR = re.compile("[,;]+")


def parse_stats_track(text: str) -> dict[str, int]:
    """Parse ``StatsTrack`` text (``count=N,bytes=M[=;countHardLimit=..]``).

    Raises ValueError on text ZooKeeper could not parse either.
    """
    out: dict[str, int] = {}
    if not text:
        return out
    for pair in _PAIRS_SEPARATOR.split(text):
        kv = pair.split("=")
        while kv and kv[-1] == "":  # Java's String.split drops trailing empties
            kv.pop()
        if len(kv) < 2:
            if kv and pair.endswith("="):
                out[kv[0]] = -1
                continue
            raise ValueError(f"bad quota pair {pair!r}")
        out[kv[0]] = int(kv[1]) if kv[1] else -1
    return out


def format_stats_track(stats: dict[str, int]) -> str:
    """``StatsTrack.toString``: count and bytes first, other keys sorted after ``=``."""
    s = f"count={stats.get('count', -1)},bytes={stats.get('bytes', -1)}"
    extra = sorted(k for k in stats if k not in ("count", "bytes"))
    if extra:
        s += "=" + "".join(f";{k}={stats[k]}" for k in extra)
    return s


_M32 = 0xFFFFFFFF
#: _POW31[n] = (31**(n-1), ..., 31, 1) mod 2**32: the weights of an n-char string.
_POW31: dict[int, tuple[int, ...]] = {}


def _pow31(n: int) -> tuple[int, ...]:
    w = _POW31.get(n)
    if w is None:
        w = tuple(pow(31, n - 1 - i, 1 << 32) for i in range(n))
        if n <= 512:
            _POW31[n] = w
    return w


def java_string_hash(s: str) -> int:
    """Java's ``String.hashCode`` as an unsigned 32-bit int (UTF-16 code units).

    ASCII names (nearly all) take a C-speed weighted sum; snapshots hash every
    child name of the tree, so this is on the snapshot's hot path.
    """
    if s.isascii():
        h: int = sum(map(_mul, s.encode(), _pow31(len(s))))
        return h & _M32
    h = 0
    for ch in s:
        o = ord(ch)
        if o > 0xFFFF:  # surrogate pair
            o -= 0x10000
            h = (31 * h + (0xD800 | (o >> 10))) & 0xFFFFFFFF
            o = 0xDC00 | (o & 0x3FF)
        h = (31 * h + o) & 0xFFFFFFFF
    return h


def _java_hashset_order(names: Iterable[str]) -> list[str]:
    """Approximate iteration order of a ``java.util.HashSet<String>`` holding ``names``.

    ZooKeeper's ``DataNode`` children set starts at capacity 8 and doubles past
    a 0.75 load factor; iteration walks buckets in index order.  Within a
    bucket Java keeps insertion order, which we do not know, so ties go by name.
    """
    lst = list(names)
    n = len(lst)
    cap = 8
    while n > cap * 3 // 4:
        cap *= 2
    mask = cap - 1
    keyed = [((h ^ (h >> 16)) & mask, name) for name, h in zip(lst, map(java_string_hash, lst), strict=True)]
    keyed.sort()
    return [name for _, name in keyed]


# ---------------------------------------------------------------- the tree


class DataTree:
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
        ``rec`` may be ``None`` for a closeSession without a body.
        """
        events: list[WatchEvent] = []
        typ = hdr.type
        if (typ == _T_setData and type(rec) is SetDataTxn) or (
            (typ == _T_create or typ == _T_create2) and type(rec) is CreateTxn
        ):
            # The hot writes, without _process's dispatch (same steps as there).
            # ApplyResult(hdr, typ, events) built in place (no __init__ call).
            rc = _new(ApplyResult)
            rc.client_id = hdr.client_id
            rc.cxid = hdr.cxid
            rc.zxid = hdr.zxid
            rc.type = typ
            rc.err = _OK
            rc.path = path = rec.path
            rc.stat = None
            rc.multi = None
            rc.events = events
            if isinstance(rec, SetDataTxn):
                n = self.nodes.get(path)
                if n is None:
                    rc.err = _NONODE
                elif self.quota_paths or self.watches._data:
                    rc.stat = self._set_data(path, rec.data, rec.version, hdr.zxid, hdr.time, events)
                else:
                    # _set_data without quotas and data watches, inlined.
                    data = rec.data
                    zxid = hdr.zxid
                    time = hdr.time
                    version = rec.version
                    self._data_size += len(data) - len(n.data)
                    n.data = data
                    n.mtime = time
                    n.mzxid = zxid
                    n.version = version
                    c = n.children
                    nc = 0 if c is None else len(c)
                    eo = n.ephemeral_owner
                    if eo < 0 and (eo == EPHEMERAL_CONTAINER or eo & TTL_MASK == TTL_MASK):
                        eo = 0
                    rc.stat = _pack_stat(
                        n.czxid, zxid, n.ctime, time, version, n.cversion * 2 - nc, n.aversion, eo,
                        len(data), nc, n.pzxid,
                    )
            else:
                try:
                    node = self._create_node(
                        path,
                        rec.data,
                        rec.acl,
                        hdr.client_id if rec.ephemeral else 0,
                        rec.parent_cversion,
                        hdr.zxid,
                        hdr.time,
                        events,
                    )
                    if typ != _T_create:
                        rc.stat = node.stat_bytes()
                except _TxnFailed as e:
                    if e.err == _NODEEXISTS:
                        self._fuzzy_create_fixup(rec, hdr.zxid)
                    rc.err = e.err
        else:
            rc = self._process(hdr, typ, rec, events)
            rc.events = events
        if hdr.zxid > self.last_processed_zxid:
            self.last_processed_zxid = hdr.zxid
        return rc

    def _process(
        self, hdr: TxnHeader, typ: int, rec: TxnRecord | None, events: list[WatchEvent]
    ) -> ApplyResult:
        rc = ApplyResult(hdr, typ)
        expected = _RECORD_FOR_TYPE.get(typ)
        if expected is None or not isinstance(rec, expected):
            rc.err = _BADARGUMENTS  # unknown type or a record that does not match it
            return rc
        try:
            if typ == _T_setData:
                assert isinstance(rec, SetDataTxn)
                rc.path = rec.path
                rc.stat = self._set_data(
                    rec.path, rec.data, rec.version, hdr.zxid, hdr.time, events
                )
            elif typ in _CREATE_TYPES:
                assert isinstance(rec, (CreateTxn, CreateContainerTxn, CreateTTLTxn))
                rc.path = rec.path
                if type(rec) is CreateTxn:
                    owner = hdr.client_id if rec.ephemeral else 0
                elif type(rec) is CreateContainerTxn:
                    owner = EPHEMERAL_CONTAINER
                else:
                    assert isinstance(rec, CreateTTLTxn)
                    owner = ttl_owner(rec.ttl)
                try:
                    node = self._create_node(
                        rec.path,
                        rec.data,
                        rec.acl,
                        owner,
                        rec.parent_cversion,
                        hdr.zxid,
                        hdr.time,
                        events,
                    )
                except _TxnFailed as e:
                    if e.err == _NODEEXISTS:
                        self._fuzzy_create_fixup(rec, hdr.zxid)
                    raise
                if typ != _T_create:
                    rc.stat = node.stat_bytes()
            elif typ in (_T_delete, _T_deleteContainer):
                assert isinstance(rec, DeleteTxn)
                rc.path = rec.path
                self._delete_node(rec.path, hdr.zxid, events)
            elif typ == _T_setACL:
                assert isinstance(rec, SetACLTxn)
                rc.path = rec.path
                rc.stat = self._set_acl(rec.path, rec.acl, rec.version)
            elif typ == _T_closeSession:
                paths = rec.paths if isinstance(rec, CloseSessionTxn) else None
                self._kill_session(hdr.client_id, hdr.zxid, paths, events)
            elif typ == _T_error:
                assert isinstance(rec, ErrorTxn)
                rc.err = rec.err
            elif typ == _T_check:
                assert isinstance(rec, CheckVersionTxn)
                rc.path = rec.path
            elif typ == _T_multi:
                assert isinstance(rec, MultiTxn)
                self._multi(hdr, rec, rc, events)
            elif typ == _T_createSession:
                assert rec is None or isinstance(rec, CreateSessionTxn)
            elif typ == _T_reconfig:
                # A reconfig txn is a SetDataTxn on /zookeeper/config.
                assert isinstance(rec, SetDataTxn)
                rc.path = rec.path
                rc.stat = self._set_data(
                    rec.path, rec.data, rec.version, hdr.zxid, hdr.time, events
                )
        except _TxnFailed as e:
            rc.err = e.err
        return rc

    def _multi(
        self, hdr: TxnHeader, rec: MultiTxn, rc: ApplyResult, events: list[WatchEvent]
    ) -> None:
        # A multi holding an ErrorTxn failed in prep: every sub-op becomes an
        # error result (OK before the failure, RUNTIMEINCONSISTENCY after) and
        # the tree does not change.
        failed = any(t == OpCode.error for t, _ in rec.txns)
        post_failed = False
        results: list[ApplyResult] = []
        for sub_type, sub_rec in rec.txns:
            if sub_type == OpCode.error:
                post_failed = True
            elif failed:
                sub_type = int(OpCode.error)
                sub_rec = ErrorTxn(_RUNTIMEINCONSISTENCY if post_failed else _OK)
            elif sub_type not in _MULTI_SUB_TYPES:
                sub = ApplyResult(hdr, sub_type)
                sub.err = _BADARGUMENTS
                results.append(sub)
                if rc.err == _OK:
                    rc.err = _BADARGUMENTS
                continue
            sub = self._process(hdr, sub_type, sub_rec, events)
            results.append(sub)
            if sub.err != _OK and rc.err == _OK:
                rc.err = sub.err
        rc.multi = results

    # ------------------------------------------------------------ primitives

    def _create_node(
        self,
        path: str,
        data: bytes,
        acl: tuple[ACL, ...],
        owner: int,
        parent_cversion: int,
        zxid: int,
        time: int,
        events: list[WatchEvent],
    ) -> DataNode:
        i = path.rfind("/")
        if i < 0 or len(path) < 2 or path[-1] == "/":
            raise _TxnFailed(_BADARGUMENTS)
        parent_name = path[:i] or "/"
        child_name = path[i + 1 :]
        parent = self.nodes.get(parent_name)
        if parent is None:
            raise _TxnFailed(_NONODE)
        children = parent.children
        if children is not None and child_name in children:
            # Fuzzy-snapshot safety (ZooKeeper interns the ACL first): the
            # existing node may reference an ACL id the snapshot's cache lacks.
            existing = self.nodes.get(path)
            if existing is not None and existing.acl != -1:
                try:
                    self.acl_cache.get(existing.acl)
                except KeyError:
                    existing.acl = self.acl_cache.intern(acl)
            raise _TxnFailed(_NODEEXISTS)
        if parent_cversion == -1:
            parent_cversion = parent.cversion + 1
        # Replaying a create whose node was created and deleted inside the
        # fuzzy range must not move cversion/pzxid backwards.
        if parent_cversion > parent.cversion:
            parent.cversion = parent_cversion
            parent.pzxid = zxid
        # DataNode(data, acl id, zxid, zxid, time, time, 0, 0, 0, owner, zxid), in place
        node = _new(DataNode)
        node.data = data
        node.acl = OPEN_UNSAFE_ACL_ID if acl is OPEN_ACL_UNSAFE else self.acl_cache.intern(acl)
        node.czxid = zxid
        node.mzxid = zxid
        node.ctime = time
        node.mtime = time
        node.version = 0
        node.cversion = 0
        node.aversion = 0
        node.ephemeral_owner = owner
        node.pzxid = zxid
        node.children = None
        if children is None:
            parent.children = {child_name}
        else:
            children.add(child_name)
        self.nodes[path] = node
        self._data_size += len(path) + len(data)
        if owner:
            if owner == EPHEMERAL_CONTAINER:
                self.containers.add(path)
            elif owner < 0 and owner & TTL_MASK == TTL_MASK:
                self.ttls.add(path)
            else:
                s = self.ephemerals.get(owner)
                if s is None:
                    self.ephemerals[owner] = {path}
                else:
                    s.add(path)
        if parent_name.startswith(QUOTA_ROOT):
            if child_name == LIMIT_NODE:
                real = parent_name[len(QUOTA_ROOT) :]
                if real and real != "/":
                    self.quota_paths.add(real)
            elif child_name == STAT_NODE:
                self._update_quota_for_path(parent_name[len(QUOTA_ROOT) :])
        if self.quota_paths:
            prefix = self._max_prefix_with_quota(path)
            if prefix is not None:
                self._update_quota_stat(prefix, len(data), 1)
        w = self.watches
        if w._data or w._child:
            evs = w.trigger(path, _NODE_CREATED, zxid)
            if evs:
                self._deliver(evs, acl, parent, events)
        return node

    def _fuzzy_create_fixup(self, rec: _CreateRec, zxid: int) -> None:
        """``setCversionPzxid`` after NODEEXISTS on replay (see processTxn).

        ZooKeeper 3.8 does this for ``create`` only; we do it for every create
        kind, which only ever moves cversion/pzxid forwards to the txn's values.
        """
        path = rec.path
        node = self.nodes.get(path)
        if node is not None and node.acl != OPEN_UNSAFE_ACL_ID and node.acl not in self.acl_cache:
            # The snapshot's ACL section was written before this node got a brand
            # new ACL mid-walk, so its ACL id dangles; the create txn carries the
            # ACL (later setACL txns are replayed after it), so re-intern it rather
            # than leave the node readable by all.
            node.acl = self.acl_cache.intern(rec.acl)
        i = path.rfind("/")
        parent = self.nodes.get(path[:i] or "/")
        if parent is None:
            return
        new = rec.parent_cversion
        if new == -1:
            new = parent.cversion + 1
        if new > parent.cversion:
            parent.cversion = new
            parent.pzxid = zxid

    def _delete_node(self, path: str, zxid: int, events: list[WatchEvent]) -> None:
        i = path.rfind("/")
        if i < 0 or len(path) < 2 or path[-1] == "/":
            raise _TxnFailed(_BADARGUMENTS)
        parent_name = path[:i] or "/"
        child_name = path[i + 1 :]
        parent = self.nodes.get(parent_name)
        if parent is None:
            raise _TxnFailed(_NONODE)
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
            raise _TxnFailed(_NONODE)
        if node.children:
            # Only reachable with a corrupt txn stream; keep the tree consistent
            # by dropping the orphaned subtree too.
            self._drop_subtree(path, node)
        node_acl = self.get_acl(node) if self.watch_acl_filter is not None else ()
        self.acl_cache.release(node.acl)
        self._data_size -= len(path) + len(node.data)
        owner = node.ephemeral_owner
        if owner:
            if owner == EPHEMERAL_CONTAINER:
                self.containers.discard(path)
            elif owner < 0 and owner & TTL_MASK == TTL_MASK:
                self.ttls.discard(path)
            else:
                s = self.ephemerals.get(owner)
                if s is not None:
                    s.discard(path)
                    if not s:
                        del self.ephemerals[owner]
        if self.quota_paths:
            if child_name == LIMIT_NODE and parent_name.startswith("/zookeeper"):
                self.quota_paths.discard(parent_name[len(QUOTA_ROOT) :])
            prefix = self._max_prefix_with_quota(path)
            if prefix is not None:
                self._update_quota_stat(prefix, -len(node.data), -1)
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

    def _set_data(
        self, path: str, data: bytes, version: int, zxid: int, time: int, events: list[WatchEvent]
    ) -> bytes:
        n = self.nodes.get(path)
        if n is None:
            raise _TxnFailed(_NONODE)
        last = n.data
        n.data = data
        n.mtime = time
        n.mzxid = zxid
        n.version = version
        # n.stat_bytes(), inlined (the hottest write); tests/test_hotpath_* compare.
        c = n.children
        nc = 0 if c is None else len(c)
        eo = n.ephemeral_owner
        if eo < 0 and (eo == EPHEMERAL_CONTAINER or eo & TTL_MASK == TTL_MASK):
            eo = 0
        stat = _pack_stat(
            n.czxid, zxid, n.ctime, time, version, n.cversion * 2 - nc, n.aversion, eo, len(data), nc, n.pzxid
        )
        self._data_size += len(data) - len(last)
        if self.quota_paths:
            prefix = self._max_prefix_with_quota(path)
            if prefix is not None:
                self._update_quota_stat(prefix, len(data) - len(last), 0)
        w = self.watches
        if w._data:
            evs = w.trigger(path, _NODE_DATA_CHANGED, zxid)
            if evs:
                self._deliver(evs, None, None, events, n)
        return stat

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

    def _set_acl(self, path: str, acl: tuple[ACL, ...], version: int) -> bytes:
        n = self.nodes.get(path)
        if n is None:
            raise _TxnFailed(_NONODE)
        self.acl_cache.release(n.acl)
        n.aversion = version
        n.acl = self.acl_cache.intern(acl)
        return n.stat_bytes()

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

    # ------------------------------------------------------------ quotas

    def _max_prefix_with_quota(self, path: str) -> str | None:
        """``getMaxPrefixWithQuota``: the longest quota path that is ``path`` or its ancestor."""
        qp = self.quota_paths
        p = path
        while True:
            if p in qp:
                return p
            i = p.rfind("/")
            if i <= 0:
                return None
            p = p[:i]

    def _update_quota_stat(self, prefix: str, bytes_diff: int, count_diff: int) -> None:
        stat_path = QUOTA_ROOT + prefix + "/" + STAT_NODE
        node = self.nodes.get(stat_path)
        if node is None:
            return
        try:
            st = parse_stats_track(node.data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return  # ZooKeeper would throw; a bad stats node must not break the txn
        st["count"] = st.get("count", -1) + count_diff
        st["bytes"] = st.get("bytes", -1) + bytes_diff
        self._set_raw_data(stat_path, node, format_stats_track(st).encode())

    def _update_quota_for_path(self, path: str) -> None:
        """Recount ``path``'s subtree into its ``zookeeper_stats`` node."""
        stat_path = QUOTA_ROOT + path + "/" + STAT_NODE
        stat_node = self.nodes.get(stat_path)
        if stat_node is None:
            return
        count = 0
        nbytes = 0
        node = self.nodes.get(path)
        if node is not None:
            stack = [(path, node)]
            while stack:
                p, n = stack.pop()
                count += 1
                nbytes += len(n.data)
                for c in n.children or ():
                    cp = (p if p != "/" else "") + "/" + c
                    cn = self.nodes.get(cp)
                    if cn is not None:
                        stack.append((cp, cn))
        self._set_raw_data(stat_path, stat_node, f"count={count},bytes={nbytes}".encode())

    def _set_raw_data(self, path: str, node: DataNode, data: bytes) -> None:
        # Quota stats change data without touching version/mzxid, as ZooKeeper does.
        self._data_size += len(data) - len(node.data)
        node.data = data

    def _setup_quota(self) -> None:
        """After a load: find every ``zookeeper_limits`` leaf and recount its path."""
        self.quota_paths.clear()
        quota = self.nodes.get(QUOTA_ROOT)
        if quota is None:
            return
        stack = [(QUOTA_ROOT, quota)]
        suffix = "/" + LIMIT_NODE
        while stack:
            p, n = stack.pop()
            if not n.children:
                if p.endswith(suffix):
                    real = p[len(QUOTA_ROOT) : p.index(suffix)]
                    if real and real != "/":
                        self.quota_paths.add(real)
                        self._update_quota_for_path(real)
                continue
            for c in n.children:
                cp = p + "/" + c
                cn = self.nodes.get(cp)
                if cn is not None:
                    stack.append((cp, cn))

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
        nodes = self.nodes
        root = nodes.get("/")
        if root is None:
            return
        yield "", root
        # (path + "/", iterator over the child names still to visit)
        stack: list[tuple[str, Iterator[str]]] = []
        if root.children:
            names = _java_hashset_order(root.children) if java_order else list(root.children)
            stack.append(("/", iter(names)))
        get = nodes.get
        while stack:
            base, names_it = stack[-1]
            for name in names_it:
                path = base + name
                node = get(path)
                if node is None:
                    continue  # deleted since its parent was yielded
                yield path, node
                c = node.children
                if c:
                    stack.append((path + "/", iter(_java_hashset_order(c) if java_order else list(c))))
                break
            else:
                stack.pop()

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
        tree = cls.__new__(cls)
        nodes: dict[str, DataNode] = {}
        tree.nodes = nodes
        tree.acl_cache = cache = AclCache()
        cache.load([(ref, tuple(acl)) for ref, acl in acl_items])
        tree.last_processed_zxid = last_zxid
        ephemerals: dict[int, set[str]] = {}
        tree.ephemerals = ephemerals
        tree.containers = containers = set()
        tree.ttls = ttls = set()
        tree.watches = WatchManager()
        tree.watch_acl_filter = None
        tree.quota_paths = set()
        size = 0
        # ACL usage counted in runs of equal ids (a snapshot's nodes mostly share
        # one): the same counts as ``add_usage`` per node, one dict update per run.
        usage: dict[int, int] = {}
        run_acl = 0
        run = 0
        max_acl = 0
        # The parent of the previous node (siblings come in a row in a snapshot).
        last_parent_path: str | None = None
        last_parent: DataNode | None = None
        setdefault = nodes.setdefault
        get = nodes.get
        for path, node in nodes_iter:
            node.children = None
            acl = node.acl
            if acl != run_acl:
                if run:
                    usage[run_acl] = usage.get(run_acl, 0) + run
                    if run_acl > max_acl:
                        max_acl = run_acl
                run_acl = acl
                run = 0
            run += 1
            if not path or path == "/":
                if "/" in nodes:
                    raise ValueError("snapshot holds the root twice")
                nodes["/"] = node
                size += 1 + len(node.data)
                continue
            i = path.rfind("/")
            if i < 0:
                raise ValueError(f"Invalid Datatree, unable to find parent of path {path!r}")
            parent_path = path[:i]
            if parent_path == last_parent_path:
                parent = last_parent
            else:
                parent = get(parent_path or "/")
                last_parent_path = parent_path
                last_parent = parent
            if parent is None:
                raise ValueError(f"Invalid Datatree, unable to find parent of path {path!r}")
            if setdefault(path, node) is not node:
                raise ValueError(f"snapshot holds {path!r} twice")
            size += len(path) + len(node.data)
            name = path[i + 1 :]
            children = parent.children
            if children is None:
                parent.children = {name}
            else:
                children.add(name)
            owner = node.ephemeral_owner
            if owner:
                if owner == EPHEMERAL_CONTAINER:
                    containers.add(path)
                elif owner < 0 and owner & TTL_MASK == TTL_MASK:
                    ttls.add(path)
                else:
                    s = ephemerals.get(owner)
                    if s is None:
                        ephemerals[owner] = {path}
                    else:
                        s.add(path)
        if run:
            usage[run_acl] = usage.get(run_acl, 0) + run
            if run_acl > max_acl:
                max_acl = run_acl
        add_usage = cache.add_usage
        for ref, count in usage.items():
            if ref != OPEN_UNSAFE_ACL_ID:  # add_usage ignores it
                for _ in range(count):
                    add_usage(ref)
        if "/" not in nodes:
            raise ValueError("snapshot has no root node")
        tree._data_size = size
        tree._setup_quota()
        cache.purge_unused()
        # A fuzzy snapshot may hold nodes whose ACL id is missing from its ACL
        # section (the ACL was new mid-walk); the log replay re-sets those.  Never
        # hand such an id out again for another ACL before that happens.
        cache.reserve_ids(max_acl)
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


_MULTI_SUB_TYPES = frozenset(
    {
        OpCode.create,
        OpCode.create2,
        OpCode.createTTL,
        OpCode.createContainer,
        OpCode.delete,
        OpCode.deleteContainer,
        OpCode.setData,
        OpCode.check,
        OpCode.error,
    }
)

#: The record class each txn type carries (a mismatch is refused, not applied).
_RECORD_FOR_TYPE: dict[int, type | tuple[type, ...]] = {
    OpCode.create: CreateTxn,
    OpCode.create2: CreateTxn,
    OpCode.createContainer: CreateContainerTxn,
    OpCode.createTTL: CreateTTLTxn,
    OpCode.delete: DeleteTxn,
    OpCode.deleteContainer: DeleteTxn,
    OpCode.setData: SetDataTxn,
    OpCode.reconfig: SetDataTxn,
    OpCode.setACL: SetACLTxn,
    OpCode.check: CheckVersionTxn,
    OpCode.error: ErrorTxn,
    OpCode.multi: MultiTxn,
    OpCode.createSession: (CreateSessionTxn, type(None)),
    OpCode.closeSession: (CloseSessionTxn, type(None)),
}
