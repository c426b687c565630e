"""prep: write requests -> txns, every error ZooKeeper returns per op, applied to the real DataTree."""

from __future__ import annotations

from typing import Any

import pytest

from trio_quorum.core.acl import digest_id
from trio_quorum.core.auth import AuthRegistry
from trio_quorum.core.datatree import DataTree
from trio_quorum.core.prep import Prep
from trio_quorum.core.sessions import SessionTracker
from trio_quorum.protocol.consts import EPHEMERAL_CONTAINER, MAX_TTL, Err, OpCode, Perm
from trio_quorum.protocol.data import (
    ACL,
    CREATOR_ALL_ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    Id,
    ttl_owner,
)
from trio_quorum.protocol.records import (
    CheckVersionRequest,
    CreateRequest,
    CreateTTLRequest,
    DeleteRequest,
    MultiRequest,
    SetACLRequest,
    SetDataRequest,
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
    SetACLTxn,
    SetDataTxn,
    TxnHeader,
)

SID = 0x100000000000001
OTHER = 0x100000000000002
NOW = 1_700_000_000_000
IP = [Id("ip", "127.0.0.1")]
BOB = Id("digest", digest_id("bob:pw"))
ALICE = Id("digest", digest_id("alice:pw"))
OPEN = OPEN_ACL_UNSAFE


class Harness:
    def __init__(self, **kw: Any) -> None:
        self.tree = DataTree()
        self.prep = Prep(self.tree, **kw)
        self.cxid = 0

    def prepare(self, op: int, req: Any, ids: Any = IP, sid: int = SID) -> tuple[TxnHeader, Any]:
        self.cxid += 1
        out = self.prep.prepare(sid, self.cxid, op, req, ids, NOW)
        assert out is not None
        return out

    def apply(self, hdr: TxnHeader, rec: Any) -> Any:
        r = self.tree.apply(hdr, rec)
        self.prep.released(hdr.zxid)
        return r

    def run(self, op: int, req: Any, ids: Any = IP, sid: int = SID) -> tuple[TxnHeader, Any]:
        hdr, rec = self.prepare(op, req, ids, sid)
        self.apply(hdr, rec)
        return hdr, rec

    def err(self, op: int, req: Any, ids: Any = IP, sid: int = SID) -> int:
        hdr, rec = self.run(op, req, ids, sid)
        if hdr.type == -1:
            assert isinstance(rec, ErrorTxn)
            return rec.err
        return 0

    def create(
        self, path: str, data: bytes = b"", acl: Any = OPEN, flags: int = 0, **kw: Any
    ) -> str:
        hdr, rec = self.run(OpCode.create, CreateRequest(path, data, tuple(acl), flags), **kw)
        assert hdr.type == OpCode.create, rec
        return rec.path


def cr(path: str, flags: int = 0, acl: Any = OPEN, data: bytes = b"") -> CreateRequest:
    return CreateRequest(path, data, tuple(acl), flags)


# --------------------------------------------------------------------- success paths


def test_create_produces_create_txn_and_tree_agrees() -> None:
    h = Harness()
    hdr, rec = h.run(OpCode.create, cr("/a", data=b"x"))
    assert hdr == TxnHeader(SID, 1, 1, NOW, OpCode.create)
    assert rec == CreateTxn("/a", b"x", OPEN, False, 1)
    assert h.tree.nodes["/a"].data == b"x"
    assert h.prep.outstanding() == 0  # released after apply


def test_create2_container_ttl_and_ephemeral_owners() -> None:
    h = Harness(extended_types=True)
    hdr, rec = h.run(OpCode.create2, cr("/e", flags=1))
    assert hdr.type == OpCode.create2 and rec == CreateTxn("/e", b"", OPEN, True, 1)
    assert h.tree.nodes["/e"].ephemeral_owner == SID
    hdr, rec = h.run(OpCode.createContainer, cr("/c", flags=4))
    assert isinstance(rec, CreateContainerTxn)
    assert h.tree.nodes["/c"].ephemeral_owner == EPHEMERAL_CONTAINER
    hdr, rec = h.run(OpCode.createTTL, CreateTTLRequest("/t", b"", OPEN, 5, 1000))
    assert rec == CreateTTLTxn("/t", b"", OPEN, 3, 1000)
    assert h.tree.nodes["/t"].ephemeral_owner == ttl_owner(1000)


def test_sequential_names_use_persisted_cversion() -> None:
    h = Harness()
    h.create("/q")
    h.create("/q/x")  # a plain create advances cversion too
    h.run(OpCode.delete, DeleteRequest("/q/x", -1))  # a delete does not
    assert h.create("/q/n-", flags=2) == "/q/n-0000000001"
    assert h.create("/q/n-", flags=2) == "/q/n-0000000002"
    # A sequential create of "/q/" names the node by the suffix alone.
    assert h.create("/q/", flags=2) == "/q/0000000003"


def test_sequential_suffix_wraps_like_java_int() -> None:
    h = Harness()
    h.create("/w")
    h.tree.nodes["/w"].cversion = 2**31 - 1
    first = h.prepare(OpCode.create, cr("/w/s", flags=2))
    second = h.prepare(OpCode.create, cr("/w/s", flags=2))  # pipelined behind the first
    assert first[1].path == "/w/s2147483647"
    assert second[1].path == "/w/s-2147483648"  # parent cversion wrapped to Integer.MIN_VALUE
    assert second[1].parent_cversion == -(2**31) + 1
    h.apply(*first)
    h.apply(*second)
    assert {"/w/s2147483647", "/w/s-2147483648"} <= set(h.tree.nodes)
    # The tree (like ZooKeeper's) only moves cversion forwards, so it is stuck at
    # Integer.MAX_VALUE and the next sequential name collides.
    assert h.err(OpCode.create, cr("/w/s", flags=2)) == Err.NODEEXISTS


def test_set_data_delete_set_acl_check() -> None:
    h = Harness()
    h.create("/a", b"1")
    hdr, rec = h.run(OpCode.setData, SetDataRequest("/a", b"2", 0))
    assert (hdr.type, rec) == (OpCode.setData, SetDataTxn("/a", b"2", 1))
    assert h.tree.nodes["/a"].version == 1
    hdr, rec = h.run(OpCode.setACL, SetACLRequest("/a", READ_ACL_UNSAFE + OPEN, 0))
    assert rec == SetACLTxn("/a", READ_ACL_UNSAFE + OPEN, 1)
    hdr, rec = h.run(OpCode.check, CheckVersionRequest("/a", 1))
    # 3.8.0 prepares a standalone check as a check txn (version + 1, as ZooKeeper stores it).
    assert (hdr.type, rec) == (OpCode.check, CheckVersionTxn("/a", 2))
    hdr, rec = h.run(OpCode.delete, DeleteRequest("/a", 1))
    assert (hdr.type, rec) == (OpCode.delete, DeleteTxn("/a"))
    assert "/a" not in h.tree.nodes


def test_zxids_are_consumed_by_failures_too() -> None:
    h = Harness()
    z = [
        h.run(OpCode.create, cr("/nope/x"))[0].zxid,
        h.run(OpCode.create, cr("/a"))[0].zxid,
        h.run(OpCode.multi, MultiRequest(((OpCode.delete, DeleteRequest("/zz", -1)),)))[0].zxid,
    ]
    assert z == [1, 2, 3]
    assert h.tree.last_processed_zxid == 3


def test_counter_start_and_reset() -> None:
    tree = DataTree()
    tree.last_processed_zxid = 41
    p = Prep(tree)
    hdr, _ = p.prepare(SID, 1, OpCode.create, cr("/a"), IP, NOW)
    assert hdr.zxid == 42 and p.outstanding() == 2
    p.reset(5 << 32)
    assert p.outstanding() == 0
    hdr, _ = p.prepare(SID, 2, OpCode.create, cr("/a"), IP, NOW)
    assert hdr.zxid == (5 << 32) + 1


def test_session_txns() -> None:
    h = Harness()
    hdr, rec = h.run(OpCode.createSession, 30000)
    assert (hdr.type, rec) == (OpCode.createSession, CreateSessionTxn(30000))
    h.create("/e1", flags=1)
    h.create("/e2", flags=3)
    h.create("/p")
    h.create("/o", flags=1, sid=OTHER)
    hdr, rec = h.run(OpCode.closeSession, None)
    assert hdr.type == OpCode.closeSession
    assert rec == CloseSessionTxn(("/e1", "/e20000000001"))
    assert set(h.tree.nodes) >= {"/p", "/o"} and "/e1" not in h.tree.nodes


def test_reads_make_no_txn_and_unknown_ops_are_refused() -> None:
    h = Harness()
    assert h.prep.prepare(SID, 1, OpCode.getData, object(), IP, NOW) is None
    assert h.prep.last_zxid == 0
    with pytest.raises(Exception) as ei:
        h.prep.prepare(SID, 1, 77, object(), IP, NOW)
    assert getattr(ei.value, "code", None) == Err.UNIMPLEMENTED
    hdr, rec = h.prepare(OpCode.reconfig, object())
    assert hdr.type == -1 and rec == ErrorTxn(Err.RECONFIGDISABLED)


def test_mismatched_record_is_marshalling_error() -> None:
    h = Harness()
    for op in (
        OpCode.create,
        OpCode.delete,
        OpCode.setData,
        OpCode.setACL,
        OpCode.check,
        OpCode.createTTL,
        OpCode.multi,
        OpCode.createSession,
    ):
        hdr, rec = h.prepare(op, "garbage")
        assert hdr.type == -1 and rec == ErrorTxn(Err.MARSHALLINGERROR), op


# --------------------------------------------------------------------- errors, per op


def acl_tree() -> Harness:
    """/open (world all), /ro (world read), /bob (bob all), /eph (ephemeral of SID), /full (a child)."""
    h = Harness(auth=AuthRegistry(super_digest=digest_id("super:su")))
    h.create("/open")
    h.create("/ro", acl=READ_ACL_UNSAFE)
    h.create("/bob", acl=[ACL(Perm.ALL, BOB)])
    h.create("/eph", flags=1)
    h.create("/full")
    h.create("/full/kid")
    return h


CREATE_ERRORS = [
    # (request, ids, expected)
    (cr("/open/x", flags=7), IP, Err.BADARGUMENTS),  # no such CreateMode
    (cr("/open/x", flags=-1), IP, Err.BADARGUMENTS),
    (cr("open"), IP, Err.BADARGUMENTS),  # no slash at all
    (cr("/open/x\x00"), IP, Err.BADARGUMENTS),
    (cr("/open/."), IP, Err.BADARGUMENTS),  # parent found, full path invalid
    (cr("/open/"), IP, Err.BADARGUMENTS),  # trailing slash, not sequential
    (cr("/open/\U0001f600"), IP, Err.BADARGUMENTS),
    (cr("/open/x", acl=[]), IP, Err.INVALIDACL),
    (cr("/open/x", acl=CREATOR_ALL_ACL), IP, Err.INVALIDACL),  # auth with only an ip id
    (cr("/open/x", acl=[ACL(Perm.ALL, Id("world", "nobody"))]), IP, Err.INVALIDACL),
    (cr("/open/x", acl=[ACL(Perm.ALL, Id("digest", "bob"))]), IP, Err.INVALIDACL),
    (cr("/open/x", acl=[ACL(Perm.ALL, Id("ip", "1.2.3.4/40"))]), IP, Err.INVALIDACL),
    (cr("/open/x", acl=[ACL(Perm.ALL, Id("super", ""))]), IP, Err.INVALIDACL),
    (cr("/open/x", acl=[ACL(Perm.ALL, Id("nosuch", "x"))]), IP, Err.INVALIDACL),
    (cr("/missing/x"), IP, Err.NONODE),
    (cr("/open//x"), IP, Err.NONODE),  # parent "/open/" is looked up before the path check
    (cr("/ro/x"), IP, Err.NOAUTH),
    (cr("/bob/x"), IP, Err.NOAUTH),
    (cr("/bob/x"), IP + [ALICE], Err.NOAUTH),
    (cr("/open"), IP, Err.NODEEXISTS),
    (cr("/"), IP, Err.NODEEXISTS),
    (cr("/zookeeper"), IP, Err.NODEEXISTS),
    (cr("/eph/x"), IP, Err.NOCHILDRENFOREPHEMERALS),
    (cr("/eph/x", flags=2), IP, Err.NOCHILDRENFOREPHEMERALS),
    (CreateTTLRequest("/open/t", b"", OPEN, 5, 100), IP, Err.UNIMPLEMENTED),  # extended types off
]


@pytest.mark.parametrize(("req", "ids", "code"), CREATE_ERRORS)
def test_create_errors(req: Any, ids: Any, code: Err) -> None:
    h = acl_tree()
    before = dict(h.tree.nodes)
    op = OpCode.createTTL if isinstance(req, CreateTTLRequest) else OpCode.create
    assert h.err(op, req, ids) == code
    assert h.tree.nodes == before


@pytest.mark.parametrize(
    ("req", "code"),
    [
        (CreateTTLRequest("/t", b"", OPEN, 5, 0), Err.BADARGUMENTS),
        (CreateTTLRequest("/t", b"", OPEN, 6, -5), Err.BADARGUMENTS),
        (CreateTTLRequest("/t", b"", OPEN, 5, MAX_TTL + 1), Err.BADARGUMENTS),
        (CreateTTLRequest("/t", b"", OPEN, 0, 100), Err.BADARGUMENTS),  # ttl on a non-TTL mode
        (CreateTTLRequest("/t", b"", OPEN, 0, -1), Err.BADARGUMENTS),
        (CreateRequest("/t", b"", OPEN, 5), Err.BADARGUMENTS),  # TTL mode through plain create
    ],
)
def test_ttl_errors(req: Any, code: Err) -> None:
    h = Harness(extended_types=True)
    op = OpCode.createTTL if isinstance(req, CreateTTLRequest) else OpCode.create
    assert h.err(op, req) == code
    hdr, rec = h.run(OpCode.createTTL, CreateTTLRequest("/ok", b"", OPEN, 6, MAX_TTL))
    assert rec.path == "/ok0000000000"


def test_extended_types_make_ttl_parents_not_ephemeral() -> None:
    h = Harness(extended_types=True)
    h.run(OpCode.createTTL, CreateTTLRequest("/t", b"", OPEN, 5, 100))
    h.create("/t/child")  # a TTL node may have children
    h.create("/c", flags=0)
    h.run(OpCode.createContainer, cr("/k", flags=4))
    h.create("/k/child")


def test_create_error_precedence() -> None:
    h = acl_tree()
    # INVALIDACL (fixupACL) comes before the parent lookup...
    assert h.err(OpCode.create, cr("/missing/x", acl=[])) == Err.INVALIDACL
    # ...NONODE before NOAUTH is impossible to mix; NOAUTH before NODEEXISTS:
    h.create("/ro2", acl=OPEN)
    h.create("/ro2/x")
    h.run(OpCode.setACL, SetACLRequest("/ro2", READ_ACL_UNSAFE, -1))
    assert h.err(OpCode.create, cr("/ro2/x")) == Err.NOAUTH
    # NODEEXISTS before NOCHILDRENFOREPHEMERALS is moot (ephemerals have no kids), but the
    # sequential suffix is computed before the exists check:
    h.create("/s")
    h.create("/s/n0000000001")  # cversion is now 1: the next sequential create collides
    assert h.err(OpCode.create, cr("/s/n", flags=2)) == Err.NODEEXISTS


DELETE_ERRORS = [
    (DeleteRequest("open", -1), IP, Err.BADARGUMENTS),
    (DeleteRequest("/", -1), IP, Err.BADARGUMENTS),
    (DeleteRequest("/zookeeper", -1), IP, Err.BADARGUMENTS),
    (DeleteRequest("/zookeeper/quota", -1), IP, Err.BADARGUMENTS),
    (DeleteRequest("/zookeeper/config", -1), IP, Err.BADARGUMENTS),
    (DeleteRequest("/open\x00", -1), IP, Err.BADARGUMENTS),
    (DeleteRequest("/missing/x", -1), IP, Err.NONODE),
    (DeleteRequest("/open/x", -1), IP, Err.NONODE),
    (DeleteRequest("/open", 3), IP, Err.BADVERSION),
    (DeleteRequest("/full", -1), IP, Err.NOTEMPTY),
]


@pytest.mark.parametrize(("req", "ids", "code"), DELETE_ERRORS)
def test_delete_errors(req: Any, ids: Any, code: Err) -> None:
    h = acl_tree()
    before = dict(h.tree.nodes)
    assert h.err(OpCode.delete, req, ids) == code
    assert h.tree.nodes == before


def test_delete_needs_delete_on_parent() -> None:
    h = Harness()
    h.create("/p")
    h.create("/p/c")
    h.run(
        OpCode.setACL,
        SetACLRequest("/p", (ACL(Perm.ALL & ~Perm.DELETE, Id("world", "anyone")),), -1),
    )
    assert h.err(OpCode.delete, DeleteRequest("/p/c", -1)) == Err.NOAUTH
    # NOAUTH is checked before the node's own existence and version.
    assert h.err(OpCode.delete, DeleteRequest("/p/zz", 5)) == Err.NOAUTH


SET_DATA_ERRORS = [
    (SetDataRequest("open", b"", -1), IP, Err.BADARGUMENTS),
    (SetDataRequest("/open/", b"", -1), IP, Err.BADARGUMENTS),
    (SetDataRequest("/nope", b"", -1), IP, Err.NONODE),
    (SetDataRequest("/ro", b"", -1), IP, Err.NOAUTH),
    (SetDataRequest("/bob", b"", -1), IP + [ALICE], Err.NOAUTH),
    (SetDataRequest("/open", b"", 1), IP, Err.BADVERSION),
    (SetDataRequest("/ro", b"", 9), IP, Err.NOAUTH),  # ACL before version
]


@pytest.mark.parametrize(("req", "ids", "code"), SET_DATA_ERRORS)
def test_set_data_errors(req: Any, ids: Any, code: Err) -> None:
    h = acl_tree()
    assert h.err(OpCode.setData, req, ids) == code


SET_ACL_ERRORS = [
    (SetACLRequest("/open/", OPEN, -1), IP, Err.BADARGUMENTS),
    (SetACLRequest("/open", (), -1), IP, Err.INVALIDACL),
    (SetACLRequest("/nope", (), -1), IP, Err.INVALIDACL),  # fixupACL before NONODE
    (SetACLRequest("/nope", OPEN, -1), IP, Err.NONODE),
    (SetACLRequest("/ro", OPEN, -1), IP, Err.NOAUTH),
    (SetACLRequest("/open", OPEN, 4), IP, Err.BADVERSION),
]


@pytest.mark.parametrize(("req", "ids", "code"), SET_ACL_ERRORS)
def test_set_acl_errors(req: Any, ids: Any, code: Err) -> None:
    h = acl_tree()
    assert h.err(OpCode.setACL, req, ids) == code


CHECK_ERRORS = [
    (CheckVersionRequest("x", -1), Err.BADARGUMENTS),
    (CheckVersionRequest("/nope", -1), Err.NONODE),
    (CheckVersionRequest("/bob", -1), Err.NOAUTH),
    (CheckVersionRequest("/open", 2), Err.BADVERSION),
]


@pytest.mark.parametrize(("req", "code"), CHECK_ERRORS)
def test_check_errors(req: Any, code: Err) -> None:
    assert acl_tree().err(OpCode.check, req) == code


def test_digest_user_and_super_pass_acls() -> None:
    h = acl_tree()
    assert h.err(OpCode.setData, SetDataRequest("/bob", b"x", -1), IP + [BOB]) == 0
    su = AuthRegistry(super_digest=digest_id("super:su")).authenticate("digest", b"super:su")
    assert h.err(OpCode.setData, SetDataRequest("/ro", b"x", -1), IP + su) == 0
    assert h.err(OpCode.create, cr("/bob/kid"), IP + su) == 0


def test_skip_acl() -> None:
    h = Harness(skip_acl=True)
    h.create("/ro", acl=READ_ACL_UNSAFE)
    assert h.err(OpCode.setData, SetDataRequest("/ro", b"x", -1)) == 0


def test_auth_acl_expands_to_authenticated_ids_only() -> None:
    h = Harness()
    hdr, rec = h.run(OpCode.create, cr("/mine", acl=CREATOR_ALL_ACL), IP + [BOB, ALICE])
    assert rec.acl == (ACL(Perm.ALL, BOB), ACL(Perm.ALL, ALICE))
    assert h.tree.get_acl(h.tree.nodes["/mine"]) == rec.acl
    # Duplicates are dropped before expansion (ZOOKEEPER-1877).
    hdr, rec = h.run(OpCode.create, cr("/dup", acl=OPEN + OPEN + READ_ACL_UNSAFE))
    assert rec.acl == OPEN + READ_ACL_UNSAFE


def test_session_checks() -> None:
    tracker = SessionTracker(1, now=0)
    sid = tracker.create_session(10_000, now=0)
    h = Harness(sessions=tracker)
    assert h.err(OpCode.create, cr("/a"), sid=sid) == 0
    assert h.err(OpCode.create, cr("/b"), sid=12345) == Err.UNKNOWNSESSION
    tracker.check_session(sid, owner="c1")
    hdr, rec = h.prep.prepare(
        sid, 9, OpCode.setData, SetDataRequest("/a", b"", -1), IP, NOW, owner="c2"
    )
    assert rec == ErrorTxn(Err.SESSIONMOVED)
    with pytest.raises(Exception) as ei:
        h.prep.prepare(sid, 9, OpCode.getData, None, IP, NOW, owner="c2")
    assert getattr(ei.value, "code", None) == Err.SESSIONMOVED
    hdr, rec = h.prep.prepare(sid, 10, OpCode.closeSession, None, IP, NOW, owner="c1")
    assert hdr.type == OpCode.closeSession and tracker.is_closing(sid)
    hdr, rec = h.prep.prepare(sid, 11, OpCode.create, cr("/c"), IP, NOW, owner="c1")
    assert rec == ErrorTxn(Err.SESSIONEXPIRED)


def test_quota_hard_limits_only_when_enforced() -> None:
    for enforce in (False, True):
        h = Harness(enforce_quota=enforce)
        h.create("/q")
        h.create("/zookeeper/quota/q")
        h.create(
            "/zookeeper/quota/q/zookeeper_limits",
            b"count=-1,bytes=-1,countHardLimit=2,byteHardLimit=10",
        )
        h.create("/zookeeper/quota/q/zookeeper_stats", b"count=1,bytes=0")
        assert h.err(OpCode.create, cr("/q/a", data=b"12345")) == 0  # count 2, bytes 5
        want = Err.QUOTAEXCEEDED if enforce else 0
        assert h.err(OpCode.create, cr("/q/b")) == want  # count would be 3
        assert h.err(OpCode.setData, SetDataRequest("/q/a", b"1234567890x", -1)) == want
        assert h.err(OpCode.setData, SetDataRequest("/q/a", b"123", -1)) == 0
        # Soft limits (count/bytes) only log in ZooKeeper; they never refuse.
        h.run(
            OpCode.setData,
            SetDataRequest("/zookeeper/quota/q/zookeeper_limits", b"count=1,bytes=1", -1),
        )
        assert h.err(OpCode.create, cr("/q/c", data=b"xx")) == 0


def test_delete_container() -> None:
    h = Harness()
    h.run(OpCode.createContainer, cr("/k", flags=4))
    h.create("/k/c")
    h.create("/e", flags=1)
    assert h.err(OpCode.deleteContainer, "/k") == Err.NOTEMPTY
    assert h.err(OpCode.deleteContainer, "/e") == Err.BADVERSION  # never a session's ephemeral
    assert h.err(OpCode.deleteContainer, "/nope") == Err.NONODE
    h.run(OpCode.delete, DeleteRequest("/k/c", -1))
    hdr, rec = h.run(OpCode.deleteContainer, "/k")
    assert (hdr.type, rec) == (OpCode.deleteContainer, DeleteTxn("/k"))
    assert "/k" not in h.tree.nodes
