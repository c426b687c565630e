"""What a SIGKILL during a snapshot leaves behind, and who cleans it up.

The crash test (``test_crash.py``) kills the server while fuzzy snapshots are
being written; each such kill leaves ``version-2/snapshot.<zxid>.tmp`` (the
half-written temp file ``FileStore._snapshot_task`` renames on success).
Recovery ignores it, and restore deletes it (before anything could be
writing a new one), so a server killed mid-snapshot now and then does not leak
disk.  (ZooKeeper writes no temp snapshot files, so it has no such leftovers.)

The scenario is built directly, the way the kill leaves it: a real dataDir
written by the server, plus the first half of a real snapshot under the temp
name.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from tests.support.server import REPO, ServerProcess, write_cfg

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_restart_and_purge_remove_stale_snapshot_temp_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cfg = write_cfg(tmp_path, data_dir=data, extra="snapCount=20\n")
    with ServerProcess(cfg) as srv:
        zk = KazooClient(srv.hosts, timeout=5.0)
        zk.start(timeout=10)
        try:
            for i in range(60):
                zk.create(f"/n{i}", b"x" * 100)
        finally:
            zk.stop()
            zk.close()
        port = srv.port
    vdir = data / "version-2"
    snaps = sorted(
        (f for f in vdir.glob("snapshot.*") if not f.name.endswith(".tmp")),
        key=lambda f: int(f.name.split(".")[1], 16),
    )
    newest = snaps[-1]
    # what a SIGKILL halfway through writing the next snapshot leaves
    stale = vdir / f"snapshot.{int(newest.name.split('.')[1], 16) + 1:x}.tmp"
    body = newest.read_bytes()
    stale.write_bytes(body[: len(body) // 2])

    with ServerProcess(write_cfg(tmp_path, port=port, data_dir=data, extra="snapCount=20\n")):
        pass  # recovery ignores the temp file (checked by the crash test); does it remove it?
    res = subprocess.run(
        [sys.executable, "-m", "trio_quorum", "purge", str(data), "-n", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert not stale.exists(), "a stale snapshot temp file survived a restart and a purge"
