"""What a ZAB peer needs from storage, on both stores (FileStore and MemStore), same semantics.

Epochs (restore resolves them as QuorumPeer.loadDataBase; set_* durable),
read_txns / min_logged_zxid (DIFF, LogGap), truncate (TRUNC), install_snapshot
(SNAP), last_zxid after each, and the crash model: what a crash keeps.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_quorum.core.datatree import DataTree
from trio_quorum.persistence.api import CorruptStorage, LogGap, StorageFailed, resolve_epochs
from trio_quorum.persistence.epochs import ACCEPTED_EPOCH, CURRENT_EPOCH, read_epoch
from trio_quorum.persistence.files import list_logs, list_snapshots, version_dir
from trio_quorum.persistence.filestore import FileStore
from trio_quorum.persistence.memstore import MemStore
from trio_quorum.persistence.purge import purge
from trio_quorum.persistence.snapshot import encode_snapshot_bytes, load_snapshot_bytes
from trio_quorum.protocol.consts import OpCode
from trio_quorum.protocol.data import OPEN_ACL_UNSAFE
from trio_quorum.protocol.txn import CreateSessionTxn, CreateTxn, SetDataTxn, TxnHeader

E1 = 1 << 32
E2 = 2 << 32


class Disk:
    """One peer's "disk" and how to (re)open, crash, snapshot and purge a store on it."""

    kind = ""

    def open(self) -> Any: ...

    async def crash(self, store: Any) -> None: ...

    async def snapshot(self, store: Any, tree: DataTree, sessions: dict[int, int]) -> None: ...

    def purge(self, store: Any, retain: int = 3) -> None: ...

    def forget_epochs(self, store: Any) -> None: ...


class FileDisk(Disk):
    kind = "file"

    def __init__(self, d: str) -> None:
        self.d = d

    def open(self) -> FileStore:
        # small files and a small snapCount: several logs and snapshots
        return FileStore(self.d, snap_count=10, pre_alloc_size=4096, fork_snapshots=False, force_sync=False)

    async def crash(self, store: FileStore) -> None:
        # the process dies: queued (unsynced) entries are never written
        await store._log.stop()
        store._log.close()

    async def snapshot(self, store: FileStore, tree: DataTree, sessions: dict[int, int]) -> None:
        await store.take_snapshot(tree, sessions)

    def purge(self, store: FileStore, retain: int = 3) -> None:
        purge(self.d, retain=retain)

    def forget_epochs(self, store: FileStore) -> None:
        for name in (ACCEPTED_EPOCH, CURRENT_EPOCH):
            os.unlink(os.path.join(version_dir(self.d), name))


class MemDisk(Disk):
    kind = "mem"

    def __init__(self) -> None:
        self.store = MemStore()

    def open(self) -> MemStore:
        return self.store  # a restarted server is given the same store

    async def crash(self, store: MemStore) -> None:
        store.crash()

    async def snapshot(self, store: MemStore, tree: DataTree, sessions: dict[int, int]) -> None:
        await store.take_snapshot(tree, sessions)

    def purge(self, store: MemStore, retain: int = 3) -> None:
        store.purge(retain)

    def forget_epochs(self, store: MemStore) -> None:
        store.epochs.clear()


@pytest.fixture(params=["file", "mem"])
def disk(request, tmp_path) -> Disk:  # type: ignore[no-untyped-def]
    return FileDisk(str(tmp_path)) if request.param == "file" else MemDisk()


def txn(zxid: int, path: str, data: bytes = b"") -> tuple[TxnHeader, CreateTxn | SetDataTxn]:
    """A create of ``path`` (cversion is not checked by replay) or, with data, a setData."""
    hdr = TxnHeader(7, zxid & 0xFFFF, zxid, 1000 + (zxid & 0xFFFF), OpCode.create)
    return hdr, CreateTxn(path, data or b"v%x" % zxid, OPEN_ACL_UNSAFE, False, 1)


class Peer:
    """A store, a tree and a session table, driven like the server's pipeline."""

    def __init__(self, disk: Disk) -> None:
        self.disk = disk
        self.store = disk.open()
        self.tree = DataTree()
        self.sessions: dict[int, int] = {}
        self.log: list[tuple[TxnHeader, Any]] = []  # every txn applied, in order

    async def restore(self) -> int:
        self.tree, self.sessions = DataTree(), {}
        return int(await self.store.restore(self.tree, self.sessions))

    async def epoch(self, e: int) -> None:
        """Become a member of epoch ``e`` (as a learner does before logging in it)."""
        await self.store.set_accepted_epoch(e)
        await self.store.set_current_epoch(e)

    async def write(self, zxids: list[int], *, sync: bool = True, snapshots: bool = True) -> None:
        for z in zxids:
            hdr, rec = txn(z, f"/n{z:x}")
            self.store.append(hdr, rec)
            if sync:
                await self.store.sync()
            self.tree.apply(hdr, rec)
            self.log.append((hdr, rec))
            if snapshots and self.disk.kind == "file":
                await self.store.maybe_snapshot(self.tree, self.sessions)

    async def restart(self, *, crash: bool = False) -> int:
        if crash:
            await self.disk.crash(self.store)
        else:
            await self.store.aclose()
        self.store = self.disk.open()
        return await self.restore()


def reference(txns: list[tuple[TxnHeader, Any]], up_to: int) -> DataTree:
    tree = DataTree()
    for hdr, rec in txns:
        if hdr.zxid <= up_to:
            tree.apply(hdr, rec)
    return tree


def zxids(txns: list[tuple[TxnHeader, Any]]) -> list[int]:
    return [h.zxid for h, _ in txns]


# -- epochs -----------------------------------------------------------------------


async def test_epochs_minus_one_until_restore_then_durable_across_crash(disk: Disk) -> None:
    p = Peer(disk)
    assert (p.store.accepted_epoch, p.store.current_epoch) == (-1, -1)
    assert await p.restore() == 0
    assert (p.store.accepted_epoch, p.store.current_epoch) == (0, 0)
    await p.store.set_accepted_epoch(2)
    assert p.store.accepted_epoch == 2 and p.store.current_epoch == 0
    await p.store.set_current_epoch(2)
    await p.write([E2 | 1, E2 | 2])
    assert await p.restart(crash=True) == E2 | 2
    assert (p.store.accepted_epoch, p.store.current_epoch) == (2, 2)
    await p.store.set_accepted_epoch(3)  # accepted a new leader's epoch, not yet current
    assert await p.restart(crash=True) == E2 | 2
    assert (p.store.accepted_epoch, p.store.current_epoch) == (3, 2)


async def test_missing_epochs_derive_from_the_last_zxid_and_are_written(disk: Disk) -> None:
    p = Peer(disk)
    await p.restore()
    await p.store.set_accepted_epoch(1)
    await p.store.set_current_epoch(1)
    await p.write([E1 | 1, E1 | 2])
    disk.forget_epochs(p.store)
    assert await p.restart() == E1 | 2
    assert (p.store.accepted_epoch, p.store.current_epoch) == (1, 1)
    # written back (as ZooKeeper does): a truncate below epoch 1 no longer lowers them
    await p.store.truncate(0)
    assert await p.restart() == 0
    assert (p.store.accepted_epoch, p.store.current_epoch) == (1, 1)
    if isinstance(disk, FileDisk):
        assert read_epoch(disk.d, CURRENT_EPOCH) == 1 and read_epoch(disk.d, ACCEPTED_EPOCH) == 1


async def test_epochs_refuse_a_current_epoch_older_than_the_last_zxid(disk: Disk) -> None:
    p = Peer(disk)
    await p.restore()  # epochs 0/0 written
    await p.write([E2 | 1])  # logged in epoch 2 without ever setting it
    # a standalone server still restores; a quorum peer reading the epochs fails (ZooKeeper's check)
    assert await p.restart() == E2 | 1
    with pytest.raises(CorruptStorage, match="current epoch"):
        p.store.current_epoch  # noqa: B018
    with pytest.raises(CorruptStorage, match="current epoch"):
        p.store.accepted_epoch  # noqa: B018
    await p.store.set_current_epoch(2)  # no repair behind the check's back: still refused
    with pytest.raises(CorruptStorage):
        p.store.accepted_epoch  # noqa: B018
    await p.store.set_accepted_epoch(2)
    assert await p.restart() == E2 | 1  # until a restore finds them consistent
    assert (p.store.accepted_epoch, p.store.current_epoch) == (2, 2)


async def test_epochs_refuse_accepted_below_current(disk: Disk) -> None:
    p = Peer(disk)
    await p.restore()
    await p.store.set_current_epoch(4)
    await p.store.set_accepted_epoch(3)
    await p.restart()
    with pytest.raises(CorruptStorage, match="accepted epoch"):
        p.store.current_epoch  # noqa: B018


def test_resolve_epochs_follows_load_database() -> None:
    assert resolve_epochs(E2 | 5, None, None) == (2, 2, True, True)
    assert resolve_epochs(E2 | 5, 3, 2) == (3, 2, False, False)
    assert resolve_epochs(E2 | 5, 3, 1, current_tmp=2) == (3, 2, False, True)
    with pytest.raises(CorruptStorage):
        resolve_epochs(E2 | 5, 3, 1, current_tmp=1)
    with pytest.raises(CorruptStorage):
        resolve_epochs(E2 | 5, None, 1)


def _leave_tmp(path: Path, text: str) -> None:
    path.write_text(text)


async def test_file_current_epoch_tmp_left_by_an_interrupted_write_is_adopted(tmp_path) -> None:  # type: ignore[no-untyped-def]
    disk = FileDisk(str(tmp_path))
    p = Peer(disk)
    await p.restore()
    await p.store.set_accepted_epoch(2)
    await p.write([E2 | 1])
    await p.store.aclose()
    # a crash after currentEpoch.tmp was written, before the rename
    _leave_tmp(Path(version_dir(disk.d), CURRENT_EPOCH + ".tmp"), "2")
    p.store = disk.open()
    assert await p.restore() == E2 | 1
    assert p.store.current_epoch == 2 and read_epoch(disk.d, CURRENT_EPOCH) == 2


# -- DIFF: read_txns, min_logged_zxid ------------------------------------------------


async def test_read_txns_returns_exactly_the_synced_txns_after_a_zxid_across_log_rolls(disk: Disk) -> None:
    p = Peer(disk)
    await p.restore()
    await p.epoch(2)
    await p.write([E1 | c for c in range(1, 31)] + [E2 | c for c in range(1, 21)])
    if isinstance(disk, FileDisk):
        assert len(list_logs(version_dir(disk.d))) >= 4  # the reads cross files
    all_z = zxids(p.log)
    for after in (0, E1 | 1, E1 | 9, E1 | 10, E1 | 29, E1 | 30, E2, E2 | 7, E2 | 20):
        got = await p.store.read_txns(after)
        assert zxids(got) == [z for z in all_z if z > after]
        assert [r.path for _, r in got] == [r.path for h, r in p.log if h.zxid > after]
    assert zxids(await p.store.read_txns(E1 | 5, E2 | 3)) == [z for z in all_z if E1 | 5 < z <= E2 | 3]
    # appended, not yet synced: not in the answer until synced
    await p.write([E2 | 21, E2 | 22], sync=False, snapshots=False)
    assert zxids(await p.store.read_txns(E2 | 18)) == [E2 | 19, E2 | 20]
    await p.store.sync()
    assert zxids(await p.store.read_txns(E2 | 18)) == [E2 | 19, E2 | 20, E2 | 21, E2 | 22]
    # and the same after a restart (the log on disk)
    await p.restart()
    assert zxids(await p.store.read_txns(E1 | 25)) == [z for z in zxids(p.log) if z > E1 | 25]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bounds=st.lists(st.tuples(st.integers(0, 45), st.integers(0, 45)), min_size=1, max_size=20))
def test_read_txns_ranges_property(tmp_path_factory, bounds) -> None:  # type: ignore[no-untyped-def]
    """Any ``(after, up_to)`` over a log with rolls: the filtered list, on both stores."""
    import trio

    chain = [E1 | c for c in range(1, 25)] + [E2 | c for c in range(1, 21)]

    async def main() -> None:
        for disk in (FileDisk(str(tmp_path_factory.mktemp("rt"))), MemDisk()):
            p = Peer(disk)
            await p.restore()
            await p.epoch(2)
            await p.write(chain)
            for a, b in bounds:
                after = 0 if a == 0 else chain[min(a, len(chain)) - 1]
                up_to = chain[min(b, len(chain) - 1)]
                got = await p.store.read_txns(after, up_to)
                assert zxids(got) == [z for z in chain if after < z <= up_to], (disk.kind, after, up_to)
            await p.store.aclose()

    trio.run(main)


async def test_min_logged_zxid_fresh_and_after_install(disk: Disk) -> None:
    p = Peer(disk)
    await p.restore()
    assert p.store.min_logged_zxid() == 1
    assert await p.store.read_txns(0) == []
    await p.write([1, 2, 3])
    assert p.store.min_logged_zxid() == 1
    assert zxids(await p.store.read_txns(0)) == [1, 2, 3]


async def test_purge_moves_min_logged_zxid_and_read_txns_below_it_is_a_gap(disk: Disk) -> None:
    p = Peer(disk)
    await p.restore()
    for start in range(1, 60, 10):  # six snapshots, ten txns apart
        await p.write(list(range(start, start + 10)), snapshots=False)
        await disk.snapshot(p.store, p.tree, p.sessions)
    await p.write([61, 62, 63], snapshots=False)
    assert p.store.min_logged_zxid() == 1
    disk.purge(p.store, retain=3)
    low = p.store.min_logged_zxid()
    oldest_kept_snapshot = 40
    # the logs still reach the oldest kept snapshot (a snapshot + DIFF is always possible)
    assert 1 < low <= oldest_kept_snapshot + 1
    assert zxids(await p.store.read_txns(low - 1)) == list(range(low, 64))
    assert zxids(await p.store.read_txns(50)) == list(range(51, 64))
    with pytest.raises(LogGap):
        await p.store.read_txns(low - 2)
    # and a restart after the purge restores everything
    assert await p.restart() == 63
    assert p.tree.dump() == reference(p.log, 63).dump()
    assert p.store.min_logged_zxid() == low


# -- TRUNC -------------------------------------------------------------------------


async def test_truncate_then_restart_restores_exactly_the_prefix_and_appends_continue(disk: Disk) -> None:
    p = Peer(disk)
    await p.restore()
    await p.epoch(1)
    await p.write([E1 | c for c in range(1, 41)])
    if isinstance(disk, FileDisk):
        await p.store.wait_snapshot_done()
        assert any(z > E1 | 17 for z, _ in list_snapshots(version_dir(disk.d)))
    await p.store.truncate(E1 | 17)
    assert p.store.last_zxid == E1 | 17
    assert zxids(await p.store.read_txns(E1 | 10)) == [E1 | c for c in range(11, 18)]
    if isinstance(disk, FileDisk):
        assert all(z <= E1 | 17 for z, _ in list_snapshots(version_dir(disk.d)))
        assert all(z <= E1 | 17 for z, _ in list_logs(version_dir(disk.d)))
    # the caller rebuilds its tree from the same store
    assert await p.restore() == E1 | 17
    assert p.tree.dump() == reference(p.log, E1 | 17).dump()
    # a new epoch continues after the truncated history, and survives a crash
    p.log = [t for t in p.log if t[0].zxid <= E1 | 17]
    await p.epoch(2)
    await p.write([E2 | 1, E2 | 2, E2 | 3])
    await p.write([E2 | 4], sync=False, snapshots=False)  # lost in the crash
    p.log.pop()
    assert await p.restart(crash=True) == E2 | 3
    assert p.tree.dump() == reference(p.log, E2 | 3).dump()
    assert zxids(await p.store.read_txns(E1 | 15)) == [E1 | 16, E1 | 17, E2 | 1, E2 | 2, E2 | 3]
    assert p.store.last_zxid == E2 | 3


async def test_truncate_to_a_zxid_between_txns_keeps_the_ones_before(disk: Disk) -> None:
    p = Peer(disk)
    await p.restore()
    await p.write([2, 4, 6, 8, 10], snapshots=False)
    await p.store.truncate(7)
    assert p.store.last_zxid == 6
    assert await p.restart(crash=True) == 6
    assert p.tree.dump() == reference(p.log, 6).dump()


async def test_truncate_syncs_pending_appends_first(disk: Disk) -> None:
    p = Peer(disk)
    await p.restore()
    await p.write([1, 2, 3], snapshots=False)
    await p.write([4, 5], sync=False, snapshots=False)
    await p.store.truncate(4)
    assert p.store.last_zxid == 4
    assert await p.restart(crash=True) == 4


async def test_truncate_below_the_oldest_snapshot_is_refused_and_changes_nothing(disk: Disk) -> None:
    p = Peer(disk)
    await p.restore()
    for start in range(1, 50, 10):
        await p.write(list(range(start, start + 10)), snapshots=False)
        await disk.snapshot(p.store, p.tree, p.sessions)
    disk.purge(p.store, retain=3)  # snapshots 30, 40, 50 remain
    with pytest.raises(CorruptStorage, match="SNAP"):
        await p.store.truncate(29)
    assert p.store.last_zxid == 50
    await p.store.truncate(30)  # at the oldest snapshot: fine
    assert await p.restart() == 30
    assert p.tree.dump() == reference(p.log, 30).dump()


# -- SNAP --------------------------------------------------------------------------


def leader_tree(n: int) -> tuple[DataTree, dict[int, int], list[tuple[TxnHeader, Any]]]:
    tree, sessions, txns = DataTree(), {}, []
    hdr = TxnHeader(0x55, 1, E2 | 1, 5, OpCode.createSession)
    tree.apply(hdr, CreateSessionTxn(12_000))
    sessions[0x55] = 12_000
    for c in range(2, n + 2):
        h, r = txn(E2 | c, f"/leader{c}")
        tree.apply(h, r)
        txns.append((h, r))
    h = TxnHeader(0x55, 2, E2 | (n + 2), 9, OpCode.create)
    tree.apply(h, CreateTxn("/eph", b"mine", OPEN_ACL_UNSAFE, True, 1))
    return tree, sessions, txns


async def test_install_snapshot_replaces_a_divergent_history_and_survives_restart(disk: Disk) -> None:
    p = Peer(disk)
    await p.restore()
    await p.epoch(3)
    await p.write([E1 | c for c in range(1, 26)])  # an old history, with snapshots and rolls
    await p.write([(3 << 32) | 1])  # a txn newer than the snapshot about to arrive (divergent)
    lead, lead_sessions, _ = leader_tree(12)
    zxid = lead.last_processed_zxid
    # the wire: bytes from the leader, loaded into the learner's (same) tree object
    blob = encode_snapshot_bytes(lead, lead_sessions)
    tree_before = p.tree
    assert load_snapshot_bytes(blob, p.tree, p.sessions) == zxid
    assert p.tree is tree_before and p.tree.dump() == lead.dump() and p.sessions == lead_sessions
    await p.store.install_snapshot(p.tree, p.sessions, zxid)
    assert p.store.last_zxid == zxid
    assert p.store.min_logged_zxid() == zxid + 1
    assert await p.store.read_txns(zxid) == []
    if isinstance(disk, FileDisk):
        vdir = version_dir(disk.d)
        assert list_logs(vdir) == [] and max(z for z, _ in list_snapshots(vdir)) == zxid
    assert await p.restart(crash=True) == zxid
    assert p.tree.dump() == lead.dump() and p.sessions == lead_sessions
    assert p.tree.last_processed_zxid == zxid
    # the next txns log after the snapshot and survive
    await p.write([zxid + 1, zxid + 2])
    assert await p.restart(crash=True) == zxid + 2
    assert set(p.tree.nodes) == set(lead.nodes) | {f"/n{zxid + 1:x}", f"/n{zxid + 2:x}"}
    assert zxids(await p.store.read_txns(zxid)) == [zxid + 1, zxid + 2]


async def test_install_snapshot_below_the_learners_history(disk: Disk) -> None:
    """A SNAP at a zxid older than what the learner logged (it was ahead on a dead branch)."""
    p = Peer(disk)
    await p.restore()
    await p.write(list(range(1, 31)))
    ref = reference(p.log, 12)
    sessions: dict[int, int] = {}
    tree = DataTree()
    load_snapshot_bytes(encode_snapshot_bytes(ref, {}), tree, sessions)
    await p.store.install_snapshot(tree, sessions, 12)
    assert p.store.last_zxid == 12
    assert await p.restart(crash=True) == 12
    assert p.tree.dump() == ref.dump()
    if isinstance(disk, FileDisk):
        assert all(z <= 12 for z, _ in list_snapshots(version_dir(disk.d)))


def test_snapshot_bytes_refuse_damage_and_need_a_zxid() -> None:
    lead, sessions, _ = leader_tree(3)
    blob = encode_snapshot_bytes(lead, sessions)
    tree, got = DataTree(), {}
    bad = bytearray(blob)
    bad[40] ^= 0xFF
    with pytest.raises(CorruptStorage):
        load_snapshot_bytes(bytes(bad), tree, got)
    assert tree.dump() == DataTree().dump() and got == {}  # untouched
    assert load_snapshot_bytes(blob, tree, got, zxid=77) == 77
    from trio_quorum.persistence.snapshot import encode_snapshot

    plain = b"".join(encode_snapshot(sessions, lead.acl_cache.items(), lead.snapshot_nodes()))
    with pytest.raises(CorruptStorage, match="zxid"):
        load_snapshot_bytes(plain, DataTree(), {})
    assert load_snapshot_bytes(plain, tree, got, zxid=5) == 5 and tree.dump() == lead.dump()


# -- the crash model -----------------------------------------------------------------


async def test_crash_keeps_synced_epochs_truncation_and_install_loses_unsynced(disk: Disk) -> None:
    p = Peer(disk)
    await p.restore()
    await p.write([1, 2, 3, 4, 5], snapshots=False)
    await p.store.truncate(3)
    await p.store.set_accepted_epoch(1)
    await p.write([E1 | 1], snapshots=False)  # the learner logs before NEWLEADER's currentEpoch
    await p.write([E1 | 2], sync=False, snapshots=False)
    assert await p.restart(crash=True) == E1 | 1
    with pytest.raises(CorruptStorage):  # currentEpoch 0 < epoch of E1|1: ZooKeeper's check
        p.store.current_epoch  # noqa: B018
    assert set(p.tree.nodes) >= {"/n1", "/n2", "/n3", f"/n{E1 | 1:x}"}
    assert "/n4" not in p.tree.nodes and f"/n{E1 | 2:x}" not in p.tree.nodes
    await p.epoch(2)
    lead, lead_sessions, _ = leader_tree(2)
    await p.store.install_snapshot(lead, lead_sessions, lead.last_processed_zxid)
    await p.write([lead.last_processed_zxid + 1], sync=False, snapshots=False)
    assert await p.restart(crash=True) == lead.last_processed_zxid
    assert p.tree.dump() == lead.dump()
    assert (p.store.accepted_epoch, p.store.current_epoch) == (2, 2)


async def test_append_while_truncating_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import trio

    p = Peer(FileDisk(str(tmp_path)))
    await p.restore()
    await p.write([1, 2, 3], snapshots=False)
    errors: list[BaseException] = []

    async def intruder() -> None:
        try:
            p.store.append(*txn(9, "/x"))
        except StorageFailed as exc:
            errors.append(exc)

    async with trio.open_nursery() as n:
        n.start_soon(p.store.truncate, 2)
        await trio.lowlevel.checkpoint()
        n.start_soon(intruder)
    assert errors and "truncate" in str(errors[0])
    assert p.store.last_zxid == 2
