"""Five real peers lose leaders one by one, then their quorum, then get it back.

Over ``kind`` (Apache ZooKeeper 3.8 is the reference, trio-quorum the subject),
one five-peer ensemble goes through, in one test (starting five processes is
the expensive part):

1. cold start: every peer serves, one leader, four followers; the peers run
   in the foreground from ``zoo.cfg`` with the relative ``dataDir=data``, which
   lands under each peer's own directory (its working directory) and nowhere
   else;
2. SIGKILL of the leader: a new leader among the other four, writes continue,
   the session (connected to every peer) and its ephemeral survive;
3. SIGKILL of the second leader: three of five left, still a quorum: the same;
4. SIGKILL of a third peer: two of five, no quorum: both survivors stop
   serving (``srvr`` says so), a write gets no acknowledgement (kazoo
   times it out while it cannot connect), and it is not applied later;
5. restart of one killed peer: three of five again, a leader, writes resume,
   every write acknowledged before is there, the session and its ephemeral
   are still there, and the zxids of the three converge in a later epoch.

Every wait is bounded (kazoo timeouts, retry deadlines, the helper's ``srvr``
polls).  The one wait that runs to its end is ``NO_QUORUM_WRITE_WAIT``: it
asserts that nothing is acknowledged within it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import ConnectionLoss, NodeExistsError, SessionExpiredError
from kazoo.handlers.threading import KazooTimeoutError

from tests.support.ensemble import (
    Ensemble,
    Kind,
    StateLog,
    kazoo_client,
    op_retry,
    require_ensemble,
    trio_quorum_command,
)

KINDS = [
    pytest.param("zookeeper", marks=pytest.mark.zookeeper, id="zookeeper"),
    pytest.param("trio-quorum", id="trio-quorum"),
]

START_TIMEOUT = 60.0
#: A new leader must be serving this long after the old one was SIGKILLed.
FAILOVER_BOUND = 15.0
#: Session timeout of the clients (s): rides out every election and the quorum loss below.
SESSION_TIMEOUT = 15.0
#: How long a write is given, without quorum, to be (wrongly) acknowledged.
NO_QUORUM_WRITE_WAIT = 1.5


def _check_foreground_and_relative_data_dir(ens: Ensemble, root: Path) -> None:
    """Each peer is the process we started (not a daemon's parent), in its own directory, run as
    ``trio-quorum serve zoo.cfg`` / ``QuorumPeerMain zoo.cfg``; the relative ``dataDir=data`` of
    its zoo.cfg resolved against that directory: ZAB's files are under ``peerN/data/version-2``."""
    assert sorted(p.name for p in root.iterdir()) == [f"peer{s}" for s in ens.sids]
    for sid, peer in ens.peers.items():
        assert "dataDir=data\n" in peer.cfg_path.read_text()
        pid = ens.pid(sid)
        assert Path(f"/proc/{pid}/cwd").resolve() == peer.directory.resolve()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
        if ens.kind == "trio-quorum":
            # the console script (its interpreter line makes python argv[0])
            assert [a.decode() for a in argv[-3:]] == trio_quorum_command("serve", "zoo.cfg")[-3:]
        else:
            assert argv[-2:] == [b"org.apache.zookeeper.server.quorum.QuorumPeerMain", b"zoo.cfg"]
        version2 = peer.data_dir / "version-2"
        names = set(os.listdir(version2))
        assert {"acceptedEpoch", "currentEpoch"} <= names, (sid, names)
        assert any(n.startswith("log.") for n in names), (sid, names)
        assert sorted(os.listdir(peer.directory)) == ["data", "peer.log", "zoo.cfg"], sid


@pytest.mark.parametrize("kind", KINDS)
def test_five_peers_survive_two_leader_kills_lose_quorum_at_three_and_recover(tmp_path: Path, kind: Kind) -> None:
    require_ensemble(kind)
    root = tmp_path / kind
    with Ensemble(root, kind=kind, size=5, tick_time=300, start_timeout=START_TIMEOUT) as ens:
        # 1. cold start
        first = ens.wait_serving(START_TIMEOUT)
        assert sorted(ens.modes().values()) == ["follower"] * 4 + ["leader"]
        retry = op_retry(deadline=FAILOVER_BOUND)
        acked: dict[str, bytes] = {}
        states = StateLog()
        with kazoo_client(ens.hosts, timeout=SESSION_TIMEOUT) as owner:
            owner.add_listener(states)
            session = owner.client_id[0]
            owner.create("/owner", b"alive", ephemeral=True)

            def ephemeral_is_kept(zk: KazooClient) -> None:
                stat = retry(zk.exists, "/owner")
                assert stat is not None and stat.ephemeralOwner == session
                retry(owner.sync, "/")
                assert owner.client_id[0] == session and owner.state == KazooState.CONNECTED

            with kazoo_client(ens.hosts, timeout=SESSION_TIMEOUT) as zk:
                zk.create("/q", b"")

                def write(name: str) -> None:
                    value = name.encode()
                    try:
                        retry(zk.create, f"/q/{name}", value)
                    except NodeExistsError:  # an attempt applied before its connection dropped
                        assert zk.get(f"/q/{name}")[0] == value
                    acked[f"/q/{name}"] = value

                for i in range(5):
                    write(f"start-{i}")
                ens.wait_zxid_converged(FAILOVER_BOUND)  # every peer applied (so logged) them
                _check_foreground_and_relative_data_dir(ens, root)

                # 2. the first leader killed: four peers left
                ens.kill(first)
                second = ens.wait_leader(FAILOVER_BOUND, exclude=(first,))
                for i in range(5):
                    write(f"after-first-kill-{i}")
                ephemeral_is_kept(zk)

                # 3. the second leader killed: three of five, still a quorum
                ens.kill(second)
                third = ens.wait_leader(FAILOVER_BOUND, exclude=(first, second))
                for i in range(5):
                    write(f"after-second-kill-{i}")
                ens.wait_serving(FAILOVER_BOUND)
                assert len(ens.live()) == 3
                ephemeral_is_kept(zk)
                zxid_before_loss = ens.wait_zxid_converged(FAILOVER_BOUND)

                # 4. a third peer killed: two of five, no quorum
                ens.kill(third)
                survivors = ens.live()
                assert len(survivors) == 2
                ens.wait_not_serving(survivors, FAILOVER_BOUND)
                pending = zk.create_async("/q/without-quorum", b"must not be acknowledged")
                with pytest.raises((KazooTimeoutError, ConnectionLoss, SessionExpiredError)):
                    pending.get(timeout=NO_QUORUM_WRITE_WAIT)
                assert {s: ens.mode(s) for s in survivors} == {s: None for s in survivors}
                assert zk.state != KazooState.CONNECTED
            # The writer is stopped with its request unsent (kazoo fails its queue on stop): the
            # write can exist later only if a peer without quorum took it.

            # 5. one peer back: three of five
            ens.start_peer(first)
            leader = ens.wait_leader(START_TIMEOUT)
            ens.wait_serving(START_TIMEOUT)
            assert len(ens.live()) == 3
            with kazoo_client(ens.hosts, timeout=SESSION_TIMEOUT) as zk:
                retry(zk.create, "/q/after-recovery", b"back")
                zk.sync("/")
                assert zk.exists("/q/without-quorum") is None
                for path, value in acked.items():
                    assert zk.get(path)[0] == value, path
                assert len(zk.get_children("/q")) == len(acked) + 1
                ephemeral_is_kept(zk)  # the owner's session outlived the loss of quorum
            seen = list(states.states)  # before owner.stop(), which ends in LOST
        zxid = ens.wait_zxid_converged(FAILOVER_BOUND)
        assert zxid >> 32 > zxid_before_loss >> 32, (hex(zxid), hex(zxid_before_loss))
        assert leader in ens.live()
        for sid in ens.live():  # each of the three, alone, has every acknowledged write
            with kazoo_client(ens.connect_string([sid]), timeout=SESSION_TIMEOUT) as one:
                one.sync("/")
                assert sorted(one.get_children("/q")) == sorted(
                    [p.rsplit("/", 1)[1] for p in acked] + ["after-recovery"]
                ), sid
                assert one.exists("/owner") is None  # the owner closed its session
        assert ens.peers[first].exit_codes == [-9] and ens.peers[second].exit_codes == [-9]
    assert KazooState.LOST not in seen, seen
