"""SIGTERM stops every peer of a running ensemble promptly, with a clean exit status.

``trio-quorum serve zoo.cfg`` runs in the foreground: an operator (or a
service manager) stops it with SIGTERM, all peers at once when the ensemble is
taken down.  Apache ZooKeeper 3.8 (the reference) exits in ~0.3-0.4 s here
(status 143: the JVM's 128 + SIGTERM); ``STOP_BOUND`` leaves it several times
that.  trio-quorum must exit 0 within the same bound.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from signal import SIGTERM

import pytest

from tests.support.ensemble import Ensemble, Kind, kazoo_client, require_ensemble

START_TIMEOUT = 60.0
#: Every peer has exited this long after all were sent SIGTERM together.
STOP_BOUND = 1.5

_SLOW_STOP = (
    "trio-quorum defect: peers take ~2.4 s (followers) and ~4.2 s (leader) to exit after SIGTERM "
    "sent to all three together (one at a time: ~2 s to ~6 s); peer.log shows the QUORUM links "
    "down at once, then ~2 s until each ELECTION link's close, and the leader ~2 s more before "
    "'storage closed'"
)

KINDS = [
    pytest.param("zookeeper", marks=pytest.mark.zookeeper, id="zookeeper"),
    pytest.param("trio-quorum", id="trio-quorum", marks=pytest.mark.xfail(strict=True, reason=_SLOW_STOP)),
]


@pytest.mark.parametrize("kind", KINDS)
def test_sigterm_stops_every_peer_promptly(tmp_path: Path, kind: Kind) -> None:
    require_ensemble(kind)
    with Ensemble(tmp_path / kind, kind=kind, size=3, start_timeout=START_TIMEOUT) as ens:
        ens.wait_serving(START_TIMEOUT)
        with kazoo_client(ens.hosts) as zk:
            zk.create("/before-stop", b"1")  # a peer with a session and a log, not an idle one
        ens.wait_zxid_converged(START_TIMEOUT)
        t0 = time.monotonic()
        for sid in ens.sids:
            ens.kill(sid, SIGTERM)
        exited = {}
        for sid in ens.sids:
            proc = ens.peers[sid].proc
            assert proc is not None
            try:
                proc.wait(max(0.0, t0 + STOP_BOUND - time.monotonic()))
            except subprocess.TimeoutExpired:  # reported below, with the others
                continue
            exited[sid] = (proc.returncode, round(time.monotonic() - t0, 2))
        assert sorted(exited) == ens.sids, f"exited within {STOP_BOUND}s: {exited}"
        expected = 143 if kind == "zookeeper" else 0
        assert {code for code, _ in exited.values()} == {expected}, exited
