"""Snapshots written by a forked child (FileStore's default where fork + pidfd exist).

The child gets a copy-on-write image of the tree at the instant of the fork,
so the snapshot is consistent; the event loop only waits for its pidfd.
Checked here:

* a forked snapshot holds exactly the tree as it was when the snapshot
  started, even while the parent keeps changing the tree, and restores;
* it is byte-for-byte the snapshot the in-loop writer produces for the same
  tree;
* the child closes every inherited fd: a socket the parent closes during a
  snapshot is really closed (its peer sees EOF);
* cancelling the wait (the store stopping) kills the child and removes its
  temp file; a failing child is reported as a failed snapshot (nothing lost).
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest
import trio

from trio_quorum.core.datatree import DataTree
from trio_quorum.persistence import filestore as filestore_mod
from trio_quorum.persistence.files import list_snapshots
from trio_quorum.persistence.filestore import FileStore
from trio_quorum.protocol.consts import OpCode
from trio_quorum.protocol.data import OPEN_ACL_UNSAFE
from trio_quorum.protocol.txn import CreateTxn, SetDataTxn, TxnHeader

pytestmark = pytest.mark.skipif(
    not (hasattr(os, "fork") and hasattr(os, "pidfd_open")), reason="needs os.fork and os.pidfd_open (Linux)"
)

BOUND = 20.0


def _create(tree: DataTree, zxid: int, path: str) -> tuple[TxnHeader, CreateTxn]:
    parent = tree.nodes[path.rsplit("/", 1)[0] or "/"]
    return TxnHeader(7, zxid, zxid, 1000 + zxid, OpCode.create), CreateTxn(
        path, b"v%d" % zxid, OPEN_ACL_UNSAFE, False, parent.cversion + 1
    )


async def _filled(d: Path, n: int, **kw: object) -> tuple[FileStore, DataTree, dict[int, int]]:
    store = FileStore(str(d), force_sync=False, **kw)  # type: ignore[arg-type]
    tree: DataTree = DataTree()
    sessions: dict[int, int] = {0x100: 30000}
    await store.restore(tree, sessions)
    for z in range(1, n + 1):
        hdr, rec = _create(tree, z, f"/n{z}")
        store.append(hdr, rec)
        tree.apply(hdr, rec)
    await store.sync()
    return store, tree, sessions


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _image(tree: DataTree) -> dict[str, tuple[bytes, bytes]]:
    return {p: (n.data, n.stat_bytes()) for p, n in tree.nodes.items()}


async def _restore(d: Path) -> tuple[DataTree, dict[int, int], int]:
    tree: DataTree = DataTree()
    sessions: dict[int, int] = {}
    store = FileStore(str(d))
    last = await store.restore(tree, sessions)
    await store.aclose()
    return tree, sessions, last


async def test_forked_snapshot_is_the_tree_at_its_start_and_restores(tmp_path: Path) -> None:
    store, tree, sessions = await _filled(tmp_path / "a", 2000, fork_snapshots=True)
    assert store.fork_snapshots
    expected = _image(tree)
    zxid = tree.last_processed_zxid
    async with trio.open_nursery() as nursery:
        done: list[str] = []

        async def snap() -> None:
            done.append(await store.take_snapshot(tree, sessions))

        nursery.start_soon(snap)
        await trio.testing.wait_all_tasks_blocked()
        # The parent keeps writing while the child encodes: none of it may show.
        for z in range(zxid + 1, zxid + 200):
            hdr, rec = TxnHeader(7, z, z, 5000 + z, OpCode.setData), SetDataTxn(f"/n{z - zxid}", b"new", 1)
            store.append(hdr, rec)
            tree.apply(hdr, rec)
        await store.sync()
    assert store.fork_snapshots  # did not fall back to the in-loop writer
    assert done and done[0].endswith(f"snapshot.{zxid:x}")
    await store.aclose()
    # A restore from that snapshot alone (the log holds the later writes too).
    restored, rsessions, _last = await _restore(tmp_path / "a")
    assert rsessions == sessions
    assert _image(restored) != expected  # the log replayed the later setData txns...
    for name in os.listdir(store.log_dir):  # ...and without the logs, exactly the snapshot
        if name.startswith("log."):
            os.remove(os.path.join(store.log_dir, name))
    only_snapshot, _, _last = await _restore(tmp_path / "a")
    assert only_snapshot.last_processed_zxid == zxid
    assert _image(only_snapshot) == expected


async def test_forked_and_in_loop_snapshots_are_the_same_bytes(tmp_path: Path) -> None:
    store, tree, sessions = await _filled(tmp_path / "a", 500, fork_snapshots=True)
    forked = await store.take_snapshot(tree, sessions)
    store.fork_snapshots = False
    os.rename(forked, forked + ".forked")
    in_loop = await store.take_snapshot(tree, sessions)
    assert in_loop == forked
    assert _read(forked + ".forked") == _read(in_loop)
    await store.aclose()


async def test_the_child_holds_no_inherited_socket_and_dies_when_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, tree, sessions = await _filled(tmp_path / "a", 50, fork_snapshots=True)
    ours, theirs = socket.socketpair()
    real_encode = filestore_mod.encode_snapshot

    def stuck_encode(*args: object, **kwargs: object) -> object:
        # Runs in the child (after it closed inherited fds): never finishes,
        # until the parent's SIGKILL.
        while True:
            signal.pause()
        return real_encode(*args, **kwargs)  # pragma: no cover

    monkeypatch.setattr(filestore_mod, "encode_snapshot", stuck_encode)
    reaped: list[int] = []
    real_reap = filestore_mod._reap

    def recording_reap(pid: int, *, kill: bool = False) -> int:
        reaped.append(pid)
        return real_reap(pid, kill=kill)

    monkeypatch.setattr(filestore_mod, "_reap", recording_reap)
    with trio.move_on_after(BOUND) as outer:
        async with trio.open_nursery() as nursery:
            cancel = trio.CancelScope()

            async def snap() -> None:
                with cancel:
                    await store.take_snapshot(tree, sessions)

            nursery.start_soon(snap)
            await trio.testing.wait_all_tasks_blocked()
            # The parent closes its end while the child is alive: the peer sees EOF
            # only if the child closed its inherited copy.
            ours.close()
            theirs.settimeout(BOUND)
            assert await trio.to_thread.run_sync(theirs.recv, 1) == b""
            theirs.close()
            cancel.cancel()
    assert not outer.cancelled_caught
    assert len(reaped) == 1
    with pytest.raises(ProcessLookupError):
        os.kill(reaped[0], 0)  # killed and reaped
    assert not [n for n in os.listdir(store.snap_dir) if n.endswith(".tmp")]
    await store.aclose()


async def test_a_failing_child_is_a_failed_snapshot_and_nothing_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, tree, sessions = await _filled(tmp_path / "a", 50, fork_snapshots=True)
    before = list_snapshots(store.snap_dir)

    def broken_encode(*args: object, **kwargs: object) -> object:
        raise RuntimeError("injected encoder failure (in the child)")

    monkeypatch.setattr(filestore_mod, "encode_snapshot", broken_encode)
    with pytest.raises(Exception, match="snapshot failed"):
        await store.take_snapshot(tree, sessions)
    assert list_snapshots(store.snap_dir) == before
    assert not [n for n in os.listdir(store.snap_dir) if n.endswith(".tmp")]
    await store.aclose()
    restored, _, last = await _restore(tmp_path / "a")
    assert last == 50 and _image(restored) == _image(tree)
