"""The write path's hot writes in prep, the tree and final give what the general code gives.

setData and create are tested first in ``Prep.prepare``, ``DataTree.apply``
and ``Final.write``/``write_frame``, which then call the very function (or
table entry) the general lookup would find: the first test checks that
identity.  The others run the same random sequence of setData / create /
create2 (and a few other ops) twice, once as the server does and once
through the general code, and compare every result and the complete state
after each step:

* ``Prep.prepare`` (a write's TxnHeader and the SetDataTxn/CreateTxn made by
  storing their slots) against the ``_OPS`` table's builder with
  ``TxnHeader(...)``; ``Prep.released`` dropping everything at once against
  releasing one zxid at a time.
* ``DataTree.apply`` of a txn against the same txn as the sub-txn of a
  multi (the multi's applier goes back through apply), with and without
  quotas, data/child watches and an ACL filter.
* ``Final.write`` (bodies made with ``_new`` + the slot setter) against
  ``Final._outcome`` of an apply (bodies made by their class), and
  ``Final.write_frame`` (Stat/path bodies encoded straight from the result)
  against ``encode_reply`` of ``Final.write``.
"""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from trio_quorum.core import datatree, final, prep
from trio_quorum.core.datatree import ApplyResult, DataTree
from trio_quorum.core.final import Final
from trio_quorum.core.prep import _OPS, ERROR_TYPE, ChangeRecord, Prep
from trio_quorum.core.sessions import SessionTracker
from trio_quorum.protocol.consts import KeeperError, OpCode
from trio_quorum.protocol.data import ACL, CREATOR_ALL_ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, Id
from trio_quorum.protocol.records import CreateRequest, DeleteRequest, SetDataRequest, encode_reply
from trio_quorum.protocol.txn import (
    CreateTxn,
    DeleteTxn,
    ErrorTxn,
    MultiTxn,
    SetDataTxn,
    TxnHeader,
    TxnRecord,
)

SID = 0x100000000000001
NOW = 1_700_000_000_000
PATHS = ["/a", "/a/b", "/a/b/c", "/x", "/a/x", "/zookeeper/quota/a/zookeeper_limits", "/a/"]
_SET, _CREATE, _CREATE2, _DELETE = int(OpCode.setData), int(OpCode.create), int(OpCode.create2), int(OpCode.delete)
_MULTI = int(OpCode.multi)
DIGEST = Id("digest", "u:x")

_ops = st.lists(
    st.tuples(
        st.sampled_from(["set", "create", "create2", "delete", "watch", "cwatch"]),
        st.integers(0, len(PATHS) - 1),
        st.one_of(st.just(b""), st.binary(max_size=8)),
        st.integers(-1, 3),  # version (set/delete) or flags (create)
        st.sampled_from([OPEN_ACL_UNSAFE] * 4 + [READ_ACL_UNSAFE, CREATOR_ALL_ACL, (ACL(31, DIGEST),)]),
    ),
    max_size=40,
)


def test_hot_writes_take_the_table_entries() -> None:
    """The setData/create shortcuts skip only the lookup, never the table's code."""
    assert datatree._apply_set_data is datatree._APPLIERS[_SET][1]
    assert datatree._apply_create is datatree._APPLIERS[_CREATE][1] is datatree._APPLIERS[_CREATE2][1]
    assert prep._set_data is prep._OPS[_SET] and prep._create is prep._OPS[_CREATE]
    assert final._SET_DATA_BODY is final._LONE_BODY[_SET] and final._CREATE_BODY is final._LONE_BODY[_CREATE]


def _rc_fields(rc: ApplyResult) -> tuple[Any, ...]:
    return tuple(getattr(rc, s) for s in ApplyResult.__slots__ if s != "multi") + (rc.multi is None,)


def _tree_state(t: DataTree) -> tuple[Any, ...]:
    return (
        t.dump(),
        t._data_size,
        {k: set(v) for k, v in t.ephemerals.items()},
        set(t.containers),
        set(t.ttls),
        set(t.quota_paths),
        t.last_processed_zxid,
        t.watches.by_path(),
        t.watches.child_by_path(),
        t.acl_cache.items(),
        {p: type(n.children) for p, n in t.nodes.items()},
    )


def _txn(op: str, path: str, data: bytes, arg: int, acl: Any, zxid: int) -> tuple[TxnHeader, TxnRecord]:
    if op == "set":
        return TxnHeader(SID, zxid, zxid, NOW + zxid, _SET), SetDataTxn(path, data, arg)
    if op == "delete":
        return TxnHeader(SID, zxid, zxid, NOW + zxid, _DELETE), DeleteTxn(path)
    typ = _CREATE if op == "create" else _CREATE2
    return TxnHeader(SID if arg != 2 else 0x55, zxid, zxid, NOW, typ), CreateTxn(path, data, acl, arg == 1, arg)


def _may_read(watcher: Any, acl: tuple[ACL, ...]) -> bool:
    return watcher != "w2" or acl == OPEN_ACL_UNSAFE


@settings(deadline=None, max_examples=300)
@given(_ops, st.booleans(), st.booleans())
def test_apply_fast_paths_are_the_general_apply(ops: list[Any], quota: bool, acl_filter: bool) -> None:
    fast, general = DataTree(), DataTree()
    for t in (fast, general):
        if acl_filter:
            t.watch_acl_filter = _may_read
        if quota:  # /a under a quota: setData/create take the general branch inside
            for i, p in enumerate(("/zookeeper/quota/a", "/zookeeper/quota/a/zookeeper_limits",
                                   "/zookeeper/quota/a/zookeeper_stats")):
                t.apply(TxnHeader(SID, 0, i + 1, NOW, _CREATE), CreateTxn(p, b"count=5,bytes=100", OPEN_ACL_UNSAFE,
                                                                         False, -1))
    zxid = 10
    for op, i, data, arg, acl in ops:
        path = PATHS[i]
        if op in ("watch", "cwatch"):
            for t in (fast, general):
                for w in ("w1", "w2"):
                    (t.watches.add_data_watch if op == "watch" else t.watches.add_child_watch)(path, w)
            continue
        zxid += 1
        hdr, rec = _txn(op, path, data, arg, acl, zxid)
        got = fast.apply(hdr, rec)
        # The same txn as the only sub-txn of a multi (the general path: the
        # multi's applier re-enters apply with a header of the sub-txn's type).
        mhdr = TxnHeader(hdr.client_id, hdr.cxid, hdr.zxid, hdr.time, _MULTI)
        multi = general.apply(mhdr, MultiTxn(((hdr.type, rec),)))
        assert multi.multi is not None and len(multi.multi) == 1 and multi.err == got.err
        want = multi.multi[0]
        assert want.events == []  # the multi's result carries them
        want.events = multi.events
        assert _rc_fields(got) == _rc_fields(want)
        assert _tree_state(fast) == _tree_state(general)
        if got.stat is not None:  # the inlined stat packing is DataNode.stat_bytes()
            assert got.stat == fast.nodes[path].stat_bytes()


def _setup_tree() -> DataTree:
    t = DataTree()
    t.apply(TxnHeader(SID, 0, 1, NOW, _CREATE), CreateTxn("/a", b"", OPEN_ACL_UNSAFE, False, -1))
    t.apply(TxnHeader(SID, 0, 2, NOW, _CREATE), CreateTxn("/r", b"", READ_ACL_UNSAFE, False, -1))
    return t


def _released_reference(p: Prep, zxid: int) -> int:
    """``Prep.released`` as it was before its all-at-once fast path."""
    q, by_path, n = p._changes, p.by_path, 0
    while q and q[0].zxid <= zxid:
        c = q.popleft()
        if by_path.get(c.path) is c:
            del by_path[c.path]
        n += 1
    return n


def _check_records_against(p: Prep, future: DataTree) -> None:
    """Every newest record is the node as it is once every prepared txn is applied."""
    for path, r in p.by_path.items():
        node = future.nodes.get(path)
        if not r.exists:
            assert node is None, path
            continue
        assert node is not None, path
        assert (r.data, r.acl, r.version, r.cversion, r.aversion, r.ephemeral_owner, r.child_count) == (
            node.data, future.get_acl(node), node.version, node.cversion, node.aversion,
            node.ephemeral_owner, node.num_children(),
        ), path


def _record_fields(r: ChangeRecord) -> tuple[Any, ...]:
    return tuple(getattr(r, s) for s in ChangeRecord.__slots__)  # an unset slot raises


def _request(op: str, path: str, data: bytes, arg: int, acl: Any) -> tuple[int, Any]:
    if op == "set":
        return _SET, SetDataRequest(path, data, arg)
    if op == "delete":
        return _DELETE, DeleteRequest(path, arg)
    return (_CREATE if op == "create" else _CREATE2), CreateRequest(path, data, acl, arg if arg >= 0 else 2)


@settings(deadline=None, max_examples=300)
@given(_ops, st.lists(st.integers(0, 6), max_size=20), st.booleans())
@example(  # a setData on a node whose record a child's create made: its cversion stays
    [("create", 1, b"", 0, OPEN_ACL_UNSAFE), ("set", 0, b"x", -1, OPEN_ACL_UNSAFE)], [], False
)
def test_prepare_fast_paths_are_the_handler_path(ops: list[Any], applies: list[int], sessions: bool) -> None:
    """Same txns, same errors, same outstanding records; released all-at-once == one by one."""
    trees = [_setup_tree(), _setup_tree()]
    future = _setup_tree()  # every prepared txn applied at once
    trackers = [SessionTracker(0, 0), SessionTracker(0, 0)] if sessions else [None, None]
    for tr in trackers:
        if tr is not None:
            tr.track_session(SID, 30000, 0)
    fast, general = (Prep(trees[k], sessions=trackers[k]) for k in (0, 1))
    ids = [DIGEST] if len(ops) % 2 else []
    pending: list[tuple[TxnHeader, TxnRecord]] = []
    steps = iter(applies)
    for n, (op, i, data, arg, acl) in enumerate(ops):
        if op in ("watch", "cwatch"):
            continue
        opcode, req = _request(op, PATHS[i], data, arg, acl)
        got = fast.prepare(SID, n, opcode, req, ids, NOW, owner="conn")
        # The general branch of prepare, by hand (TxnHeader through its __init__).
        zxid = general.last_zxid = general.last_zxid + 1
        try:
            if general.sessions is not None:
                general.sessions.check_session(SID, "conn")
            rec = _OPS[opcode](general, opcode, req, zxid, SID, ids)
            want: tuple[TxnHeader, TxnRecord] = (TxnHeader(SID, n, zxid, NOW, opcode), rec)
        except KeeperError as e:
            want = (TxnHeader(SID, n, zxid, NOW, ERROR_TYPE), ErrorTxn(int(e.code)))
        assert got is not None
        assert got == want and type(got[0]) is TxnHeader and type(got[1]) is type(want[1])
        pending.append(got)
        future.apply(*got)
        _check_records_against(fast, future)
        assert len(fast._changes) == len(general._changes)
        assert [_record_fields(r) for r in fast._changes] == [_record_fields(r) for r in general._changes]
        assert {p: _record_fields(r) for p, r in fast.by_path.items()} == {
            p: _record_fields(r) for p, r in general.by_path.items()
        }
        k = next(steps, 0)
        if k:  # apply a prefix of the pending txns, then release
            done, pending = pending[:k], pending[k:]
            for hdr, rec in done:
                for t in trees:
                    t.apply(hdr, rec)
            upto = trees[0].last_processed_zxid
            assert fast.released(upto) == _released_reference(general, upto)
            assert fast.outstanding() == general.outstanding()
            assert {p: _record_fields(r) for p, r in fast.by_path.items()} == {
                p: _record_fields(r) for p, r in general.by_path.items()
            }


@settings(deadline=None, max_examples=300)
@given(_ops, st.booleans())
def test_final_write_and_write_frame_are_the_general_outcome(ops: list[Any], quota: bool) -> None:
    trees = [DataTree(), DataTree(), DataTree()]
    finals = [Final(t) for t in trees]
    zxid = 10
    for op, i, data, arg, acl in ops:
        path = PATHS[i]
        if op in ("watch", "cwatch"):
            for t in trees:
                t.watches.add_data_watch(path, "w1")
            continue
        zxid += 1
        hdr, rec = _txn(op, path, data, arg, acl, zxid)
        if arg == 3 and op == "set":  # an error txn now and then
            hdr, rec = TxnHeader(SID, zxid, zxid, NOW, ERROR_TYPE), ErrorTxn(-101)
        oc = finals[0].write(hdr, rec)
        rc = trees[1].apply(hdr, rec)
        want = finals[1]._outcome(hdr.type, rec, rc, trees[1].last_processed_zxid)
        assert oc[:4] == want[:4] and type(oc.body) is type(want.body)
        assert oc.result is not None and _rc_fields(oc.result) == _rc_fields(rc)
        frame, events, rc2 = finals[2].write_frame(hdr, rec, zxid * 3)
        assert frame == encode_reply(zxid * 3, oc.zxid, oc.err, oc.body if not oc.err else None)
        assert events == oc.events and _rc_fields(rc2) == _rc_fields(oc.result)
        assert _tree_state(trees[0]) == _tree_state(trees[1]) == _tree_state(trees[2])
