"""Purge rule, the purge-timer actor, and the dump/purge command-line tools."""

from __future__ import annotations

import io
import os

import pytest
import trio

from trio_quorum.core.datatree import DataTree
from trio_quorum.persistence.files import list_logs, list_snapshots, version_dir
from trio_quorum.persistence.filestore import FileStore
from trio_quorum.persistence.purge import purge, run_purge_timer
from trio_quorum.persistence.tools import log_dump_main, purge_main, snapshot_dump_main
from trio_quorum.protocol.consts import OpCode
from trio_quorum.protocol.data import OPEN_ACL_UNSAFE
from trio_quorum.protocol.txn import CreateTxn, TxnHeader


async def _store_with_snapshots(d: str, rounds: int) -> DataTree:
    """``rounds`` x (2 creates, snapshot): logs log.1, log.3, ...; snapshots 0, 2, 4, ..."""
    tree, sessions = DataTree(), {}
    store = FileStore(d, pre_alloc_size=4096)
    await store.restore(tree, sessions)
    z = 0
    for _ in range(rounds):
        for _ in range(2):
            z += 1
            hdr = TxnHeader(3, z, z, 5000 + z, OpCode.create)
            rec = CreateTxn(f"/p{z}", b"data%d" % z, OPEN_ACL_UNSAFE, False, tree.nodes["/"].cversion + 1)
            store.append(hdr, rec)
            await store.sync()
            tree.apply(hdr, rec)
        await store.take_snapshot(tree, sessions)
    await store.aclose()
    return tree


async def test_purge_keeps_n_snapshots_and_the_logs_they_need(tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = str(tmp_path)
    tree = await _store_with_snapshots(d, 5)
    vdir = version_dir(d)
    assert [z for z, _ in list_snapshots(vdir)] == [0, 2, 4, 6, 8, 10]
    assert [z for z, _ in list_logs(vdir)] == [1, 3, 5, 7, 9]
    with pytest.raises(ValueError):
        purge(d, None, 2)
    removed = await trio.to_thread.run_sync(purge, d, None, 3)
    assert [z for z, _ in list_snapshots(vdir)] == [6, 8, 10]
    # log.5 is the newest log starting at or before snapshot.6 (it holds zxid 7's predecessors): kept
    assert [z for z, _ in list_logs(vdir)] == [5, 7, 9]
    assert len(removed) == 5
    # still recoverable, and from the oldest kept snapshot too
    t2, s2 = DataTree(), {}
    store = FileStore(d)
    assert await store.restore(t2, s2) == 10
    await store.aclose()
    assert t2.dump() == tree.dump()


def _scribble(path: str, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.write(data)


def _copy(src: str, dst: str) -> None:
    with open(src, "rb") as f, open(dst, "wb") as g:
        g.write(f.read())


async def _wait_until(cond, limit: int = 100) -> bool:  # type: ignore[no-untyped-def]
    # bounded polling in *virtual* time (autojump clock): no real sleeping
    for _ in range(limit):
        if await trio.to_thread.run_sync(cond):
            return True
        await trio.sleep(1)
    return False


async def test_purge_timer_runs_at_start_and_every_interval(tmp_path, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    d = str(tmp_path)
    await _store_with_snapshots(d, 4)
    vdir = version_dir(d)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_purge_timer, d, None, 3, 0)  # 0 = off: returns at once
    assert len(list_snapshots(vdir)) == 5
    async with trio.open_nursery() as nursery:
        await nursery.start(run_purge_timer, d, None, 3, 1)
        assert await _wait_until(lambda: len(list_snapshots(vdir)) == 3)
        start = trio.current_time()
        newest = list_snapshots(vdir)[-1][1]
        for z in (0x20, 0x21):
            await trio.to_thread.run_sync(_copy, newest, os.path.join(vdir, f"snapshot.{z:x}"))
        assert await _wait_until(lambda: [z for z, _ in list_snapshots(vdir)] == [8, 0x20, 0x21], 7200)
        assert trio.current_time() - start >= 3600 - 100  # the second purge waited for the interval
        nursery.cancel_scope.cancel()


async def test_tools_dump_our_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = str(tmp_path)
    await _store_with_snapshots(d, 2)
    vdir = version_dir(d)
    out, err = io.StringIO(), io.StringIO()
    assert log_dump_main([d], out, err) == 0, err.getvalue()
    text = out.getvalue()
    assert "zxid 0x1 create" in text and "/p4" in text and "EOF reached after 4 txns." in text
    out = io.StringIO()
    assert snapshot_dump_main(["-d", list_snapshots(vdir)[-1][1]], out, err) == 0
    assert "/p3" in out.getvalue() and "data = b'data3'" in out.getvalue()
    assert snapshot_dump_main([os.path.join(d, "missing")], io.StringIO(), err) == 1
    assert log_dump_main([], io.StringIO(), io.StringIO()) == 2
    _scribble(list_logs(vdir)[0][1], b"XXXX")
    err = io.StringIO()
    assert log_dump_main([list_logs(vdir)[0][1]], io.StringIO(), err) == 1 and "not a ZooKeeper txn log" in err.getvalue()
    out = io.StringIO()
    assert purge_main([d, "-n", "3"], out, io.StringIO()) == 0
    assert purge_main([d, "-n", "1"], io.StringIO(), io.StringIO()) == 2
