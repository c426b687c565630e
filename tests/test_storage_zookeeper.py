"""Format compatibility with Apache ZooKeeper 3.8.0, both ways.

(a) trio-quorum's FileStore writes a snapshot + log; ZooKeeper's own tools
    read them, then ZooKeeper serves that dataDir and kazoo reads back every
    znode's data, ACL and Stat.
(b) ZooKeeper writes a dataDir (snapshots forced by a small snapCount, logs
    with TxnDigest, preallocated tails); FileStore restores it into a DataTree
    that must equal what kazoo read from ZooKeeper.
"""

from __future__ import annotations

import os

import pytest

from tests.support.apache_zk import apache_zookeeper, require_zookeeper, run_zk_tool
from trio_quorum.core.acl import digest_id
from trio_quorum.core.datatree import DataTree
from trio_quorum.persistence.files import list_logs, list_snapshots, version_dir
from trio_quorum.persistence.filestore import FileStore
from trio_quorum.protocol.consts import OpCode, Perm
from trio_quorum.protocol.data import ACL, OPEN_ACL_UNSAFE, Id
from trio_quorum.protocol.txn import (
    CreateSessionTxn,
    CreateTxn,
    DeleteTxn,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
    TxnHeader,
)

pytestmark = pytest.mark.zookeeper

kazoo_client = pytest.importorskip("kazoo.client")

USER, PASSWORD = "alice", "secret"


def _kazoo(hosts: str):  # type: ignore[no-untyped-def]
    c = kazoo_client.KazooClient(hosts=hosts, timeout=10.0, auth_data=[("digest", f"{USER}:{PASSWORD}")])
    c.start(timeout=20)
    return c


def _read_all(c) -> dict[str, tuple[bytes, list[tuple[int, str, str]], tuple[int, ...]]]:  # type: ignore[no-untyped-def]
    """Every znode outside /zookeeper: path -> (data, ACL, Stat) as kazoo sees them."""
    out = {}
    stack = ["/"]
    while stack:
        path = stack.pop()
        data, stat = c.get(path)
        acl, _ = c.get_acls(path)
        out[path] = (data, sorted((a.perms, a.id.scheme, a.id.id) for a in acl), tuple(stat))
        for child in c.get_children(path):
            cp = path.rstrip("/") + "/" + child
            if cp != "/zookeeper":
                stack.append(cp)
    return out


def _tree_view(tree: DataTree) -> dict[str, tuple[bytes, list[tuple[int, str, str]], tuple[int, ...]]]:
    out = {}
    for path, node in tree.nodes.items():
        if path == "/zookeeper" or path.startswith("/zookeeper/"):
            continue
        acl = sorted((a.perms, a.id.scheme, a.id.id) for a in tree.get_acl(node))
        out[path] = (node.data, acl, tuple(node.stat()))
    return out


class _Writer:
    """Drives FileStore + DataTree like the server's pipeline (append, sync, apply)."""

    def __init__(self, store: FileStore, tree: DataTree, sessions: dict[int, int]) -> None:
        self.store, self.tree, self.sessions = store, tree, sessions
        self.zxid = store.last_zxid
        self.time = 1_700_000_000_000

    async def txn(self, client: int, typ: int, rec) -> None:  # type: ignore[no-untyped-def]
        self.zxid += 1
        self.time += 7
        hdr = TxnHeader(client, self.zxid, self.zxid, self.time, typ)
        self.store.append(hdr, rec)
        await self.store.sync()
        if typ == OpCode.createSession:
            self.sessions[client] = rec.timeout
        res = self.tree.apply(hdr, rec)
        assert res.err == 0, (typ, rec, res.err)

    def create_rec(self, path: str, data: bytes, acl=OPEN_ACL_UNSAFE, *, ephemeral=False, seq=False):  # type: ignore[no-untyped-def]
        parent = self.tree.nodes[path.rsplit("/", 1)[0] or "/"]
        if seq:
            path = f"{path}{parent.cversion:010d}"
        return CreateTxn(path, data, tuple(acl), ephemeral, parent.cversion + 1)

    async def create(self, path: str, data: bytes, acl=OPEN_ACL_UNSAFE, *, client=0, ephemeral=False, seq=False):  # type: ignore[no-untyped-def]
        await self.txn(client, OpCode.create, self.create_rec(path, data, acl, ephemeral=ephemeral, seq=seq))


async def test_zookeeper_reads_our_data_dir(tmp_path) -> None:  # type: ignore[no-untyped-def]
    require_zookeeper()
    data_dir = str(tmp_path / "ours")
    tree, sessions = DataTree(), {}
    store = FileStore(data_dir, snap_count=1000, pre_alloc_size=64 * 1024)
    assert await store.restore(tree, sessions) == 0
    w = _Writer(store, tree, sessions)
    secret = (ACL(Perm.ALL, Id("digest", digest_id(f"{USER}:{PASSWORD}"))), ACL(Perm.READ, Id("world", "anyone")))
    session = 0x1000ABCDEF0001
    await w.txn(session, OpCode.createSession, CreateSessionTxn(30000))
    await w.create("/app", b"root of app")
    await w.create("/app/secret", b"\x00\x01binary\xff", secret)
    for i in range(3):
        await w.create("/app/seq-", b"s%d" % i, seq=True)
    await w.txn(0, OpCode.setData, SetDataTxn("/app", b"v2", 1))
    snap = await store.take_snapshot(tree, sessions)  # snapshot in the middle: log replay must follow
    await w.create("/app/eph", b"mine", client=session, ephemeral=True)
    await w.create("/gone", b"")
    await w.txn(0, OpCode.delete, DeleteTxn("/gone"))
    await w.txn(0, OpCode.setACL, SetACLTxn("/app", secret, 0))
    await w.txn(
        0,
        OpCode.multi,
        MultiTxn(((OpCode.create, w.create_rec("/multi", b"m")), (OpCode.setData, SetDataTxn("/app/seq-0000000001", b"x", 1)))),
    )
    await w.create("/app/seq-", b"after-multi", seq=True)
    await store.aclose()
    expected = _tree_view(tree)

    # ZooKeeper's own tools read our files
    logs = list_logs(version_dir(data_dir))
    res = run_zk_tool("org.apache.zookeeper.server.persistence.TxnLogToolkit", logs[-1][1])
    assert res.returncode == 0, res.stderr + res.stdout
    assert "/app/eph" in res.stdout and "createSession" in res.stdout.replace(" ", "") or "/app/eph" in res.stdout
    assert "multi" in res.stdout.lower()
    res = run_zk_tool("org.apache.zookeeper.server.SnapshotFormatter", "-d", snap)
    assert res.returncode == 0, res.stderr + res.stdout
    assert "/app/secret" in res.stdout and "/app/seq-0000000003" in res.stdout

    with apache_zookeeper(data_dir) as zk:
        c = _kazoo(zk.hosts)
        try:
            got = _read_all(c)
        finally:
            c.stop()
            c.close()
    assert got == expected
    assert got["/app/eph"][2][7] == session  # ephemeralOwner survived
    assert got["/app"][2][5] == 6  # cversion: 6 creates, 6 children -> 6 * 2 - 6


async def test_we_restore_zookeeper_data_dir(tmp_path) -> None:  # type: ignore[no-untyped-def]
    require_zookeeper()
    from kazoo.security import make_digest_acl

    data_dir = tmp_path / "theirs"
    with apache_zookeeper(data_dir, extra_cfg={"snapCount": "8"}) as zk:
        c = _kazoo(zk.hosts)
        try:
            secret = [make_digest_acl(USER, PASSWORD, all=True)]
            c.create("/a", b"alpha")
            c.create("/a/b", b"beta", acl=secret)
            for i in range(12):
                c.create("/a/q-", b"%d" % i, sequence=True)
            c.set("/a", b"alpha2")
            c.delete("/a/q-0000000003")
            tx = c.transaction()
            tx.create("/m", b"multi")
            tx.set_data("/a/b", b"beta2")
            tx.delete("/a/q-0000000004")
            tx.commit()
            c.set_acls("/m", secret)
            c.create("/e", b"ephemeral", ephemeral=True)
            sid = c.client_id[0]
            for i in range(10):
                c.set("/m", b"round %d" % i)
            expected = _read_all(c)
        finally:
            # no clean close: the session and its ephemeral stay in the data dir
            zk.stop()
            c.stop()
            c.close()
    vdir = version_dir(str(data_dir))
    assert len(list_snapshots(vdir)) >= 2, os.listdir(vdir)
    tree, sessions = DataTree(), {}
    store = FileStore(str(data_dir))
    last = await store.restore(tree, sessions)
    await store.aclose()
    assert _tree_view(tree) == expected
    assert sid in sessions
    assert last == max(n.mzxid for n in tree.nodes.values())
