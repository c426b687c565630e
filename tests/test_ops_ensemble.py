"""``trio-quorum ensemble`` and ``trio-quorum status`` with real processes.

The ensemble command is run as a real process; the test connects kazoo to the
printed connect string, asks ``status``, stops the command with SIGTERM and
checks that every peer process it printed is gone (only the PID we started is
signalled; the peers' PIDs are only checked, never signalled).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.test_first_hour import ENV, read_until, run_cli, stop


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    return True


def test_ensemble_serves_replicates_and_sigterm_stops_every_peer(tmp_path: Path) -> None:
    from kazoo.client import KazooClient

    proc = subprocess.Popen(
        [sys.executable, "-m", "trio_quorum", "ensemble", "--size", "3", "--observers", "1", "--dir", "ens"],
        cwd=tmp_path, env=ENV, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
    )
    try:
        text = read_until(proc, "serving, leader is peer", timeout=120)
        pids = [int(p) for p in re.findall(r"pid (\d+)", text)]
        connect = re.search(r"connect string: (\S+)", text)
        assert len(pids) == 4 and connect is not None, text
        for n in range(1, 5):
            assert (tmp_path / "ens" / f"peer{n}" / "data" / "myid").read_text().strip() == str(n)
            assert "server.4=" in (tmp_path / "ens" / f"peer{n}" / "zoo.cfg").read_text()
        zk = KazooClient(hosts=connect.group(1))
        zk.start(timeout=30)
        try:
            zk.create("/from-test", b"v")
        finally:
            zk.stop()
            zk.close()
        st = run_cli("status", connect.group(1), "127.0.0.1:1", cwd=tmp_path)
        assert st.returncode == 1  # one unreachable server
        lines = st.stdout.splitlines()
        modes = [ln.split()[1] for ln in lines[1:5]]
        assert sorted(modes) == ["follower", "follower", "leader", "observer"], st.stdout
        zxids = {ln.split()[2] for ln in lines[1:5]}
        assert len(zxids) == 1 and zxids != {"0x0"}, st.stdout  # the write reached every peer
        assert "unreachable" in lines[5]
        ok = run_cli("status", connect.group(1), cwd=tmp_path)
        assert ok.returncode == 0, ok.stdout
        assert all(_alive(p) for p in pids)
        code = stop(proc)  # SIGTERM to the ensemble command only
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert code == 0
    assert [p for p in pids if _alive(p)] == [], "a peer outlived 'trio-quorum ensemble'"
    log = (tmp_path / "ens" / "peer1" / "peer.log").read_text()
    assert "server stopped" in log


def test_ensemble_refuses_a_directory_of_another_layout(tmp_path: Path) -> None:
    (tmp_path / "ens" / "peer1").mkdir(parents=True)
    (tmp_path / "ens" / "peer1" / "zoo.cfg").write_text(
        "server.1=127.0.0.1:1:2;127.0.0.1:3\nserver.2=127.0.0.1:4:5;127.0.0.1:6\n"
    )
    r = run_cli("ensemble", "--size", "3", "--dir", "ens", cwd=tmp_path)
    assert r.returncode == 2 and "another layout" in r.stderr


def test_status_of_unreachable_servers_and_bad_ports(tmp_path: Path) -> None:
    r = run_cli("status", "127.0.0.1:1", cwd=tmp_path)
    assert r.returncode == 1 and "unreachable" in r.stdout
    r = run_cli("status", "127.0.0.1:notaport", cwd=tmp_path)
    assert r.returncode == 2 and "notaport" in r.stderr


