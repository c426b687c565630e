"""prep + DataTree against Apache ZooKeeper 3.8 for the edge cases whose answer depends on
PrepRequestProcessor's check order (run through kazoo's raw request objects, so no client-side
validation gets in the way)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.apache_zk import apache_zookeeper, zookeeper_unavailable_reason
from trio_quorum.core.datatree import DataTree
from trio_quorum.core.prep import Prep
from trio_quorum.protocol.consts import OpCode, Perm
from trio_quorum.protocol.data import ACL, Id
from trio_quorum.protocol.records import (
    CreateRequest,
    DeleteRequest,
    MultiRequest,
    SetACLRequest,
    SetDataRequest,
)

pytestmark = [
    pytest.mark.zookeeper,
    pytest.mark.skipif(
        zookeeper_unavailable_reason() is not None, reason=str(zookeeper_unavailable_reason())
    ),
]

OPEN = ((Perm.ALL, ("world", "anyone")),)
# (kind, args): the same request sent to both servers, in order, under a fresh tree.
CASES: list[tuple[str, tuple[Any, ...]]] = [
    ("create", ("/t", OPEN, 0)),
    ("create", ("/t/", OPEN, 2)),  # sequential with a trailing slash: "/t/0000000000"
    ("create", ("/t/", OPEN, 0)),  # not sequential: BADARGUMENTS after the parent lookup
    ("create", ("/t//x", OPEN, 0)),  # parent "/t/" does not exist: NONODE
    ("create", ("/t/.", OPEN, 0)),
    ("create", ("/t/x", (), 0)),  # empty ACL
    ("create", ("/nope/x", (), 0)),  # INVALIDACL before NONODE
    ("create", ("/t/x", ((Perm.ALL, ("auth", "")),), 0)),  # no authenticated id
    ("create", ("/t/x", ((Perm.ALL, ("digest", "bob")),), 0)),
    ("create", ("/t/x", ((Perm.ALL, ("digest", "bob:")),), 0)),
    ("create", ("/t/x", ((Perm.ALL, ("digest", "bob:h")),), 0)),
    ("create", ("/t/y", ((Perm.ALL, ("ip", "10.0.0.0/33")),), 0)),
    ("create", ("/t/y", ((Perm.ALL, ("world", "someone")),), 0)),
    ("create", ("/t/y", OPEN, 7)),  # no such CreateMode
    ("create", ("/t/e", OPEN, 1)),
    ("create", ("/t/e/c", OPEN, 0)),  # NOCHILDRENFOREPHEMERALS
    ("create", ("/t/s", OPEN, 2)),
    ("delete", ("/t/x", -1)),
    ("create", ("/t/s", OPEN, 2)),  # deletes do not advance the suffix
    ("create", ("/", OPEN, 0)),
    ("delete", ("/", -1)),
    ("delete", ("/zookeeper", -1)),
    ("delete", ("/zookeeper/quota", -1)),
    ("delete", ("/t", -1)),  # NOTEMPTY
    ("delete", ("/t/nope", 3)),
    ("set", ("/t/", b"x", -1)),
    ("set", ("/t", b"x", 5)),
    ("set_acl", ("/nope", (), -1)),
    ("set_acl", ("/t/x", ((Perm.READ, ("world", "anyone")),), -1)),
    ("create", ("/t/x/y", OPEN, 0)),  # x is read-only now: NOAUTH
    ("multi", (("create", "/m", 0), ("create", "/m/a", 0), ("set", "/m", 3), ("delete", "/m", -1))),
    ("multi", (("create", "/m", 0), ("create", "/m/s", 2), ("create", "/m/s", 2))),
]


def _our_acl(acl: Any) -> tuple[ACL, ...]:
    return tuple(ACL(p, Id(*i)) for p, i in acl)


def run_ours() -> list[Any]:
    tree = DataTree()
    prep = Prep(tree)
    ids = (Id("ip", "127.0.0.1"),)
    out: list[Any] = []

    def sub(op: Any) -> tuple[int, Any]:
        kind = op[0]
        if kind == "create":
            return OpCode.create, CreateRequest(op[1], b"", _our_acl(OPEN), op[2])
        if kind == "set":
            return OpCode.setData, SetDataRequest(op[1], b"", op[2])
        return OpCode.delete, DeleteRequest(op[1], op[2])

    for i, (kind, args) in enumerate(CASES):
        if kind == "create":
            op, req = OpCode.create, CreateRequest(args[0], b"", _our_acl(args[1]), args[2])
        elif kind == "delete":
            op, req = OpCode.delete, DeleteRequest(*args)
        elif kind == "set":
            op, req = OpCode.setData, SetDataRequest(*args)
        elif kind == "set_acl":
            op, req = OpCode.setACL, SetACLRequest(args[0], _our_acl(args[1]), args[2])
        else:
            op, req = OpCode.multi, MultiRequest(tuple(sub(o) for o in args))
        res = prep.prepare(0x1234, i, op, req, ids, 0)
        assert res is not None
        r = tree.apply(*res)
        prep.released(res[0].zxid)
        if r.multi is not None:
            created = tuple(m.path for m in r.multi if m.err == 0 and m.type == OpCode.create)
            out.append(("multi", tuple(m.err for m in r.multi), created))
        else:
            out.append((kind, r.err, r.path if r.err == 0 and kind == "create" else None))
    return out


def run_zookeeper(hosts: str) -> list[Any]:
    from kazoo.client import KazooClient
    from kazoo.exceptions import KazooException
    from kazoo.protocol.serialization import Create, Delete, SetACL, SetData, Transaction
    from kazoo.security import ACL as KACL
    from kazoo.security import Id as KId

    def kacl(acl: Any) -> list[Any]:
        return [KACL(p, KId(*i)) for p, i in acl]

    client = KazooClient(hosts=hosts, timeout=15)
    client.start(timeout=30)
    out: list[Any] = []
    try:
        for kind, args in CASES:
            if kind == "create":
                req: Any = Create(args[0], b"", kacl(args[1]), args[2])
            elif kind == "delete":
                req = Delete(*args)
            elif kind == "set":
                req = SetData(*args)
            elif kind == "set_acl":
                req = SetACL(args[0], kacl(args[1]), args[2])
            else:
                ops = []
                for o in args:
                    if o[0] == "create":
                        ops.append(Create(o[1], b"", kacl(OPEN), o[2]))
                    elif o[0] == "set":
                        ops.append(SetData(o[1], b"", o[2]))
                    else:
                        ops.append(Delete(o[1], o[2]))
                req = Transaction(ops)
            ar = client.handler.async_result()
            client._call(req, ar)
            try:
                value = ar.get(timeout=20)
                err = 0
            except KazooException as e:
                value, err = None, int(getattr(e, "code", -999))
            if kind == "multi":
                errs = tuple(
                    int(getattr(v, "code", 0)) if isinstance(v, Exception) else 0 for v in value
                )
                paths = tuple(v for v in value if isinstance(v, str))
                out.append(("multi", errs, paths))
            else:
                out.append((kind, err, value if err == 0 and kind == "create" else None))
    finally:
        client.stop()
        client.close()
    return out


def test_prep_matches_apache_zookeeper(tmp_path) -> None:
    ours = run_ours()
    with apache_zookeeper(tmp_path / "data") as zk:
        theirs = run_zookeeper(zk.hosts)
    mismatches = [(c, o, t) for c, o, t in zip(CASES, ours, theirs, strict=True) if o != t]
    assert not mismatches, mismatches
