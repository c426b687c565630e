"""ZooKeeper 3.8 still reads a FileStore's dataDir after a TRUNC and after a SNAP install.

Its own tools (TxnLogToolkit, SnapshotFormatter) read the truncated log and
the installed snapshot (which carries 3.9's lastZxid section), and a
ZooKeeper server on the dataDir serves exactly the tree a restart of ours
restores.
"""

from __future__ import annotations

import pytest

from tests.support.apache_zk import apache_zookeeper, require_zookeeper, run_zk_tool
from tests.test_storage_ensemble import E1, E2, FileDisk, Peer, leader_tree, reference
from tests.test_storage_zookeeper import _kazoo, _read_all, _tree_view
from trio_quorum.core.datatree import DataTree
from trio_quorum.persistence.files import list_logs, list_snapshots, version_dir
from trio_quorum.persistence.filestore import FileStore

pytestmark = pytest.mark.zookeeper

pytest.importorskip("kazoo.client")


def _served_by_zookeeper(data_dir: str) -> dict:  # type: ignore[type-arg]
    with apache_zookeeper(data_dir) as zk:
        c = _kazoo(zk.hosts)
        try:
            return _read_all(c)
        finally:
            c.stop()
            c.close()


async def _restored(data_dir: str) -> DataTree:
    tree = DataTree()
    store = FileStore(data_dir)
    await store.restore(tree, {})
    await store.aclose()
    return tree


async def test_zookeeper_reads_a_truncated_data_dir(tmp_path) -> None:  # type: ignore[no-untyped-def]
    require_zookeeper()
    disk = FileDisk(str(tmp_path / "d"))
    p = Peer(disk)
    await p.restore()
    await p.epoch(1)
    await p.write([E1 | c for c in range(1, 36)])  # several logs and snapshots
    await p.store.truncate(E1 | 23)
    await p.store.aclose()
    vdir = version_dir(disk.d)
    last_log = list_logs(vdir)[-1][1]
    res = run_zk_tool("org.apache.zookeeper.server.persistence.TxnLogToolkit", last_log)
    assert res.returncode == 0, res.stderr + res.stdout
    assert f"/n{E1 | 23:x}" in res.stdout and f"/n{E1 | 24:x}" not in res.stdout
    expected = reference(p.log, E1 | 23)
    assert _tree_view(await _restored(disk.d)) == _tree_view(expected)
    assert _served_by_zookeeper(disk.d) == _tree_view(expected)


async def test_zookeeper_reads_an_installed_snapshot(tmp_path) -> None:  # type: ignore[no-untyped-def]
    require_zookeeper()
    disk = FileDisk(str(tmp_path / "d"))
    p = Peer(disk)
    await p.restore()
    await p.epoch(2)
    await p.write([E1 | c for c in range(1, 15)])  # the learner's old history
    lead, sessions, _ = leader_tree(6)
    zxid = lead.last_processed_zxid
    assert zxid >> 32 == E2 >> 32
    await p.store.install_snapshot(lead, sessions, zxid)
    await p.store.aclose()
    snap = [path for z, path in list_snapshots(version_dir(disk.d)) if z == zxid][0]
    res = run_zk_tool("org.apache.zookeeper.server.SnapshotFormatter", "-d", snap)
    assert res.returncode == 0, res.stderr + res.stdout
    assert "/leader7" in res.stdout and "/eph" in res.stdout
    assert _tree_view(await _restored(disk.d)) == _tree_view(lead)
    assert _served_by_zookeeper(disk.d) == _tree_view(lead)
