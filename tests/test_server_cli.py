"""The command line: config errors exit 2 naming key and line; memstore crash semantics."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import trio

from tests.support.server import REPO
from trio_quorum.core.datatree import DataTree
from trio_quorum.persistence.memstore import MemStore
from trio_quorum.protocol.consts import OpCode
from trio_quorum.protocol.txn import CreateSessionTxn, CreateTxn, TxnHeader


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trio_quorum", *args], cwd=cwd, capture_output=True, text=True, timeout=60,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )


def test_invalid_config_exits_2_with_key_and_line(tmp_path: Path) -> None:
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text("tickTime=2000\ndataDir=d\nclientPort=notaport\n")
    r = run_cli("serve", str(cfg), cwd=tmp_path)
    assert r.returncode == 2
    assert "line 3" in r.stderr and "clientPort" in r.stderr


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    r = run_cli("serve", str(tmp_path / "nope.cfg"), cwd=tmp_path)
    assert r.returncode == 2 and "cannot read" in r.stderr


async def test_memstore_loses_only_unsynced_txns() -> None:
    store = MemStore()
    store.append(TxnHeader(7, 0, 1, 0, OpCode.createSession), CreateSessionTxn(4000))
    store.append(TxnHeader(7, 1, 2, 0, OpCode.create), CreateTxn("/a", b"x", (), False, 1))
    await store.sync()
    store.append(TxnHeader(7, 2, 3, 0, OpCode.create), CreateTxn("/b", b"y", (), False, 2))
    lost = store.crash()
    assert [h.zxid for h, _ in lost] == [3]
    tree, sessions = DataTree(), {}
    assert await store.restore(tree, sessions) == 2
    assert "/a" in tree.nodes and "/b" not in tree.nodes and sessions == {7: 4000}
    store.fail_syncs(1)
    store.append(TxnHeader(7, 3, 3, 0, OpCode.create), CreateTxn("/c", b"", (), False, 3))
    try:
        await store.sync()
    except Exception as exc:
        assert type(exc).__name__ == "StorageFailed"
    else:
        raise AssertionError("injected fsync failure did not raise")
    await store.sync()
    assert store.last_zxid == 3 and not store.pending
    with trio.fail_after(1):
        await store.aclose()


def test_bench_subcommand_lists_the_scenarios() -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "trio_quorum", "bench", "--list"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "throughput.set.8x32" in out.stdout and "expiry" in out.stdout
