"""Final core: replies for every write and read op, ACL rules, watches, errors.

Each reply is pushed through ``proto.encode_reply`` and decoded with the
client-side ``proto.decode_response``, so the body types are wire-checked too.
"""

from __future__ import annotations

from typing import Any

from trio_quorum.core.acl import SUPER_ID, digest_id
from trio_quorum.core.auth import AuthRegistry
from trio_quorum.core.datatree import DataTree
from trio_quorum.core.final import Final, Outcome, mask_digest_acl
from trio_quorum.protocol.consts import AddWatchMode, Err, EventType, OpCode, Perm, WatcherType
from trio_quorum.protocol.data import ACL, OPEN_ACL_UNSAFE, Id, Stat
from trio_quorum.protocol.records import (
    AddWatchRequest,
    CheckWatchesRequest,
    ExistsRequest,
    GetACLRequest,
    GetAllChildrenNumberRequest,
    GetChildren2Request,
    GetChildrenRequest,
    GetDataRequest,
    GetEphemeralsRequest,
    MultiRequest,
    RemoveWatchesRequest,
    SetWatches,
    SyncRequest,
    decode_reply_header,
    decode_response,
    encode_reply,
)
from trio_quorum.protocol.txn import (
    CheckVersionTxn,
    CloseSessionTxn,
    CreateContainerTxn,
    CreateSessionTxn,
    CreateTxn,
    DeleteTxn,
    ErrorTxn,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
    TxnHeader,
    TxnRecord,
)

ALICE = Id("digest", digest_id("alice:secret"))
BOB = Id("digest", digest_id("bob:pw"))
ALICE_ONLY = (ACL(Perm.ALL, ALICE),)
ALICE_ADMIN_WORLD_READ = (ACL(Perm.ALL, ALICE), ACL(Perm.READ, Id("world", "anyone")))
IP_ALL = ()  # auth ids of an unauthenticated client (no ip here)


def wire(out: Outcome, opcode: int) -> tuple[int, int, Any]:
    """Encode as the server would, decode as a client would: (zxid, err, body)."""
    frame = encode_reply(7, out.zxid, out.err, out.body if out.err == 0 else None)
    hdr = decode_reply_header(frame, 4)
    assert hdr.xid == 7
    body = decode_response(opcode, frame, offset=20) if hdr.err == 0 else None
    return hdr.zxid, hdr.err, body


class Server:
    def __init__(self, **kw: Any) -> None:
        self.tree = DataTree()
        self.final = Final(self.tree, **kw)
        self.zxid = 0

    def write(self, typ: int, rec: TxnRecord | None, session: int = 1) -> Outcome:
        self.zxid += 1
        return self.final.write(
            TxnHeader(session, self.zxid, self.zxid, 5000 + self.zxid, int(typ)), rec
        )

    def create(
        self, path: str, data: bytes = b"", acl: tuple[ACL, ...] = OPEN_ACL_UNSAFE, **kw: Any
    ) -> Outcome:
        parent = self.tree.nodes[path.rsplit("/", 1)[0] or "/"]
        eph = kw.pop("ephemeral", False)
        return self.write(OpCode.create, CreateTxn(path, data, acl, eph, parent.cversion + 1), **kw)

    def read(
        self, opcode: int, req: Any, ids: tuple[Id, ...] = (), session: int = 1, watcher: str = "c1"
    ) -> Outcome:
        return self.final.read(opcode, req, session, ids, watcher)


# ---------------------------------------------------------------- writes


def test_write_replies() -> None:
    s = Server()
    out = s.write(OpCode.createSession, CreateSessionTxn(30000))
    assert (out.err, out.body, out.zxid) == (0, None, 1)
    zxid, err, body = wire(s.create("/a", b"x"), OpCode.create)
    assert (zxid, err, body.path) == (2, 0, "/a")
    out = s.write(OpCode.create2, CreateTxn("/b", b"yy", OPEN_ACL_UNSAFE, False, 2))
    zxid, err, body = wire(out, OpCode.create2)
    assert body.path == "/b" and body.stat == s.tree.nodes["/b"].stat() and body.stat.czxid == 3
    out = s.write(OpCode.createContainer, CreateContainerTxn("/c", b"", OPEN_ACL_UNSAFE, 3))
    _, _, body = wire(out, OpCode.createContainer)
    assert body.stat.ephemeralOwner == 0
    out = s.write(OpCode.setData, SetDataTxn("/a", b"new", 1))
    _, err, body = wire(out, OpCode.setData)
    assert (err, body.stat.version, body.stat.dataLength, body.stat.mzxid) == (0, 1, 3, 5)
    out = s.write(OpCode.setACL, SetACLTxn("/a", ALICE_ONLY, 1))
    _, _, body = wire(out, OpCode.setACL)
    assert body.stat.aversion == 1
    out = s.write(OpCode.check, CheckVersionTxn("/a", 1))
    assert out.err == 0 and out.body.stat == s.tree.nodes["/a"].stat_bytes()
    out = s.write(OpCode.delete, DeleteTxn("/b"))
    assert wire(out, OpCode.delete) == (8, 0, None)
    assert out.result is not None and out.result.path == "/b"


def test_error_txn_reply_and_zxid() -> None:
    s = Server()
    out = s.write(OpCode.error, ErrorTxn(Err.NODEEXISTS))
    assert (out.err, out.body, out.zxid) == (Err.NODEEXISTS, None, 1)
    assert wire(out, OpCode.create) == (1, Err.NODEEXISTS, None)
    # A tree-level failure (replay-style NONODE) also answers its code.
    out = s.write(OpCode.setData, SetDataTxn("/missing", b"", 1))
    assert (out.err, out.body, out.zxid) == (Err.NONODE, None, 2)


def test_multi_reply_success_and_failure() -> None:
    s = Server()
    s.create("/a", b"0")
    out = s.write(
        OpCode.multi,
        MultiTxn(
            (
                (OpCode.create, CreateTxn("/a/b", b"", OPEN_ACL_UNSAFE, False, 1)),
                (OpCode.create2, CreateTxn("/a/c", b"", OPEN_ACL_UNSAFE, False, 2)),
                (OpCode.setData, SetDataTxn("/a", b"1", 1)),
                (OpCode.check, CheckVersionTxn("/a", 1)),
                (OpCode.delete, DeleteTxn("/a/b")),
            )
        ),
    )
    zxid, err, body = wire(out, OpCode.multi)
    assert (zxid, err) == (2, 0)
    kinds = [r[0] for r in body.results]
    assert kinds == [1, 15, 5, 13, 2]
    assert body.results[0][1].path == "/a/b"
    assert body.results[1][1].stat.czxid == 2
    assert body.results[2][1].stat.version == 1
    out = s.write(
        OpCode.multi,
        MultiTxn(
            (
                (OpCode.error, ErrorTxn(0)),
                (OpCode.error, ErrorTxn(Err.BADVERSION)),
                (OpCode.error, ErrorTxn(Err.RUNTIMEINCONSISTENCY)),
            )
        ),
    )
    zxid, err, body = wire(out, OpCode.multi)
    assert err == 0  # a failed multi still answers err 0 in the header
    assert body.results == ((-1, 0), (-1, Err.BADVERSION), (-1, Err.RUNTIMEINCONSISTENCY))


def test_write_events_are_returned() -> None:
    s = Server()
    assert s.read(OpCode.exists, ExistsRequest("/a", True), watcher="w").err == Err.NONODE
    out = s.create("/a")
    assert out.events == [("w", EventType.NodeCreated, "/a")]


def test_close_session_reply() -> None:
    s = Server()
    s.create("/e", session=4, ephemeral=True)
    out = s.write(OpCode.closeSession, CloseSessionTxn(("/e",)), session=4)
    assert (out.err, out.body) == (0, None)
    assert "/e" not in s.tree.nodes


# ---------------------------------------------------------------- reads


def test_get_data_and_watch() -> None:
    s = Server()
    s.create("/a", b"hello")
    zxid, err, body = wire(s.read(OpCode.getData, GetDataRequest("/a", True)), OpCode.getData)
    assert (zxid, err, body.data) == (1, 0, b"hello")
    assert body.stat == s.tree.nodes["/a"].stat()
    out = s.write(OpCode.setData, SetDataTxn("/a", b"x", 1))
    assert out.events == [("c1", EventType.NodeDataChanged, "/a")]
    # NONODE: no watch is left behind.
    assert s.read(OpCode.getData, GetDataRequest("/nope", True)).err == Err.NONODE
    assert s.tree.watch_count() == 0
    # Through the generic dispatch as well (multiRead uses it).
    assert s.final._get_data(GetDataRequest("/a", False), 1, (), "c1")[0] == 0


def test_read_acl_rules() -> None:
    s = Server()
    s.create("/secret", b"s", acl=ALICE_ONLY)
    for op, req in (
        (OpCode.getData, GetDataRequest("/secret", True)),
        (OpCode.getChildren, GetChildrenRequest("/secret", True)),
        (OpCode.getChildren2, GetChildren2Request("/secret", True)),
        (OpCode.getAllChildrenNumber, GetAllChildrenNumberRequest("/secret")),
        (OpCode.getACL, GetACLRequest("/secret")),
    ):
        assert s.read(op, req, (BOB,)).err == Err.NOAUTH, op
        assert s.read(op, req, (ALICE,)).err == 0, op
        assert s.read(op, req, (SUPER_ID,)).err == 0, op
    # Watches were set only by the successful reads.
    assert s.tree.watches.watches_of("c1") == ({"/secret"}, {"/secret"})
    # exists checks no ACL in 3.8.0 ...
    assert s.read(OpCode.exists, ExistsRequest("/secret", False), (BOB,)).err == 0
    # ... unless asked to behave like 3.8.4+.
    s2 = Server(check_exists_acl=True)
    s2.create("/secret", b"s", acl=ALICE_ONLY)
    assert s2.read(OpCode.exists, ExistsRequest("/secret", False), (BOB,)).err == Err.NOAUTH
    # skipACL lets everything through.
    s3 = Server(skip_acl=True)
    s3.create("/secret", b"s", acl=ALICE_ONLY)
    assert s3.read(OpCode.getData, GetDataRequest("/secret", False), ()).err == 0


def test_exists_sets_watch_on_missing_node() -> None:
    s = Server()
    zxid, err, _ = wire(s.read(OpCode.exists, ExistsRequest("/x", True)), OpCode.exists)
    assert err == Err.NONODE
    assert s.tree.watches.watches_of("c1") == ({"/x"}, set())
    _, err, body = wire(s.read(OpCode.exists, ExistsRequest("/", False)), OpCode.exists)
    assert err == 0 and isinstance(body.stat, Stat) and body.stat.cversion == -1
    assert s.read(OpCode.exists, ExistsRequest("/a\0b", True)).err == Err.BADARGUMENTS


def test_get_children_and_children2() -> None:
    s = Server()
    s.create("/a")
    s.create("/a/x")
    s.create("/a/y")
    _, err, body = wire(
        s.read(OpCode.getChildren, GetChildrenRequest("/a", True)), OpCode.getChildren
    )
    assert sorted(body.children) == ["x", "y"]
    _, err, body = wire(
        s.read(OpCode.getChildren2, GetChildren2Request("/a", False)), OpCode.getChildren2
    )
    assert (
        sorted(body.children) == ["x", "y"]
        and body.stat.numChildren == 2
        and body.stat.cversion == 2
    )
    assert s.read(OpCode.getChildren, GetChildrenRequest("/zz", True)).err == Err.NONODE
    out = s.create("/a/z")
    assert out.events == [("c1", EventType.NodeChildrenChanged, "/a")]


def test_get_acl_masks_digest_without_admin() -> None:
    s = Server()
    s.create("/n", acl=ALICE_ADMIN_WORLD_READ)
    _, err, body = wire(s.read(OpCode.getACL, GetACLRequest("/n"), (BOB,)), OpCode.getACL)
    assert err == 0
    assert body.acl == (
        ACL(Perm.ALL, Id("digest", "alice:x")),
        ACL(Perm.READ, Id("world", "anyone")),
    )
    _, _, body = wire(s.read(OpCode.getACL, GetACLRequest("/n"), (ALICE,)), OpCode.getACL)
    assert body.acl == ALICE_ADMIN_WORLD_READ
    assert s.read(OpCode.getACL, GetACLRequest("/none")).err == Err.NONODE
    _, _, body = wire(s.read(OpCode.getACL, GetACLRequest("/zookeeper/config")), OpCode.getACL)
    assert body.acl == (ACL(Perm.READ, Id("world", "anyone")),) and body.stat.aversion == -1
    assert mask_digest_acl((ACL(1, Id("digest", "nocolon")),)) == (ACL(1, Id("digest", "nocolon")),)


def test_get_all_children_number_sync_ephemerals() -> None:
    s = Server()
    s.create("/a")
    s.create("/a/b")
    s.create("/a/b/c")
    s.create("/e1", session=10, ephemeral=True)
    s.create("/a/e2", session=10, ephemeral=True)
    s.create("/e3", session=11, ephemeral=True)
    _, _, body = wire(
        s.read(OpCode.getAllChildrenNumber, GetAllChildrenNumberRequest("/a")),
        OpCode.getAllChildrenNumber,
    )
    assert body.total_number == 3
    assert s.read(OpCode.getAllChildrenNumber, GetAllChildrenNumberRequest("/q")).err == Err.NONODE
    _, _, body = wire(s.read(OpCode.sync, SyncRequest("/a")), OpCode.sync)
    assert body.path == "/a"
    _, _, body = wire(
        s.read(OpCode.getEphemerals, GetEphemeralsRequest("/"), session=10), OpCode.getEphemerals
    )
    assert sorted(body.ephemerals) == ["/a/e2", "/e1"]
    _, _, body = wire(
        s.read(OpCode.getEphemerals, GetEphemeralsRequest("/a"), session=10), OpCode.getEphemerals
    )
    assert body.ephemerals == ("/a/e2",)
    _, _, body = wire(
        s.read(OpCode.getEphemerals, GetEphemeralsRequest(""), session=12), OpCode.getEphemerals
    )
    assert body.ephemerals == ()


def test_multi_read_per_op_results() -> None:
    s = Server()
    s.create("/a", b"A")
    s.create("/s", acl=ALICE_ONLY)
    req = MultiRequest(
        (
            (OpCode.getData, GetDataRequest("/a", False)),
            (OpCode.getChildren, GetChildrenRequest("/", False)),
            (OpCode.getData, GetDataRequest("/missing", False)),
            (OpCode.getData, GetDataRequest("/s", False)),
        )
    )
    _, err, body = wire(s.read(OpCode.multiRead, req), OpCode.multiRead)
    assert err == 0
    assert body.results[0][1].data == b"A"
    assert sorted(body.results[1][1].children) == ["a", "s", "zookeeper"]
    assert body.results[2] == (-1, Err.NONODE)
    assert body.results[3] == (-1, Err.NOAUTH)
    bad = MultiRequest(((OpCode.exists, ExistsRequest("/a", False)),))
    assert s.read(OpCode.multiRead, bad).err == Err.MARSHALLINGERROR


def test_check_remove_add_watches() -> None:
    s = Server()
    s.create("/a")
    assert (
        s.read(OpCode.checkWatches, CheckWatchesRequest("/a", WatcherType.Data)).err
        == Err.NOWATCHER
    )
    s.read(OpCode.getData, GetDataRequest("/a", True))
    assert s.read(OpCode.checkWatches, CheckWatchesRequest("/a", WatcherType.Data)).err == 0
    assert (
        s.read(OpCode.checkWatches, CheckWatchesRequest("/a", WatcherType.Children)).err
        == Err.NOWATCHER
    )
    assert (
        s.read(OpCode.checkWatches, CheckWatchesRequest("/a", WatcherType.Data), watcher="c2").err
        == Err.NOWATCHER
    )
    out = s.read(OpCode.removeWatches, RemoveWatchesRequest("/a", WatcherType.Any))
    assert (out.err, out.body, out.events) == (0, None, [])  # the server sends no removal event
    assert (
        s.read(OpCode.removeWatches, RemoveWatchesRequest("/a", WatcherType.Any)).err
        == Err.NOWATCHER
    )
    out = s.read(OpCode.addWatch, AddWatchRequest("/a", AddWatchMode.PERSISTENT_RECURSIVE))
    _, err, body = wire(out, OpCode.addWatch)
    assert err == 0 and body.err == 0
    assert s.create("/a/deep").events == [("c1", EventType.NodeCreated, "/a/deep")]
    # Bad enum values answer MARSHALLINGERROR, as ZooKeeper's catch-all does.
    assert s.read(OpCode.addWatch, AddWatchRequest("/a", 9)).err == Err.MARSHALLINGERROR
    assert s.read(OpCode.checkWatches, CheckWatchesRequest("/a", 42)).err == Err.MARSHALLINGERROR
    assert s.read(OpCode.removeWatches, RemoveWatchesRequest("/a", 0)).err == Err.MARSHALLINGERROR


def test_set_watches_returns_immediate_events() -> None:
    s = Server()
    s.create("/a")  # zxid 1
    s.create("/b")  # zxid 2
    s.write(OpCode.setData, SetDataTxn("/b", b"x", 1))  # zxid 3
    req = SetWatches(2, ("/a", "/b", "/gone"), ("/a", "/nothere"), ("/",), ("/p",), ())
    out = s.read(OpCode.setWatches2, req)
    assert out.err == 0 and out.body is None and out.zxid == 3
    assert out.events == [
        ("c1", EventType.NodeDataChanged, "/b"),
        ("c1", EventType.NodeDeleted, "/gone"),
        ("c1", EventType.NodeCreated, "/a"),
    ]
    data, child = s.tree.watches.watches_of("c1")
    assert data == {"/a", "/nothere", "/p"} and child == {"/", "/p"}


def test_who_am_i() -> None:
    s = Server()
    ip = Id("ip", "127.0.0.1")
    _, _, body = wire(s.read(OpCode.whoAmI, None, (ip, ALICE)), OpCode.whoAmI)
    assert body.client_info == (("ip", "127.0.0.1"), ("digest", ALICE.id))
    s2 = Server(who_am_i=AuthRegistry().who_am_i)
    _, _, body = wire(s2.read(OpCode.whoAmI, None, (ip, ALICE)), OpCode.whoAmI)
    # The registry lists ids in ZooKeeper's hash-set order (tests/test_auth.py).
    assert set(body.client_info) == {("ip", "127.0.0.1"), ("digest", "alice")}


def test_unknown_and_malformed() -> None:
    s = Server()
    assert s.read(9999, None).err == Err.UNIMPLEMENTED
    assert s.read(OpCode.getChildren, object()).err == Err.MARSHALLINGERROR
    assert s.read(OpCode.sync, None).err == Err.MARSHALLINGERROR


def test_reply_zxid_tracks_tree() -> None:
    s = Server()
    for i in range(3):
        s.create(f"/n{i}")
    assert s.read(OpCode.getData, GetDataRequest("/n0", False)).zxid == 3
    assert s.read(OpCode.getData, GetDataRequest("/zz", False)).zxid == 3


def test_wrong_shaped_records_never_raise() -> None:
    s = Server()
    s.create("/a", ephemeral=True)
    for op in (
        OpCode.getData,
        OpCode.getEphemerals,
        OpCode.exists,
        OpCode.getACL,
        OpCode.setWatches,
    ):
        for bad in (None, object(), GetDataRequest(["unhashable"], True)):  # type: ignore[arg-type]
            out = s.read(op, bad)
            assert out.err in (Err.MARSHALLINGERROR, Err.NONODE, 0), (op, bad, out)
    assert s.read(OpCode.getData, None).err == Err.MARSHALLINGERROR
    assert s.read(OpCode.getEphemerals, GetEphemeralsRequest(7)).err == Err.MARSHALLINGERROR  # type: ignore[arg-type]
