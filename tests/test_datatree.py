"""DataTree: Stat rules, every txn type, ephemerals, containers/TTL, quotas, snapshots, fuzzy replay.

Expected values marked "ZK 3.8.0" were observed on Debian's ZooKeeper 3.8.0 with kazoo.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from trio_quorum.core.datatree import (
    DataTree,
    _java_hashset_order,
    format_stats_track,
    java_string_hash,
    parse_stats_track,
)
from trio_quorum.core.node import DataNode
from trio_quorum.protocol.consts import (
    EPHEMERAL_CONTAINER,
    AddWatchMode,
    Err,
    EventType,
    OpCode,
    Perm,
)
from trio_quorum.protocol.data import (
    ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    STAT_STRUCT,
    Id,
    ttl_owner,
)
from trio_quorum.protocol.txn import (
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
    decode_txn,
    encode_txn,
)

OPEN = OPEN_ACL_UNSAFE
DIGEST_ACL = (ACL(Perm.ALL, Id("digest", "u:Jq7wMyA/w2Vd5WIDAKdu4OIIFEQ=")),)


class Feed:
    """Applies txns with increasing zxids and remembers them for replay."""

    def __init__(self, tree: DataTree | None = None) -> None:
        self.tree = tree or DataTree()
        self.zxid = self.tree.last_processed_zxid
        self.log: list[tuple[TxnHeader, TxnRecord]] = []

    def __call__(self, typ: int, rec: TxnRecord, session: int = 1):  # type: ignore[no-untyped-def]
        self.zxid += 1
        hdr = TxnHeader(session, self.zxid, self.zxid, 1000 + self.zxid, int(typ))
        self.log.append((hdr, rec))
        return self.tree.apply(hdr, rec)

    def create(
        self, path: str, data: bytes = b"", *, session: int = 1, ephemeral: bool = False, acl=OPEN
    ):  # type: ignore[no-untyped-def]
        parent = self.tree.nodes[path.rsplit("/", 1)[0] or "/"]
        return self(
            OpCode.create, CreateTxn(path, data, acl, ephemeral, parent.cversion + 1), session
        )


def test_fresh_tree_matches_zookeeper_3_8_0() -> None:
    t = DataTree()
    assert set(t.nodes) == {"/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"}
    root = t.nodes["/"].stat()
    assert root == (0, 0, 0, 0, 0, -1, 0, 0, 0, 1, 0)  # ZK 3.8.0: cversion -1
    assert t.nodes["/zookeeper"].stat().cversion == -2  # ZK 3.8.0
    assert t.nodes["/zookeeper"].stat().numChildren == 2
    cfg = t.nodes["/zookeeper/config"]
    assert cfg.stat().aversion == -1  # ZK 3.8.0
    assert t.get_acl(cfg) == READ_ACL_UNSAFE
    assert t.get_acl(t.nodes["/zookeeper/quota"]) == OPEN
    assert t.node_count() == 5  # mntr zk_znode_count counts the root twice
    assert t.approximate_data_size() == 44
    assert len(t.acl_cache) == 1
    assert t.last_processed_zxid == 0


def test_create_stat_fields_and_parent() -> None:
    f = Feed()
    f(OpCode.createSession, CreateSessionTxn(30000))
    r = f.create("/a", b"x")
    assert r.err == 0 and r.path == "/a" and r.stat is None  # create (1) has no stat
    n = f.tree.nodes["/a"].stat()
    assert (n.czxid, n.mzxid, n.pzxid, n.ctime, n.mtime) == (2, 2, 2, 1002, 1002)
    assert (n.version, n.cversion, n.aversion, n.ephemeralOwner, n.dataLength, n.numChildren) == (
        0,
        0,
        0,
        0,
        1,
        0,
    )
    root = f.tree.nodes["/"]
    assert root.cversion == 1 and root.pzxid == 2
    assert f.tree.last_processed_zxid == 2
    assert f.tree.node_count() == 6
    assert f.tree.approximate_data_size() == 44 + 2 + 1


def test_cversion_sequence_matches_zookeeper() -> None:
    # ZK 3.8.0: create /a; create /a/b -> (cversion 1, pzxid 3); delete /a/b -> (2, 4);
    # create /a/c -> (3, 5); the next sequential child gets suffix 0000000002.
    f = Feed()
    f(OpCode.createSession, CreateSessionTxn(30000))
    f.create("/a", b"x")
    f.create("/a/b")
    st_ = f.tree.nodes["/a"].stat()
    assert (st_.cversion, st_.pzxid, st_.numChildren) == (1, 3, 1)
    f(OpCode.delete, DeleteTxn("/a/b"))
    st_ = f.tree.nodes["/a"].stat()
    assert (st_.cversion, st_.pzxid, st_.numChildren) == (2, 4, 0)
    f.create("/a/c")
    st_ = f.tree.nodes["/a"].stat()
    assert (st_.cversion, st_.pzxid, st_.numChildren) == (3, 5, 1)
    assert f"{f.tree.nodes['/a'].cversion:010d}" == "0000000002"
    f.create("/a/s0000000002")
    f(OpCode.setData, SetDataTxn("/a", b"yy", 1))
    # ZK 3.8.0 after the above: mzxid 7, version 1, cversion 4, numChildren 2, pzxid 6
    st_ = f.tree.nodes["/a"].stat()
    assert (st_.mzxid, st_.version, st_.cversion, st_.numChildren, st_.pzxid) == (7, 1, 4, 2, 6)


def test_parent_cversion_from_txn_only_moves_forward() -> None:
    f = Feed()
    f(OpCode.create, CreateTxn("/a", b"", OPEN, False, 7))
    assert f.tree.nodes["/"].cversion == 7
    f(OpCode.create, CreateTxn("/b", b"", OPEN, False, 3))  # stale value: keep 7 and the pzxid
    assert f.tree.nodes["/"].cversion == 7
    assert f.tree.nodes["/"].pzxid == 1
    f(OpCode.create, CreateTxn("/c", b"", OPEN, False, -1))  # -1: bump by one
    assert f.tree.nodes["/"].cversion == 8
    assert f.tree.nodes["/"].pzxid == 3


def test_create_errors() -> None:
    f = Feed()
    assert f.create("/a").err == 0
    r = f(OpCode.create, CreateTxn("/a", b"", OPEN, False, -1))
    assert r.err == Err.NODEEXISTS
    assert f(OpCode.create, CreateTxn("/x/y", b"", OPEN, False, -1)).err == Err.NONODE
    assert f(OpCode.create, CreateTxn("/", b"", OPEN, False, -1)).err == Err.BADARGUMENTS
    assert f(OpCode.create, CreateTxn("/a/", b"", OPEN, False, -1)).err == Err.BADARGUMENTS
    assert f(OpCode.create, CreateTxn("rel", b"", OPEN, False, -1)).err == Err.BADARGUMENTS
    # A record that does not match the header type changes nothing.
    before = f.tree.dump()
    assert f(OpCode.create, DeleteTxn("/a")).err == Err.BADARGUMENTS
    assert f(12345, DeleteTxn("/a")).err == Err.BADARGUMENTS
    assert f.tree.dump() == before


def test_create2_and_friends_return_stat() -> None:
    f = Feed()
    r = f(OpCode.create2, CreateTxn("/a", b"abc", OPEN, False, -1))
    assert r.stat == f.tree.nodes["/a"].stat_bytes()
    r = f(OpCode.createContainer, CreateContainerTxn("/c", b"", OPEN, -1))
    assert r.stat is not None and f.tree.nodes["/c"].ephemeral_owner == EPHEMERAL_CONTAINER
    assert f.tree.nodes["/c"].stat().ephemeralOwner == 0  # hidden from clients
    r = f(OpCode.createTTL, CreateTTLTxn("/t", b"", OPEN, -1, 5000))
    assert f.tree.nodes["/t"].ephemeral_owner == ttl_owner(5000)
    assert f.tree.nodes["/t"].stat().ephemeralOwner == 0
    assert f.tree.containers == {"/c"} and f.tree.ttls == {"/t"}
    f(OpCode.deleteContainer, DeleteTxn("/c"))
    f(OpCode.delete, DeleteTxn("/t"))
    assert f.tree.containers == set() and f.tree.ttls == set()


def test_set_data_and_set_acl() -> None:
    f = Feed()
    f.create("/a", b"1")
    r = f(OpCode.setData, SetDataTxn("/a", b"hello", 1))
    st_ = f.tree.nodes["/a"].stat()
    assert r.stat == f.tree.nodes["/a"].stat_bytes()
    assert (st_.version, st_.mzxid, st_.mtime, st_.dataLength, st_.czxid) == (1, 2, 1002, 5, 1)
    assert f.tree.approximate_data_size() == 44 + 2 + 5
    assert f(OpCode.setData, SetDataTxn("/nope", b"", 1)).err == Err.NONODE
    r = f(OpCode.setACL, SetACLTxn("/a", DIGEST_ACL, 1))
    assert f.tree.get_acl(f.tree.nodes["/a"]) == DIGEST_ACL
    assert f.tree.nodes["/a"].stat().aversion == 1
    assert len(f.tree.acl_cache) == 2
    f(OpCode.setACL, SetACLTxn("/a", OPEN, 2))
    assert len(f.tree.acl_cache) == 1  # the digest ACL lost its last user
    assert f(OpCode.setACL, SetACLTxn("/nope", OPEN, 1)).err == Err.NONODE
    assert f(OpCode.check, CheckVersionTxn("/a", 2)).err == 0


def test_delete_missing_moves_parent_pzxid_forward_only() -> None:
    f = Feed()
    f.create("/a")
    r = f(OpCode.delete, DeleteTxn("/a/ghost"))
    assert r.err == Err.NONODE
    assert f.tree.nodes["/a"].pzxid == 2
    assert f(OpCode.delete, DeleteTxn("/x/ghost")).err == Err.NONODE
    # An older zxid never moves pzxid back.
    f.tree.apply(TxnHeader(1, 1, 1, 0, OpCode.delete), DeleteTxn("/a/ghost2"))
    assert f.tree.nodes["/a"].pzxid == 2


def test_ephemerals_and_close_session_with_paths() -> None:
    f = Feed()
    f.create("/e1", session=5, ephemeral=True)
    f.create("/e2", session=5, ephemeral=True)
    f.create("/e3", session=6, ephemeral=True)
    assert f.tree.ephemerals == {5: {"/e1", "/e2"}, 6: {"/e3"}}
    assert f.tree.nodes["/e1"].stat().ephemeralOwner == 5
    assert f.tree.ephemerals_count() == 3
    assert sorted(f.tree.get_ephemerals(5)) == ["/e1", "/e2"]
    assert f.tree.get_ephemerals(5, "/e2") == ["/e2"]
    f.tree.watches.add_data_watch("/e1", "w")
    # The txn lists one path plus one already gone; the tree's own list has /e2 too.
    r = f(OpCode.closeSession, CloseSessionTxn(("/e1", "/gone")), session=5)
    assert r.err == 0
    assert "/e1" not in f.tree.nodes and "/e2" not in f.tree.nodes
    assert f.tree.ephemerals == {6: {"/e3"}}
    assert ("w", EventType.NodeDeleted, "/e1") in r.events
    f(OpCode.closeSession, CloseSessionTxn(None), session=6)
    assert f.tree.ephemerals == {} and "/e3" not in f.tree.nodes
    assert f.tree.nodes["/"].pzxid == f.zxid


def test_kill_session_outside_txn() -> None:
    f = Feed()
    f.create("/e", session=9, ephemeral=True)
    f.tree.watches.add_child_watch("/", "w")
    assert f.tree.kill_session(9, 99) == [("w", EventType.NodeChildrenChanged, "/")]
    assert "/e" not in f.tree.nodes


def test_error_txn_and_create_session_change_nothing() -> None:
    f = Feed()
    before = f.tree.dump()
    assert f(OpCode.error, ErrorTxn(Err.NODEEXISTS)).err == Err.NODEEXISTS
    assert f(OpCode.createSession, CreateSessionTxn(4000)).err == 0
    assert f.tree.dump() == before
    assert f.tree.last_processed_zxid == 2


def test_multi_applies_at_one_zxid() -> None:
    f = Feed()
    f.create("/a", b"0")
    f.tree.watches.add_data_watch("/a", "w")
    r = f(
        OpCode.multi,
        MultiTxn(
            (
                (OpCode.create, CreateTxn("/a/b", b"1", OPEN, False, 1)),
                (OpCode.create2, CreateTxn("/a/c", b"2", OPEN, False, 2)),
                (OpCode.setData, SetDataTxn("/a", b"new", 1)),
                (OpCode.check, CheckVersionTxn("/a", 1)),
                (OpCode.delete, DeleteTxn("/a/b")),
            )
        ),
    )
    assert r.err == 0 and r.multi is not None
    assert [s.type for s in r.multi] == [1, 15, 5, 13, 2]
    assert all(s.zxid == 2 and s.err == 0 for s in r.multi)
    assert f.tree.nodes["/a/c"].czxid == 2 and f.tree.nodes["/a"].mzxid == 2
    # Stats are taken when each sub-op applies (setData's is before the delete).
    assert r.multi[1].stat is not None and r.multi[2].stat is not None
    st_ = STAT_STRUCT.unpack(r.multi[2].stat)
    assert (st_[1], st_[4], st_[8], st_[9]) == (
        2,
        1,
        3,
        2,
    )  # mzxid, version, dataLength, numChildren
    assert r.events == [("w", EventType.NodeDataChanged, "/a")]
    assert f.tree.last_processed_zxid == 2


def test_failed_multi_changes_nothing() -> None:
    f = Feed()
    f.create("/a", b"0")
    before = f.tree.dump()
    r = f(
        OpCode.multi,
        MultiTxn(
            (
                (OpCode.create, CreateTxn("/a/b", b"1", OPEN, False, 1)),
                (OpCode.error, ErrorTxn(Err.BADVERSION)),
                (OpCode.error, ErrorTxn(Err.RUNTIMEINCONSISTENCY)),
            )
        ),
    )
    assert [(s.type, s.err) for s in r.multi or ()] == [(-1, 0), (-1, -103), (-1, -2)]
    assert r.err == Err.BADVERSION
    assert f.tree.dump() == before
    assert f.tree.last_processed_zxid == 2


def test_multi_rejects_nested_or_foreign_subtypes() -> None:
    f = Feed()
    r = f(OpCode.multi, MultiTxn(((OpCode.createSession, CreateSessionTxn(1)),)))
    assert r.err == Err.BADARGUMENTS
    # A closeSession inside a multi is refused, not applied: the session's
    # ephemeral stays, and the refused sub-op has a result of its own.
    f.create("/e", session=5, ephemeral=True)
    before = f.tree.dump()
    r = f(
        OpCode.multi,
        MultiTxn(((OpCode.closeSession, CloseSessionTxn(("/e",))), (OpCode.check, CheckVersionTxn("/e", 1)))),
        session=5,
    )
    assert r.err == Err.BADARGUMENTS
    assert [(s.type, s.err, s.path, s.stat, s.multi, s.zxid) for s in r.multi or ()] == [
        (OpCode.closeSession, Err.BADARGUMENTS, None, None, None, f.zxid),
        (OpCode.check, 0, "/e", None, None, f.zxid),
    ]
    assert f.tree.dump() == before and f.tree.ephemerals == {5: {"/e"}}
    assert f.tree.last_processed_zxid == f.zxid


def test_watch_events_from_apply() -> None:
    f = Feed()
    wm = f.tree.watches
    wm.add_data_watch("/a", "exists")
    wm.add_child_watch("/", "root")
    r = f.create("/a")
    assert r.events == [
        ("exists", EventType.NodeCreated, "/a"),
        ("root", EventType.NodeChildrenChanged, "/"),
    ]
    wm.add_data_watch("/a", "d")
    assert f(OpCode.setACL, SetACLTxn("/a", OPEN, 1)).events == []  # setACL triggers nothing
    assert f(OpCode.delete, DeleteTxn("/a")).events == [("d", EventType.NodeDeleted, "/a")]


def test_get_all_children_number() -> None:
    f = Feed()
    f.create("/a")
    f.create("/a/b")
    f.create("/a/b/c")
    f.create("/ab")
    assert f.tree.get_all_children_number("/a") == 2
    assert f.tree.get_all_children_number("/") == 7  # ZK: nodes.size() - 2
    assert f.tree.get_all_children_number("/a/b/c") == 0


# ---------------------------------------------------------------- quotas


def test_quota_stats_follow_zookeeper() -> None:
    # Sequence and values observed on ZK 3.8.0 (setquota-style nodes made by hand).
    f = Feed()
    f.create("/q")
    f.create("/q/x")
    f.create("/q/x/y", b"12345")
    f.create("/zookeeper/quota/q")
    f.create("/zookeeper/quota/q/zookeeper_limits", b"count=10,bytes=100")
    f.create("/zookeeper/quota/q/zookeeper_stats", b"count=0,bytes=0")
    stats = f.tree.nodes["/zookeeper/quota/q/zookeeper_stats"]
    assert stats.data == b"count=3,bytes=5"
    assert stats.stat().dataLength == 15
    f.create("/q/x/z", b"1")
    assert stats.data == b"count=4,bytes=6"
    f(OpCode.setData, SetDataTxn("/q/x/z", b"1234", 1))
    assert stats.data == b"count=4,bytes=9"
    f(OpCode.delete, DeleteTxn("/q/x/y"))
    assert stats.data == b"count=3,bytes=4"
    f.create("/qq", b"zzz")  # a sibling with a common string prefix is not counted
    assert stats.data == b"count=3,bytes=4"
    # Removing the limit node stops the accounting.
    f(OpCode.delete, DeleteTxn("/zookeeper/quota/q/zookeeper_limits"))
    f.create("/q/w", b"1")
    assert stats.data == b"count=3,bytes=4"


def test_quota_stat_keeps_hard_limits_and_tolerates_garbage() -> None:
    f = Feed()
    f.create("/q")
    f.create("/zookeeper/quota/q")
    f.create("/zookeeper/quota/q/zookeeper_limits", b"count=-1,bytes=-1=;byteHardLimit=10")
    f.create("/zookeeper/quota/q/zookeeper_stats", b"")
    stats = f.tree.nodes["/zookeeper/quota/q/zookeeper_stats"]
    stats.data = b"count=1,bytes=0=;countHardLimit=10"
    f.create("/q/a", b"xy")
    assert stats.data == b"count=2,bytes=2=;countHardLimit=10"
    stats.data = b"\xff garbage"
    assert f.create("/q/b", b"xy").err == 0  # a broken stats node never breaks a txn
    assert stats.data == b"\xff garbage"


def test_stats_track_text() -> None:
    s = parse_stats_track("count=4,bytes=5=;countHardLimit=10;byteHardLimit=10")
    assert s == {"count": 4, "bytes": 5, "countHardLimit": 10, "byteHardLimit": 10}
    assert format_stats_track(s) == "count=4,bytes=5=;byteHardLimit=10;countHardLimit=10"
    assert format_stats_track(parse_stats_track("count=1,bytes=2")) == "count=1,bytes=2"
    assert parse_stats_track("") == {}
    for bad in ("count", "count=x"):
        try:
            parse_stats_track(bad)
        except ValueError:
            continue
        raise AssertionError(f"parsed {bad!r}")


# ---------------------------------------------------------------- snapshots


def test_java_hashset_order_matches_java() -> None:
    # Printed by Java 17: new HashSet<>(8), add in this order, String.join.
    assert java_string_hash("zookeeper") == 1600681804
    assert java_string_hash("n17") == 107284
    names = ["zookeeper", "a", "b", "c", "app", "locks", "x1", "x2", "x3", "x10"]
    assert ",".join(_java_hashset_order(names)) == "app,a,b,c,zookeeper,x10,x1,x2,x3,locks"
    assert _java_hashset_order(["quota", "config"]) == ["config", "quota"]
    names = [f"n{i}" for i in range(21)]
    expect = "n0,n1,n2,n3,n4,n5,n6,n7,n8,n9,n10,n20,n12,n11,n14,n13,n16,n15,n18,n17,n19"
    assert ",".join(_java_hashset_order(names)) == expect


def _copy(n: DataNode) -> DataNode:
    return DataNode(
        n.data,
        n.acl,
        n.czxid,
        n.mzxid,
        n.ctime,
        n.mtime,
        n.version,
        n.cversion,
        n.aversion,
        n.ephemeral_owner,
        n.pzxid,
    )


def _snapshot(t: DataTree) -> tuple[list, list]:  # type: ignore[type-arg]
    return list(t.acl_cache.items()), [(p, _copy(n)) for p, n in t.snapshot_nodes()]


def _same(a: DataTree, b: DataTree) -> None:
    assert a.dump() == b.dump()
    assert a.ephemerals == b.ephemerals
    assert a.containers == b.containers and a.ttls == b.ttls
    assert a.quota_paths == b.quota_paths
    assert a.approximate_data_size() == b.approximate_data_size()
    assert sorted(a.acl_cache.items(), key=repr) == sorted(b.acl_cache.items(), key=repr) or {
        acl for _, acl in a.acl_cache.items()
    } == {acl for _, acl in b.acl_cache.items()}


def test_snapshot_order_and_round_trip() -> None:
    f = Feed()
    f.create("/a", b"1", acl=DIGEST_ACL)
    f.create("/a/b", b"2")
    f.create("/e", session=3, ephemeral=True)
    f(OpCode.createContainer, CreateContainerTxn("/c", b"", OPEN, -1))
    f(OpCode.createTTL, CreateTTLTxn("/t", b"", OPEN, -1, 100))
    f.create("/q")
    f.create("/zookeeper/quota/q")
    f.create("/zookeeper/quota/q/zookeeper_limits", b"count=10,bytes=100")
    f.create("/zookeeper/quota/q/zookeeper_stats", b"count=0,bytes=0")
    paths = [p for p, _ in f.tree.snapshot_nodes()]
    assert paths[0] == ""
    assert sorted(paths[1:]) == sorted(p for p in f.tree.nodes if p != "/")
    seen = {"/"}
    for p in paths[1:]:
        assert (p.rsplit("/", 1)[0] or "/") in seen  # pre-order: parents first
        seen.add(p)
    assert paths[1:3] == ["/a", "/a/b"] or "/a/b" in paths[paths.index("/a") + 1 :]
    acl_items, nodes = _snapshot(f.tree)
    loaded = DataTree.load_snapshot(acl_items, nodes, f.tree.last_processed_zxid)
    _same(f.tree, loaded)
    assert loaded.last_processed_zxid == f.zxid
    assert loaded.node_count() == f.tree.node_count()
    assert loaded.nodes["/zookeeper/quota/q/zookeeper_stats"].data == b"count=1,bytes=0"
    assert loaded.get_acl(loaded.nodes["/a"]) == DIGEST_ACL


def test_load_snapshot_rejects_bad_streams() -> None:
    root = DataNode(b"", -1, 0, 0, 0, 0)
    for stream in (
        [("/a", DataNode(b"", -1, 0, 0, 0, 0))],  # no root yet
        [("", root), ("/x/y", DataNode(b"", -1, 0, 0, 0, 0))],  # orphan
        [("", root), ("", DataNode(b"", -1, 0, 0, 0, 0))],  # root twice
        [],  # empty
    ):
        try:
            DataTree.load_snapshot([], stream, 0)
        except ValueError:
            continue
        raise AssertionError(f"accepted {stream}")


def test_load_snapshot_purges_unused_acls() -> None:
    root = DataNode(b"", -1, 0, 0, 0, 0)
    a = DataNode(b"", 2, 1, 1, 0, 0)
    t = DataTree.load_snapshot([(1, READ_ACL_UNSAFE), (2, DIGEST_ACL)], [("", root), ("/a", a)], 1)
    assert t.acl_cache.items() == [(2, DIGEST_ACL)]


# ---------------------------------------------------------------- fuzzy replay (property)

ACLS = [OPEN, DIGEST_ACL, READ_ACL_UNSAFE]


def _random_txn(
    t: DataTree, rnd: random.Random, n: int, legacy_close: bool = True
) -> tuple[int, TxnRecord, int]:
    """A txn that prep could have produced for the current tree (type, record, session)."""
    paths = [p for p in t.nodes if not p.startswith("/zookeeper")]
    kind = rnd.choice(
        [
            "create",
            "create",
            "create",
            "delete",
            "set",
            "acl",
            "close",
            "multi",
            "badmulti",
            "error",
        ]
    )
    session = rnd.choice([1, 2, 3])
    if kind == "create":
        parents = [p for p in paths if t.nodes[p].ephemeral_owner == 0]
        parent = rnd.choice(parents)
        path = (parent if parent != "/" else "") + f"/n{n}"
        cv = t.nodes[parent].cversion + 1
        flavour = rnd.choice(["p", "e", "c", "t", "2"])
        acl = rnd.choice(ACLS)
        if flavour == "c":
            return OpCode.createContainer, CreateContainerTxn(path, b"c", acl, cv), session
        if flavour == "t":
            return OpCode.createTTL, CreateTTLTxn(path, b"t", acl, cv, 1000), session
        typ = OpCode.create2 if flavour == "2" else OpCode.create
        return typ, CreateTxn(path, bytes(rnd.randrange(4)), acl, flavour == "e", cv), session
    leaves = [p for p in paths if p != "/" and not t.nodes[p].children]
    if kind == "delete" and leaves:
        return OpCode.delete, DeleteTxn(rnd.choice(leaves)), session
    if kind == "set" and len(paths) > 1:
        p = rnd.choice(paths[1:])
        return OpCode.setData, SetDataTxn(p, b"v%d" % n, t.nodes[p].version + 1), session
    if kind == "acl" and len(paths) > 1:
        p = rnd.choice(paths[1:])
        return OpCode.setACL, SetACLTxn(p, rnd.choice(ACLS), t.nodes[p].aversion + 1), session
    if kind == "close":
        eph = tuple(sorted(t.ephemerals.get(session, ())))
        legacy = legacy_close and rnd.random() >= 0.7
        return OpCode.closeSession, CloseSessionTxn(None if legacy else eph), session
    if kind == "multi" and len(paths) > 1:
        p = rnd.choice(paths[1:])
        subs: list[tuple[int, TxnRecord]] = [
            (OpCode.setData, SetDataTxn(p, b"m%d" % n, t.nodes[p].version + 1))
        ]
        if t.nodes[p].ephemeral_owner == 0:
            subs.append(
                (OpCode.create, CreateTxn(p + f"/m{n}", b"", OPEN, False, t.nodes[p].cversion + 1))
            )
        return OpCode.multi, MultiTxn(tuple(subs)), session
    if kind == "badmulti":
        return (
            OpCode.multi,
            MultiTxn(((OpCode.error, ErrorTxn(0)), (OpCode.error, ErrorTxn(Err.NONODE)))),
            session,
        )
    return OpCode.error, ErrorTxn(Err.BADVERSION), session


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(5, 60), data=st.data())
def test_fuzzy_snapshot_replay_converges(seed: int, steps: int, data: st.DataObject) -> None:
    rnd = random.Random(seed)
    f = Feed()
    for i in range(steps):
        # A pre-3.6 closeSession (no path list) cannot converge over a fuzzy
        # snapshot that missed an ephemeral: replay has no path to delete, so the
        # parent's pzxid stays behind.  ZooKeeper has the same gap, which is why
        # 3.6 added the list; we always write it.
        typ, rec, session = _random_txn(f.tree, rnd, i, legacy_close=False)
        # Every txn survives the log encoding unchanged.
        hdr = TxnHeader(session, i, f.zxid + 1, 1000 + i, int(typ))
        h2, r2, _ = decode_txn(encode_txn(hdr, rec))
        assert (h2, r2) == (hdr, rec) or typ == OpCode.closeSession
        f(typ, rec, session)
    full = f.tree
    log = f.log

    # Replay the same log into a fresh tree, interleaving a snapshot walk that
    # starts at zxid k while later txns keep applying (a fuzzy snapshot).
    k = data.draw(st.integers(0, len(log)), label="snapshot_zxid")
    t = DataTree()
    for hdr, rec in log[:k]:
        t.apply(hdr, rec)
    acl_items = list(t.acl_cache.items())
    snap: list[tuple[str, DataNode]] = []
    pending = iter(log[k:])
    walk_rnd = random.Random(seed ^ 0x5A5A)
    for path, node in t.snapshot_nodes():
        snap.append((path, _copy(node)))
        if walk_rnd.random() < 0.4:
            nxt = next(pending, None)
            if nxt is not None:
                t.apply(*nxt)
    for hdr, rec in pending:
        t.apply(hdr, rec)
    _same(full, t)  # the live tree that was walked ends up right too

    restored = DataTree.load_snapshot(acl_items, snap, log[k - 1][0].zxid if k else 0)
    for hdr, rec in log[k:]:
        restored.apply(hdr, rec)
    _same(full, restored)
    assert restored.last_processed_zxid == full.last_processed_zxid
    # Client-visible stats agree as well (cversion translation, owners).
    for p, n in full.nodes.items():
        assert restored.nodes[p].stat_bytes() == n.stat_bytes()


def _fuzzy_walk(f: Feed, k: int, apply_after: dict[str, int]) -> DataTree:
    """Snapshot the tree after log[:k] while applying log[k:] mid-walk
    (txn i right after path ``p`` is yielded, for ``apply_after[p] = i``), then
    restore that snapshot and replay log[k:]."""
    t = DataTree()
    for hdr, rec in f.log[:k]:
        t.apply(hdr, rec)
    acl_items = list(t.acl_cache.items())
    snap = []
    nxt = k
    for path, node in t.snapshot_nodes():
        snap.append((path, _copy(node)))
        while path in apply_after and nxt <= apply_after[path]:
            t.apply(*f.log[nxt])
            nxt += 1
    restored = DataTree.load_snapshot(acl_items, snap, f.log[k - 1][0].zxid)
    for hdr, rec in f.log[k:]:
        restored.apply(hdr, rec)
    return restored


def test_fuzzy_delete_of_child_missing_from_snapshot_moves_parent_pzxid() -> None:
    f = Feed()
    f.create("/a")
    f.create("/a/b")
    f(OpCode.delete, DeleteTxn("/a/b"))  # applied after /a was serialized, before /a/b
    restored = _fuzzy_walk(f, 2, {"/a": 2})
    _same(f.tree, restored)
    assert restored.nodes["/a"].pzxid == 3


def test_fuzzy_recreated_node_adjusts_parent_cversion() -> None:
    # ZooKeeper's processTxn comment: a child deleted (session close) and
    # re-created by another session after its parent was serialized.
    f = Feed()
    f.create("/p")
    f.create("/p/e", session=7, ephemeral=True)
    f(OpCode.closeSession, CloseSessionTxn(("/p/e",)), session=7)
    f.create("/p/e", session=8, ephemeral=True)
    restored = _fuzzy_walk(f, 2, {"/p": 3})
    _same(f.tree, restored)
    assert restored.nodes["/p"].cversion == 2 and restored.nodes["/p"].pzxid == 4


def test_fuzzy_snapshot_with_an_acl_new_mid_walk_restores_every_acl() -> None:
    # The snapshot's ACL section is taken before the walk; a setACL and a create
    # with a brand-new ACL land mid-walk, so a walked node holds an ACL id the
    # snapshot does not define.  Restoring must neither leave that node open to
    # all nor let the id be handed out again for another ACL.
    digest = (ACL(Perm.ALL, Id("digest", "u:Jq7wMyA/w2Vd5WIDAKdu4OIIFEQ=")),)
    f = Feed()
    f.create("/n3")
    f.create("/n4", acl=digest)
    f(OpCode.setACL, SetACLTxn("/n3", digest, 0))
    f.create("/n5", acl=digest)
    for k in range(1, len(f.log)):
        restored = _fuzzy_walk(f, k, {"": len(f.log) - 1})
        _same(f.tree, restored)
        for p in ("/n3", "/n4", "/n5"):
            assert restored.get_acl(restored.nodes[p]) == digest


def test_watch_events_are_filtered_by_the_watchers_read_permission() -> None:
    # CVE-2024-23944: an event reaches a watcher only if it may READ the node
    # (the parent, for NodeChildrenChanged).  Watchers here are named by the
    # id they hold; the filter is what the server installs.
    alice = (ACL(Perm.ALL, Id("digest", "alice:x")),)
    f = Feed()
    f.tree.watch_acl_filter = lambda w, acl: any(
        a.perms & Perm.READ and (a.id == Id("world", "anyone") or a.id.id == w) for a in acl
    )
    for w in ("alice:x", "bob:y"):
        f.tree.watches.add_watch("/", w, AddWatchMode.PERSISTENT_RECURSIVE)
        f.tree.watches.add_child_watch("/p", w)
    f.create("/p", acl=alice)
    r = f.create("/p/secret", acl=alice)
    # bob sees neither the node nor the change to /p's children
    assert sorted(r.events) == [
        ("alice:x", EventType.NodeCreated, "/p/secret"),
        ("alice:x", EventType.NodeChildrenChanged, "/p"),
    ]
    r = f(OpCode.setData, SetDataTxn("/p/secret", b"v", 1))
    assert r.events == [("alice:x", EventType.NodeDataChanged, "/p/secret")]
    r = f.create("/open")
    assert {w for w, _, _ in r.events} == {"alice:x", "bob:y"}
    r = f(OpCode.delete, DeleteTxn("/p/secret"))
    assert [(w, t) for w, t, p in r.events if p == "/p/secret"] == [
        ("alice:x", EventType.NodeDeleted)
    ]
