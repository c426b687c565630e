"""prep: batches of dependent requests prepared ahead of the tree, multi all-or-nothing."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from trio_quorum.core.acl import digest_id
from trio_quorum.core.datatree import DataTree
from trio_quorum.core.prep import Prep
from trio_quorum.protocol.consts import Err, OpCode, Perm
from trio_quorum.protocol.data import ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, Id
from trio_quorum.protocol.records import (
    CheckVersionRequest,
    CreateRequest,
    DeleteRequest,
    MultiRequest,
    SetACLRequest,
    SetDataRequest,
)
from trio_quorum.protocol.txn import CloseSessionTxn, CreateTxn, ErrorTxn, MultiTxn, SetDataTxn

SID = 0x200000000000001
OTHER = 0x200000000000002
NOW = 1_700_000_000_000
IP = (Id("ip", "127.0.0.1"),)
OPEN = OPEN_ACL_UNSAFE


def cr(path: str, flags: int = 0, data: bytes = b"", acl: Any = OPEN) -> CreateRequest:
    return CreateRequest(path, data, tuple(acl), flags)


class Batch:
    """Prepare many requests before applying any, then apply them all in order."""

    def __init__(self) -> None:
        self.tree = DataTree()
        self.prep = Prep(self.tree)
        self.pending: list[tuple[Any, Any]] = []

    def prep1(self, op: int, req: Any, sid: int = SID, ids: Any = IP) -> Any:
        out = self.prep.prepare(sid, len(self.pending) + 1, op, req, ids, NOW)
        assert out is not None
        self.pending.append(out)
        return out

    def apply_all(self) -> list[Any]:
        results = [self.tree.apply(h, r) for h, r in self.pending]
        if self.pending:
            self.prep.released(self.pending[-1][0].zxid)
        self.pending.clear()
        return results


def err_of(prepared: Any) -> int:
    hdr, rec = prepared
    return rec.err if hdr.type == -1 else 0


def test_create_parent_then_child_in_one_batch() -> None:
    b = Batch()
    assert err_of(b.prep1(OpCode.create, cr("/a"))) == 0
    assert err_of(b.prep1(OpCode.create, cr("/a/b"))) == 0
    assert err_of(b.prep1(OpCode.create, cr("/a"))) == Err.NODEEXISTS
    assert err_of(b.prep1(OpCode.delete, DeleteRequest("/a", -1))) == Err.NOTEMPTY
    assert [r.err for r in b.apply_all()] == [0, 0, Err.NODEEXISTS, Err.NOTEMPTY]
    assert "/a/b" in b.tree.nodes
    assert b.prep.outstanding() == 0 and not b.prep.by_path


def test_sequential_creates_in_a_row_get_distinct_names() -> None:
    b = Batch()
    b.prep1(OpCode.create, cr("/q"))
    names = [b.prep1(OpCode.create, cr("/q/n-", flags=2))[1].path for _ in range(3)]
    assert names == ["/q/n-0000000000", "/q/n-0000000001", "/q/n-0000000002"]
    b.apply_all()
    assert {"/q/n-0000000000", "/q/n-0000000001", "/q/n-0000000002"} <= set(b.tree.nodes)


def test_delete_then_recreate_and_versions_in_one_batch() -> None:
    b = Batch()
    b.prep1(OpCode.create, cr("/v", data=b"0"))
    assert b.prep1(OpCode.setData, SetDataRequest("/v", b"1", 0))[1] == SetDataTxn("/v", b"1", 1)
    assert b.prep1(OpCode.setData, SetDataRequest("/v", b"2", 1))[1] == SetDataTxn("/v", b"2", 2)
    assert err_of(b.prep1(OpCode.setData, SetDataRequest("/v", b"x", 1))) == Err.BADVERSION
    assert err_of(b.prep1(OpCode.delete, DeleteRequest("/v", 2))) == 0
    assert err_of(b.prep1(OpCode.setData, SetDataRequest("/v", b"x", -1))) == Err.NONODE
    assert err_of(b.prep1(OpCode.create, cr("/v", data=b"new"))) == 0
    assert b.prep1(OpCode.setData, SetDataRequest("/v", b"n1", 0))[1].version == 1
    b.apply_all()
    assert b.tree.nodes["/v"].data == b"n1" and b.tree.nodes["/v"].version == 1


def test_set_acl_governs_requests_queued_behind_it() -> None:
    b = Batch()
    b.prep1(OpCode.create, cr("/p"))
    b.prep1(OpCode.setACL, SetACLRequest("/p", READ_ACL_UNSAFE, -1))
    assert err_of(b.prep1(OpCode.create, cr("/p/c"))) == Err.NOAUTH
    assert err_of(b.prep1(OpCode.setACL, SetACLRequest("/p", OPEN, 0))) == Err.NOAUTH
    b.apply_all()
    assert "/p/c" not in b.tree.nodes


def test_ephemeral_parent_pending() -> None:
    b = Batch()
    b.prep1(OpCode.create, cr("/e", flags=1))
    assert err_of(b.prep1(OpCode.create, cr("/e/x"))) == Err.NOCHILDRENFOREPHEMERALS


def test_close_session_sees_pending_ephemerals_and_deletes() -> None:
    b = Batch()
    b.prep1(OpCode.create, cr("/applied", flags=1))
    b.prep1(OpCode.create, cr("/gone", flags=1))
    b.apply_all()
    b.prep1(OpCode.create, cr("/pending", flags=3))
    b.prep1(OpCode.delete, DeleteRequest("/gone", -1))
    b.prep1(OpCode.create, cr("/theirs", flags=1), sid=OTHER)
    hdr, rec = b.prep1(OpCode.closeSession, None)
    assert rec == CloseSessionTxn(("/applied", "/pending0000000002"))
    # Behind the close, prep already sees those nodes gone and the root's count right.
    assert err_of(b.prep1(OpCode.setData, SetDataRequest("/applied", b"", -1))) == Err.NONODE
    assert err_of(b.prep1(OpCode.create, cr("/applied"))) == 0
    b.apply_all()
    assert "/pending0000000002" not in b.tree.nodes and "/theirs" in b.tree.nodes
    assert "/applied" in b.tree.nodes and b.tree.nodes["/applied"].ephemeral_owner == 0


def test_multi_success_shares_one_zxid() -> None:
    b = Batch()
    hdr, rec = b.prep1(
        OpCode.multi,
        MultiRequest(
            (
                (OpCode.create, cr("/m", data=b"0")),
                (OpCode.create, cr("/m/s-", flags=2)),
                (OpCode.create, cr("/m/s-", flags=2)),
                (OpCode.setData, SetDataRequest("/m", b"1", 0)),
                (OpCode.check, CheckVersionRequest("/m", 1)),
                (OpCode.delete, DeleteRequest("/m/s-0000000000", -1)),
            )
        ),
    )
    assert hdr.type == OpCode.multi and hdr.zxid == 1 and b.prep.last_zxid == 1
    assert isinstance(rec, MultiTxn)
    assert [t for t, _ in rec.txns] == [1, 1, 1, 5, 13, 2]
    assert rec.txns[2][1] == CreateTxn("/m/s-0000000001", b"", OPEN, False, 2)
    res = b.apply_all()[0]
    assert res.err == 0 and [r.err for r in res.multi] == [0] * 6
    assert set(b.tree.nodes) >= {"/m", "/m/s-0000000001"} and "/m/s-0000000000" not in b.tree.nodes


def test_multi_failure_is_all_or_nothing_and_rolls_back_changes() -> None:
    b = Batch()
    b.prep1(OpCode.create, cr("/x", data=b"0"))  # pending, not applied
    before = (b.prep.outstanding(), dict(b.prep.by_path))
    hdr, rec = b.prep1(
        OpCode.multi,
        MultiRequest(
            (
                (OpCode.create, cr("/x/a")),
                (OpCode.setData, SetDataRequest("/x", b"1", -1)),
                (OpCode.create, cr("/x/s", flags=2)),
                (OpCode.check, CheckVersionRequest("/x", 0)),  # version is 1 by now: fails
                (OpCode.delete, DeleteRequest("/x", -1)),
            )
        ),
    )
    assert hdr.type == OpCode.multi and hdr.zxid == 2
    assert rec == MultiTxn(
        (
            (-1, ErrorTxn(0)),
            (-1, ErrorTxn(0)),
            (-1, ErrorTxn(0)),
            (-1, ErrorTxn(Err.BADVERSION)),
            (-1, ErrorTxn(Err.RUNTIMEINCONSISTENCY)),
        )
    )
    assert (b.prep.outstanding(), dict(b.prep.by_path)) == before
    # Requests behind the failed multi see the state before it.
    assert b.prep1(OpCode.create, cr("/x/s", flags=2))[1].path == "/x/s0000000000"
    assert b.prep1(OpCode.setData, SetDataRequest("/x", b"1", 0))[1].version == 1
    res = b.apply_all()
    assert [r.err for r in res[1].multi] == [0, 0, 0, Err.BADVERSION, Err.RUNTIMEINCONSISTENCY]
    assert "/x/a" not in b.tree.nodes and "/x/s0000000000" in b.tree.nodes


def test_multi_with_a_read_op_is_refused_whole() -> None:
    b = Batch()
    hdr, rec = b.prep1(
        OpCode.multi, MultiRequest(((OpCode.create, cr("/y")), (OpCode.getData, None)))
    )
    assert hdr.type == -1 and rec == ErrorTxn(Err.MARSHALLINGERROR)
    assert b.prep.outstanding() == 0


def test_empty_multi() -> None:
    b = Batch()
    hdr, rec = b.prep1(OpCode.multi, MultiRequest(()))
    assert hdr.type == OpCode.multi and rec == MultiTxn(())


def test_released_keeps_newer_records() -> None:
    b = Batch()
    b.prep1(OpCode.create, cr("/r"))
    first = list(b.pending)
    b.prep1(OpCode.setData, SetDataRequest("/r", b"1", -1))
    b.tree.apply(*first[0])
    assert b.prep.released(first[0][0].zxid) == 2  # the root's and /r's create records
    assert b.prep.by_path["/r"].version == 1  # the setData's record stays until applied
    assert err_of(b.prep1(OpCode.setData, SetDataRequest("/r", b"2", 1))) == 0


# ----------------------------------------------------------------------- property

PATHS = ["/a", "/b", "/a/c", "/a/c/f", "/a/", "/nope/x"]
ALICE = Id("digest", digest_id("alice:pw"))
IDS = [IP, IP + (ALICE,)]
ACLS = [
    OPEN,
    READ_ACL_UNSAFE,
    (ACL(Perm.ALL, ALICE),),
    (ACL(Perm.ALL & ~Perm.CREATE, Id("world", "anyone")),),
]
p_ = st.sampled_from(PATHS)
v_ = st.sampled_from([-1, 0, 1, 2])
d_ = st.sampled_from([b"", b"x", b"yy"])
create_ = st.builds(
    lambda p, f, d, a: (OpCode.create, cr(p, f, d, a)),
    p_,
    st.sampled_from([0, 0, 1, 2, 3]),
    d_,
    st.sampled_from(ACLS),
)
single = st.one_of(
    create_,
    create_,
    create_,
    st.builds(lambda p, v: (OpCode.delete, DeleteRequest(p, v)), p_, v_),
    st.builds(lambda p, d, v: (OpCode.setData, SetDataRequest(p, d, v)), p_, d_, v_),
    st.builds(
        lambda p, a, v: (OpCode.setACL, SetACLRequest(p, a, v)), p_, st.sampled_from(ACLS), v_
    ),
    st.builds(lambda p, v: (OpCode.check, CheckVersionRequest(p, v)), p_, v_),
)
request = st.one_of(
    single,
    st.builds(lambda ops: (OpCode.multi, MultiRequest(tuple(ops))), st.lists(single, max_size=4)),
    st.just((OpCode.closeSession, None)),
)
step = st.tuples(request, st.sampled_from([SID, OTHER]), st.sampled_from(IDS))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(step, min_size=4, max_size=30),
    st.lists(st.integers(0, 5).map(lambda x: x == 0), max_size=30),
)
def test_prepared_ahead_equals_prepared_after_apply(steps: list[Any], flush: list[bool]) -> None:
    """Outstanding changes make prep's answers independent of how far the tree got."""
    eager_tree, lazy_tree = DataTree(), DataTree()
    eager, lazy = Prep(eager_tree), Prep(lazy_tree)
    eager_txns, lazy_txns = [], []
    pending: list[Any] = []
    for i, ((op, req), sid, ids) in enumerate(steps):
        e = eager.prepare(sid, i, op, req, ids, NOW)
        assert e is not None
        eager_tree.apply(*e)
        eager.released(e[0].zxid)
        eager_txns.append(e)
        lz = lazy.prepare(sid, i, op, req, ids, NOW)
        assert lz is not None
        lazy_txns.append(lz)
        pending.append(lz)
        if i < len(flush) and flush[i]:  # the lazy tree catches up at random points
            for t in pending:
                lazy_tree.apply(*t)
            lazy.released(pending[-1][0].zxid)
            pending.clear()
    for t in pending:
        lazy_tree.apply(*t)
    if pending:
        lazy.released(pending[-1][0].zxid)
    assert lazy_txns == eager_txns
    assert lazy_tree.dump() == eager_tree.dump()
    assert lazy.outstanding() == 0 and not lazy.by_path
