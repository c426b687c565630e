"""FileStore: restore, group commit, disk faults, torn tails, snapshot fallback, epochs."""

from __future__ import annotations

import errno
import logging
import os

import pytest
import trio

from trio_quorum.core.datatree import DataTree
from trio_quorum.persistence.api import CorruptStorage, StorageFailed
from trio_quorum.persistence.epochs import ACCEPTED_EPOCH, CURRENT_EPOCH, read_epoch, write_epoch
from trio_quorum.persistence.files import list_logs, list_snapshots, scan_log_file, version_dir
from trio_quorum.persistence.filestore import FileStore, open_file_store
from trio_quorum.protocol.consts import OpCode
from trio_quorum.protocol.data import OPEN_ACL_UNSAFE
from trio_quorum.protocol.txn import CreateTxn, SetDataTxn, TxnHeader


def _create(tree: DataTree, zxid: int, path: str) -> tuple[TxnHeader, CreateTxn]:
    parent = tree.nodes[path.rsplit("/", 1)[0] or "/"]
    return TxnHeader(7, zxid, zxid, 1000 + zxid, OpCode.create), CreateTxn(
        path, b"v%d" % zxid, OPEN_ACL_UNSAFE, False, parent.cversion + 1
    )


async def _fill(store: FileStore, tree: DataTree, sessions: dict[int, int], n: int, start: int = 1) -> None:
    for z in range(start, start + n):
        hdr, rec = _create(tree, z, f"/n{z}")
        store.append(hdr, rec)
        await store.sync()
        tree.apply(hdr, rec)
        await store.maybe_snapshot(tree, sessions)


def _patch(path: str, offset: int, data: bytes | None, *, truncate: int | None = None) -> None:
    """Overwrite bytes at ``offset`` (``None``: flip the byte there), optionally truncate."""
    with open(path, "r+b") as f:
        if data is None:
            f.seek(offset)
            data = bytes([f.read(1)[0] ^ 0xFF])
        f.seek(offset)
        f.write(data)
        if truncate is not None:
            f.truncate(truncate)


async def _restore(d: str) -> tuple[DataTree, dict[int, int], int]:
    tree, sessions = DataTree(), {}
    store = FileStore(d)
    last = await store.restore(tree, sessions)
    await store.aclose()
    return tree, sessions, last


async def test_restore_round_trip_with_snapshots_and_rolls(tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = str(tmp_path)
    tree, sessions = DataTree(), {}
    async with open_file_store(d, snap_count=10, pre_alloc_size=4096) as store:
        assert await store.restore(tree, sessions) == 0
        await _fill(store, tree, sessions, 40)
        await store.wait_snapshot_done()
        assert store.statistics().snapshots >= 3
    vdir = version_dir(d)
    assert len(list_logs(vdir)) >= 3 and len(list_snapshots(vdir)) >= 3
    tree2, _, last = await _restore(d)
    assert last == 40 and tree2.dump() == tree.dump()


async def test_fuzzy_snapshot_while_tree_changes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = str(tmp_path)
    tree, sessions = DataTree(), {}
    # force_sync off: this test is about the snapshot, not the disk
    async with open_file_store(d, snap_count=100_000, force_sync=False) as store:
        await store.restore(tree, sessions)
        await _fill(store, tree, sessions, 3000)
        snap_done = trio.Event()

        async def snap() -> None:
            await store.take_snapshot(tree, sessions)
            snap_done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(snap)
            z = 3001
            # keep changing the tree while the snapshot is being written
            while not snap_done.is_set() and z < 20_000:
                hdr = TxnHeader(7, z, z, 1000 + z, OpCode.setData)
                rec = SetDataTxn(f"/n{z % 3000 + 1}", b"w%d" % z, 0)
                store.append(hdr, rec)
                await store.sync()
                tree.apply(hdr, rec)
                z += 1
    assert z > 3002  # the tree really changed while the snapshot was written
    tree2, _, last = await _restore(d)
    assert last == z - 1 and tree2.dump() == tree.dump()


async def test_group_commit_shares_fsyncs_and_syncs_before_return(tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = str(tmp_path)
    fsynced: set[int] = set()
    calls = 0

    def counting_fsync(fd: int) -> None:
        nonlocal calls
        calls += 1
        os.fdatasync(fd)
        # record what is on disk at the moment of the fsync
        path = os.readlink(f"/proc/self/fd/{fd}")
        fsynced.update(e.hdr.zxid for e in scan_log_file(path).entries)

    tree, sessions = DataTree(), {}
    store = FileStore(d, fsync=counting_fsync, pre_alloc_size=1 << 16)
    await store.restore(tree, sessions)
    n = 200

    async def writer(z: int) -> None:
        hdr, rec = _create(tree, z, f"/w{z}")
        store.append(hdr, rec)
        await store.sync()
        assert z in fsynced  # nothing returns from sync before its data is on disk

    async with trio.open_nursery() as nursery:
        for z in range(1, n + 1):
            nursery.start_soon(writer, z)
    await store.aclose()
    assert fsynced == set(range(1, n + 1))
    assert calls <= 10, calls  # ~2 in practice; one per appender without group commit
    assert store.statistics().fsyncs == calls


@pytest.mark.parametrize("fault", ["fsync", "write"])
async def test_disk_fault_raises_storage_failed_and_never_acknowledges(tmp_path, fault) -> None:  # type: ignore[no-untyped-def]
    d = str(tmp_path)
    armed = False

    def bad_fsync(fd: int) -> None:
        if armed and fault == "fsync":
            raise OSError(errno.ENOSPC, "No space left on device")
        os.fdatasync(fd)

    def bad_pwrite(fd: int, data, pos: int) -> int:  # type: ignore[no-untyped-def]
        if armed and fault == "write":
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.pwrite(fd, data, pos)

    tree, sessions = DataTree(), {}
    store = FileStore(d, fsync=bad_fsync, pwrite=bad_pwrite, pre_alloc_size=4096)
    await store.restore(tree, sessions)
    await _fill(store, tree, sessions, 3)
    armed = True
    acked: list[int] = []
    failures: list[BaseException] = []

    async def writer(z: int) -> None:
        hdr, rec = _create(tree, z, f"/f{z}")
        store.append(hdr, rec)
        try:
            await store.sync()
        except StorageFailed as exc:
            failures.append(exc)
        else:
            acked.append(z)

    async with trio.open_nursery() as nursery:
        for z in range(4, 10):
            nursery.start_soon(writer, z)
    assert acked == [] and len(failures) == 6
    with pytest.raises(StorageFailed):
        store.append(*_create(tree, 10, "/f10"))
    with pytest.raises(StorageFailed):
        await store.sync()
    await store.aclose()


async def test_slow_fsync_logs_zookeepers_warning(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    ticks = iter(range(0, 10_000, 2))  # every clock read advances 2 s
    store = FileStore(str(tmp_path), clock=lambda: float(next(ticks)))
    tree, sessions = DataTree(), {}
    await store.restore(tree, sessions)
    with caplog.at_level(logging.WARNING, logger="trio_quorum.persistence"):
        await _fill(store, tree, sessions, 1)
    await store.aclose()
    assert "fsync-ing the write ahead log in" in caplog.text and "took 2000ms" in caplog.text
    assert store.statistics().slow_fsyncs == 1


async def test_force_sync_no_skips_fsync(tmp_path) -> None:  # type: ignore[no-untyped-def]
    calls = []
    store = FileStore(str(tmp_path), force_sync=False, fsync=calls.append)
    tree, sessions = DataTree(), {}
    await store.restore(tree, sessions)
    await _fill(store, tree, sessions, 5)
    await store.aclose()
    assert calls == []
    assert (await _restore(str(tmp_path)))[2] == 5


async def test_restore_truncates_torn_tail_then_appends(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    d = str(tmp_path)
    tree, sessions = DataTree(), {}
    store = FileStore(d, pre_alloc_size=4096)
    await store.restore(tree, sessions)
    await _fill(store, tree, sessions, 5)
    await store.aclose()
    (_, path), = list_logs(version_dir(d))
    entries = scan_log_file(path).entries
    # tear the last record: part of it hits the disk
    _patch(path, entries[-1].offset + 20, b"\xee" * 5, truncate=entries[-1].offset + 25)
    with caplog.at_level(logging.WARNING, logger="trio_quorum.persistence"):
        tree2, sessions2, last = await _restore(d)
    assert last == 4 and "/n5" not in tree2.nodes and "/n4" in tree2.nodes
    assert "Truncating torn txn log" in caplog.text
    assert os.stat(path).st_size == entries[-1].offset
    # the next write goes to a new log, and everything survives another restart
    store = FileStore(d)
    tree3, s3 = DataTree(), {}
    assert await store.restore(tree3, s3) == 4
    await _fill(store, tree3, s3, 2, start=5)
    await store.aclose()
    tree4, _, last = await _restore(d)
    assert last == 6 and tree4.dump() == tree3.dump()


async def test_a_preallocated_log_without_its_header_is_an_empty_torn_tail(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    # A crash between creating + preallocating a new log and writing its
    # header (the order writers before this fix used) leaves zeros only.
    d = str(tmp_path)
    tree, sessions = DataTree(), {}
    store = FileStore(d, pre_alloc_size=4096)
    await store.restore(tree, sessions)
    await _fill(store, tree, sessions, 5)
    await store.aclose()
    empty = os.path.join(version_dir(d), "log.6")
    with open(empty, "wb") as f:  # noqa: ASYNC230 - test setup
        f.truncate(64 * 1024)
    with caplog.at_level(logging.WARNING, logger="trio_quorum.persistence"):
        tree2, _, last = await _restore(d)
    assert last == 5 and tree2.dump() == tree.dump()
    assert "no file header" in caplog.text and "log.6" not in os.listdir(version_dir(d))
    # Zeros in the header but data after them is not a crash window: corruption.
    with open(empty, "wb") as f:  # noqa: ASYNC230 - test setup
        f.truncate(8192)
        f.seek(5000)
        f.write(b"x")
    with pytest.raises(CorruptStorage, match="not a ZooKeeper txn log"):
        await _restore(d)


async def test_a_new_log_gets_its_header_before_it_is_preallocated(tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = str(tmp_path)
    writes: list[tuple[int, int]] = []

    def failing_pwrite(fd: int, data: object, pos: int) -> int:
        writes.append((pos, os.fstat(fd).st_size))
        raise OSError(errno.EIO, "injected: the process dies here")

    store = FileStore(d, pwrite=failing_pwrite, pre_alloc_size=4096)
    tree, sessions = DataTree(), {}
    await store.restore(tree, sessions)
    hdr, rec = _create(tree, 1, "/n1")
    store.append(hdr, rec)
    with pytest.raises(StorageFailed):
        await store.sync()
    # The first write into the new file is its header, into a file not yet extended.
    assert writes[0] == (0, 0)
    await store.aclose()


async def test_corruption_mid_log_refuses_to_start(tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = str(tmp_path)
    tree, sessions = DataTree(), {}
    store = FileStore(d, pre_alloc_size=4096)
    await store.restore(tree, sessions)
    await _fill(store, tree, sessions, 5)
    await store.aclose()
    (_, path), = list_logs(version_dir(d))
    victim = scan_log_file(path).entries[2]
    _patch(path, victim.offset + 30, None)
    with pytest.raises(CorruptStorage, match=rf"{os.path.basename(path)}.*offset {victim.offset}"):
        await _restore(d)


async def test_corrupt_newest_snapshot_falls_back(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    d = str(tmp_path)
    tree, sessions = DataTree(), {}
    store = FileStore(d, pre_alloc_size=4096)
    await store.restore(tree, sessions)
    await _fill(store, tree, sessions, 5)
    await store.take_snapshot(tree, sessions)
    await _fill(store, tree, sessions, 5, start=6)
    newest = await store.take_snapshot(tree, sessions)
    await _fill(store, tree, sessions, 2, start=11)
    await store.aclose()
    _patch(newest, 40, b"\xff\xfe")
    with caplog.at_level(logging.WARNING, logger="trio_quorum.persistence"):
        tree2, _, last = await _restore(d)
    assert "problem reading snap file" in caplog.text and os.path.basename(newest) in caplog.text
    assert last == 12 and tree2.dump() == tree.dump()


async def test_logs_without_snapshot_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = str(tmp_path)
    tree, sessions = DataTree(), {}
    store = FileStore(d)
    await store.restore(tree, sessions)
    await _fill(store, tree, sessions, 2)
    await store.aclose()
    for _, p in list_snapshots(version_dir(d)):
        os.unlink(p)
    with pytest.raises(CorruptStorage, match="No snapshot found"):
        await _restore(d)


def test_epoch_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = str(tmp_path)
    assert read_epoch(d, CURRENT_EPOCH) is None
    write_epoch(d, ACCEPTED_EPOCH, 5)
    write_epoch(d, CURRENT_EPOCH, 4)
    write_epoch(d, ACCEPTED_EPOCH, 6)
    assert read_epoch(d, ACCEPTED_EPOCH) == 6 and read_epoch(d, CURRENT_EPOCH) == 4
    with open(os.path.join(version_dir(d), ACCEPTED_EPOCH), "rb") as f:
        assert f.read() == b"6"  # ZooKeeper's format: decimal, no newline
    assert not [n for n in os.listdir(version_dir(d)) if n.endswith(".tmp")]
    with open(os.path.join(version_dir(d), CURRENT_EPOCH), "wb") as f:
        f.write(b"garbage")
    with pytest.raises(CorruptStorage, match="not a decimal epoch"):
        read_epoch(d, CURRENT_EPOCH)
    with pytest.raises(ValueError):
        write_epoch(d, "../evil", 1)


def _syncers() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if t.name.startswith("trio-quorum-syncer")]


async def test_one_syncer_thread_for_many_syncs_and_aclose_stops_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    tree, sessions = DataTree(), {}
    store = FileStore(str(tmp_path), pre_alloc_size=4096)
    await store.restore(tree, sessions)
    before = _syncers()
    await _fill(store, tree, sessions, 20)
    assert len(_syncers()) == len(before) + 1  # one long-lived thread, not one per flush
    await store.aclose()
    assert _syncers() == before
    assert (await _restore(str(tmp_path)))[2] == 20


async def test_cancelled_sync_still_writes_and_accounts_its_flush(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import threading

    entered, release = threading.Event(), threading.Event()
    calls = 0

    def gated_fsync(fd: int) -> None:
        nonlocal calls
        calls += 1
        entered.set()
        release.wait(10)
        os.fdatasync(fd)

    tree, sessions = DataTree(), {}
    store = FileStore(str(tmp_path), fsync=gated_fsync, pre_alloc_size=4096)
    await store.restore(tree, sessions)
    hdr, rec = _create(tree, 1, "/c1")
    store.append(hdr, rec)
    with trio.move_on_after(10) as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store.sync)
            await trio.to_thread.run_sync(entered.wait, 10)  # the flush is in the thread
            nursery.cancel_scope.cancel()  # the waiter goes away mid-fsync
    assert not scope.cancelled_caught
    assert store.statistics().durable == 0
    release.set()
    await store.sync()  # waits for the same flush; it is not written again
    assert calls == 1 and store.statistics().durable == 1 and store.statistics().flushes == 1
    await store.aclose()
    assert (await _restore(str(tmp_path)))[2] == 1
