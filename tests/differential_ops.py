"""Operation sequences run the same way against two ZooKeeper servers through kazoo.

Used by the differential test: Hypothesis generates a sequence of client
operations, each server runs it under a fresh root, and the *normalised*
outcomes must be equal.  Normalisation keeps everything a client can observe
except wall-clock times and session ids: zxids become offsets from the zxid
that created the example's root, so two servers that consumed the same
number of transactions agree exactly (failed writes consume zxids too).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException
from kazoo.security import ACL, Id, make_digest_acl

REL_PATHS = ["a", "b", "a/c", "a/d", "b/e", "a/c/f"]
DATA = [b"", b"x", b"hello", b"\x00\x01\x02" * 10]
VERSIONS = [-1, 0, 1, 2]


@dataclass(frozen=True)
class Op:
    kind: str
    args: tuple[Any, ...]


paths = st.sampled_from(REL_PATHS)
data = st.sampled_from(DATA)
versions = st.sampled_from(VERSIONS)

create_op = st.builds(
    lambda p, d, eph, seq: Op("create", (p, d, eph, seq)), paths, data, st.booleans(), st.booleans()
)
set_op = st.builds(lambda p, d, v: Op("set", (p, d, v)), paths, data, versions)
delete_op = st.builds(lambda p, v: Op("delete", (p, v)), paths, versions)
get_op = st.builds(lambda p: Op("get", (p,)), paths)
exists_op = st.builds(lambda p: Op("exists", (p,)), paths)
children_op = st.builds(lambda p: Op("children", (p,)), st.sampled_from(["", *REL_PATHS]))
acl_op = st.builds(lambda p, v, ro: Op("set_acls", (p, v, ro)), paths, versions, st.booleans())
get_acls_op = st.builds(lambda p: Op("get_acls", (p,)), paths)
txn_sub = st.one_of(
    st.builds(lambda p, d: ("create", p, d), paths, data),
    st.builds(lambda p, v: ("delete", p, v), paths, versions),
    st.builds(lambda p, d, v: ("set_data", p, d, v), paths, data, versions),
    st.builds(lambda p, v: ("check", p, v), paths, versions),
)
txn_op = st.builds(lambda ops: Op("txn", tuple(ops)), st.lists(txn_sub, min_size=1, max_size=4))
watch_op = st.builds(
    lambda kind, p: Op(kind, (p,)),
    st.sampled_from(["get_w", "children_w", "exists_w"]),
    st.sampled_from(["", *REL_PATHS]),
)

operations = st.lists(
    st.one_of(
        create_op,
        create_op,
        set_op,
        delete_op,
        get_op,
        exists_op,
        children_op,
        acl_op,
        get_acls_op,
        txn_op,
        watch_op,
        watch_op,
    ),
    min_size=1,
    max_size=20,
)


def _stat(st_: Any, base: int, session_id: int) -> tuple[Any, ...] | None:
    if st_ is None:
        return None
    owner = st_.ephemeralOwner
    return (
        st_.czxid - base,
        st_.mzxid - base,
        st_.version,
        st_.cversion,
        st_.aversion,
        "self" if owner == session_id else owner,
        st_.dataLength,
        st_.numChildren,
        st_.pzxid - base,
    )


def _norm(value: Any, base: int, session_id: int, root: str) -> Any:
    if isinstance(value, BaseException):
        return ("error", type(value).__name__)
    if hasattr(value, "czxid"):
        return _stat(value, base, session_id)
    if isinstance(value, str):
        return value[len(root) :] if value.startswith(root) else value
    if isinstance(value, (list, tuple)):
        return tuple(_norm(v, base, session_id, root) for v in value)
    if isinstance(value, ACL):
        return (value.perms, value.id.scheme, value.id.id)
    return value


RESTRICTED = [make_digest_acl("user", "pw", all=True), ACL(1, Id("world", "anyone"))]


def run_ops(client: KazooClient, root: str, ops: list[Op]) -> list[Any]:
    """Create ``root`` and run ``ops`` under it; return normalised outcomes."""
    client.create(root)
    base = client.exists(root).czxid
    sid = client.client_id[0]
    out: list[Any] = []
    events: list[tuple[str, str, str]] = []

    def full(rel: str) -> str:
        return f"{root}/{rel}" if rel else root

    def watcher(tag: str) -> Any:
        def fire(ev: Any) -> None:
            events.append((tag, ev.type, ev.path[len(root) :]))

        return fire

    for op in ops:
        try:
            if op.kind == "create":
                p, d, eph, seq = op.args
                res: Any = client.create(full(p), d, ephemeral=eph, sequence=seq)
            elif op.kind == "set":
                p, d, v = op.args
                res = client.set(full(p), d, version=v)
            elif op.kind == "delete":
                p, v = op.args
                res = client.delete(full(p), version=v)
            elif op.kind == "get":
                res = client.get(full(op.args[0]))
            elif op.kind == "exists":
                res = client.exists(full(op.args[0]))
            elif op.kind == "children":
                kids, stat = client.get_children(full(op.args[0]), include_data=True)
                res = (sorted(kids), stat)
            elif op.kind == "set_acls":
                p, v, restricted = op.args
                acl = RESTRICTED if restricted else [ACL(31, Id("world", "anyone"))]
                res = client.set_acls(full(p), acl, version=v)
            elif op.kind == "get_w":
                res = client.get(full(op.args[0]), watch=watcher("data"))
            elif op.kind == "children_w":
                res = sorted(client.get_children(full(op.args[0]), watch=watcher("child")))
            elif op.kind == "exists_w":
                res = client.exists(full(op.args[0]), watch=watcher("exists"))
            elif op.kind == "get_acls":
                res = client.get_acls(full(op.args[0]))
            elif op.kind == "txn":
                t = client.transaction()
                for sub in op.args:
                    if sub[0] == "create":
                        t.create(full(sub[1]), sub[2])
                    elif sub[0] == "delete":
                        t.delete(full(sub[1]), version=sub[2])
                    elif sub[0] == "set_data":
                        t.set_data(full(sub[1]), sub[2], version=sub[3])
                    else:
                        t.check(full(sub[1]), sub[2])
                res = t.commit()
            else:  # pragma: no cover
                raise AssertionError(op.kind)
        except KazooException as exc:
            res = exc
        out.append((op.kind, _norm(res, base, sid, root)))
    # kazoo runs watch callbacks in order on one thread: once a barrier watch
    # set last has fired, every earlier notification has been recorded.
    barrier = threading.Event()
    client.exists(f"{root}-barrier", watch=lambda ev: barrier.set())
    client.create(f"{root}-barrier")
    assert barrier.wait(10), "the barrier watch never fired"
    out.append(("events", events))
    # The final state of the subtree, read back in full.
    out.append(("final", _dump(client, root, base, sid)))
    return out


def _dump(client: KazooClient, root: str, base: int, sid: int) -> list[Any]:
    result = []
    stack = [root]
    while stack:
        path = stack.pop()
        try:
            d, stat = client.get(path)
            kids = client.get_children(path)
        except KazooException as exc:
            result.append((path[len(root) :], ("error", type(exc).__name__)))
            continue
        result.append((path[len(root) :], d, _stat(stat, base, sid), sorted(kids)))
        stack.extend(f"{path}/{k}" for k in sorted(kids))
    return result
