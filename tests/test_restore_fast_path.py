"""The restore fast paths agree with the general code.

``decode_snapshot`` decodes the node list of a ``bytes`` snapshot with a fused
loop (``_decode_nodes_fast``) and falls back to the general ``Reader`` loop at
anything unusual; a ``memoryview`` always takes the general loop, so the two
can be compared on the same bytes.  ``DataTree.load_snapshot`` caches the last
parent and counts ACL usage in runs; a restored tree must equal the tree that
was snapshotted (data, ACLs, persisted and client stats, children, ephemerals,
containers, TTL nodes, quotas, ACL reference counts).
"""

from __future__ import annotations

import random
import struct
import zlib

import pytest

from trio_quorum.core.datatree import DataTree
from trio_quorum.core.node import DataNode
from trio_quorum.persistence.api import CorruptStorage
from trio_quorum.persistence.snapshot import Snapshot, decode_snapshot, encode_snapshot
from trio_quorum.protocol.consts import OpCode, Perm
from trio_quorum.protocol.data import ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, Id, ttl_owner
from trio_quorum.protocol.txn import (
    CreateContainerTxn,
    CreateSessionTxn,
    CreateTTLTxn,
    CreateTxn,
    DeleteTxn,
    SetACLTxn,
    SetDataTxn,
    TxnHeader,
    TxnRecord,
)

DIGEST_ACL = (ACL(Perm.ALL, Id("digest", "u:Jq7wMyA/w2Vd5WIDAKdu4OIIFEQ=")),)
IP_ACL = (ACL(Perm.READ | Perm.WRITE, Id("ip", "10.0.0.1")),)
ACLS = (OPEN_ACL_UNSAFE, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, DIGEST_ACL, IP_ACL)
_SEAL_PATH = b"\x00\x00\x00\x01/"


def _random_tree(seed: int, n: int = 400) -> DataTree:
    rnd = random.Random(seed)
    t = DataTree()
    zxid = 0

    def apply(typ: int, rec: TxnRecord, session: int = 0) -> None:
        nonlocal zxid
        zxid += 1
        t.apply(TxnHeader(session, zxid, zxid, 1_700_000_000_000 + zxid // 3, int(typ)), rec)

    for s in (0x11, 0x22, 0x33):
        apply(OpCode.createSession, CreateSessionTxn(30000), s)
    paths = ["/"]
    values = [b"", b"same value", b"same value", bytes(range(256)), "ünï".encode()]
    # quotas: /q with limits, stats maintained by the tree
    apply(OpCode.create, CreateTxn("/q", b"", OPEN_ACL_UNSAFE, False, 1))
    apply(OpCode.create, CreateTxn("/zookeeper/quota/q", b"", OPEN_ACL_UNSAFE, False, 1))
    apply(OpCode.create, CreateTxn("/zookeeper/quota/q/zookeeper_limits", b"count=10,bytes=100", OPEN_ACL_UNSAFE, False, 1))
    apply(OpCode.create, CreateTxn("/zookeeper/quota/q/zookeeper_stats", b"count=0,bytes=0", OPEN_ACL_UNSAFE, False, 2))
    paths.append("/q")
    for i in range(n):
        parent = rnd.choice(paths)
        pnode = t.nodes.get(parent)
        if pnode is None or pnode.ephemeral_owner:
            continue
        name = rnd.choice(["n", "ü", "x-y", "c"]) + str(i)
        path = (parent if parent != "/" else "") + "/" + name
        data = rnd.choice(values)
        acl = rnd.choice(ACLS)
        kind = rnd.random()
        cv = pnode.cversion + 1
        if kind < 0.1:
            apply(OpCode.create, CreateTxn(path, data, acl, True, cv), rnd.choice((0x11, 0x22, 0x33)))
        elif kind < 0.15:
            apply(OpCode.createContainer, CreateContainerTxn(path, data, acl, cv))
        elif kind < 0.2:
            apply(OpCode.createTTL, CreateTTLTxn(path, data, acl, cv, rnd.randint(1, 10_000)))
        else:
            apply(OpCode.create, CreateTxn(path, data, acl, False, cv))
        paths.append(path)
        r = rnd.random()
        if r < 0.1:
            apply(OpCode.setData, SetDataTxn(path, rnd.choice(values), 1))
        elif r < 0.15:
            apply(OpCode.setACL, SetACLTxn(path, rnd.choice(ACLS), 1))
        elif r < 0.2 and not t.nodes[path].children:
            apply(OpCode.delete, DeleteTxn(path))
            paths.remove(path)
    assert t.containers and t.ttls and t.ephemerals and t.quota_paths
    assert any(n.ephemeral_owner == ttl_owner(1) or n.ephemeral_owner < 0 for n in t.nodes.values())
    return t


def _blob(t: DataTree) -> bytes:
    sessions = {0x11: 30000, 0x22: 4000}
    return b"".join(encode_snapshot(sessions, t.acl_cache.items(), t.snapshot_nodes(java_order=False)))


def _fields(n: DataNode) -> tuple[object, ...]:
    return (
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
        n.children,
    )


def _same_snapshot(a: Snapshot, b: Snapshot) -> None:
    assert a.paths == b.paths
    assert [_fields(n) for n in a.znodes] == [_fields(n) for n in b.znodes]
    assert (a.dbid, a.sessions, a.acls, a.digest, a.last_zxid) == (b.dbid, b.sessions, b.acls, b.digest, b.last_zxid)


def _same_tree(live: DataTree, restored: DataTree) -> None:
    assert restored.dump() == live.dump()
    for p, n in live.nodes.items():
        assert restored.nodes[p].stat_bytes() == n.stat_bytes(), p
    assert restored.ephemerals == live.ephemerals
    assert restored.containers == live.containers
    assert restored.ttls == live.ttls
    assert restored.quota_paths == live.quota_paths
    assert restored.approximate_data_size() == live.approximate_data_size()
    assert restored.node_count() == live.node_count()
    # ACL reference counts: one per node using the id (OPEN_ACL_UNSAFE, id -1, is not counted)
    want: dict[int, int] = {}
    for n in restored.nodes.values():
        if n.acl != -1:
            want[n.acl] = want.get(n.acl, 0) + 1
    assert restored.acl_cache._refs == want
    assert restored.acl_cache.items() == [(ref, acl) for ref, acl in live.acl_cache.items() if ref in want]


@pytest.mark.parametrize("seed", range(8))
def test_restored_tree_equals_snapshotted_tree(seed: int) -> None:
    live = _random_tree(seed)
    blob = _blob(live)
    fast = decode_snapshot(blob, "snapshot.x")
    general = decode_snapshot(memoryview(blob), "snapshot.x")
    _same_snapshot(fast, general)
    restored = DataTree.load_snapshot(fast.acls, fast.iter_nodes(), live.last_processed_zxid)
    _same_tree(live, restored)
    again = DataTree.load_snapshot(general.acls, iter(general.nodes), live.last_processed_zxid)
    assert again.dump() == restored.dump()
    # a new ACL after the restore never reuses an id a node holds
    new_ref = restored.acl_cache.intern((ACL(Perm.READ, Id("ip", "10.9.9.9")),))
    assert all(n.acl != new_ref for n in restored.nodes.values())


def _body_and_reseal(blob: bytes) -> tuple[bytes, object]:
    """The bytes the first seal covers, and a function that seals a (patched) body."""
    first_seal_end = len(blob) - (8 + 4 + 8) - (8 + 5)
    body = blob[: first_seal_end - 13]
    assert body.endswith(_SEAL_PATH)

    def seal(b: bytes) -> bytes:
        return b + struct.pack(">q", zlib.adler32(b)) + _SEAL_PATH

    assert seal(body) == blob[:first_seal_end]
    return body, seal


def _outcome(data: bytes | memoryview) -> object:
    try:
        s = decode_snapshot(data, "snapshot.x")
    except CorruptStorage as exc:
        return ("error", str(exc))
    return ("ok", s.paths, [_fields(n) for n in s.znodes], s.digest)


def test_null_lengths_fall_back_to_the_general_decoder() -> None:
    # The encoder never writes a null (-1) length, Java's may: a null data
    # buffer reads as b"" and a null path as "" (then a second root: refused
    # by load_snapshot, not by the decoder).  The fast loop hands such a node
    # to the general one, which continues to the end.
    t = DataTree()
    zx = 0
    for p in ("/a", "/a/b", "/c"):
        zx += 1
        t.apply(TxnHeader(0, zx, zx, zx, int(OpCode.create)), CreateTxn(p, b"", OPEN_ACL_UNSAFE, False, 1))
    blob = _blob(t)
    body, seal = _body_and_reseal(blob)
    i = body.index(b"\x00\x00\x00\x04/a/b") + 8
    assert body[i : i + 4] == b"\x00\x00\x00\x00"
    patched = seal(body[:i] + b"\xff\xff\xff\xff" + body[i + 4 :])  # type: ignore[operator]
    out = _outcome(patched)
    assert out == _outcome(memoryview(patched)) and out[0] == "ok"
    s = decode_snapshot(patched)
    assert s.paths[-3:] == ["/a", "/a/b", "/c"] or "/a/b" in s.paths
    assert s.znodes[s.paths.index("/a/b")].data == b""
    # a null path
    j = body.index(b"\x00\x00\x00\x02/c")
    patched = seal(body[:j] + b"\xff\xff\xff\xff" + body[j + 6 :])  # type: ignore[operator]
    out = _outcome(patched)
    assert out == _outcome(memoryview(patched)) and out[0] == "ok"
    assert "" in decode_snapshot(patched).paths[1:]


@pytest.mark.parametrize("seed", range(3))
def test_damaged_snapshots_fail_alike(seed: int) -> None:
    # Every damage the fast loop meets, it leaves to the general loop: same
    # result (the same CorruptStorage message) as the general decoder alone.
    live = _random_tree(seed, n=60)
    blob = _blob(live)
    body, seal = _body_and_reseal(blob)
    rnd = random.Random(seed)
    cases = [blob[:k] for k in range(0, len(blob), max(1, len(blob) // 40))]
    for _ in range(150):
        b = bytearray(body)
        off = rnd.randrange(16, len(b))
        how = rnd.random()
        if how < 0.4:
            b[off] = rnd.randrange(256)
        elif how < 0.7:  # a length field gone wild (negative, huge, off by a little)
            b[off : off + 4] = struct.pack(">i", rnd.choice([-2, -1, 1 << 30, rnd.randrange(-5, 300)]))
        else:
            b[off : off + 2] = b"\xc3\x28"  # invalid UTF-8
        cases.append(seal(bytes(b)))  # type: ignore[operator]
        cases.append(bytes(b) + blob[len(body) :])  # unsealed: a checksum mismatch
    for data in cases:
        assert _outcome(data) == _outcome(memoryview(data))
