"""Four-letter words of an ensemble, differential: Apache ZooKeeper 3.8 and trio-quorum, 3 voters + 1 observer.

Each kind's ensemble is started once (module fixture), one kazoo session is
opened and a znode written through the leader, and every peer's ``srvr``,
``mntr``, ``conf``, ``isro`` and ``dump`` is read once all of them know the
session (bounded polls of ``dump``).  The tests then compare, peer role by
peer role (leader, follower, observer: the sids differ between the runs):

* ``srvr``: the same lines in the same order (values that are counters or
  ports aside); Mode leader/follower/observer; the leader's proposal sizes line;
* ``mntr``: every ZooKeeper ``zk_`` key we print is one ZooKeeper prints, in
  ZooKeeper's relative order, and the ensemble rows (server and peer state,
  quorum size, the leader's learners / synced followers / observers / pending
  syncs, proposal sizes, leader uptime) are present on the same roles with the
  same values where the value is determined by the ensemble's shape;
* ``conf``: the same keys in order, membership lines of the same shape, the
  ``version=0`` ending without a newline;
* ``dump``: the leader's expiry sets, the learners' ``Global Sessions(1)``
  listing the session with its timeout;
* ``isro``: ``rw`` everywhere.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from tests.support.ensemble import Ensemble, Kind, four_letter_word, require_ensemble

WORDS = ("srvr", "mntr", "conf", "isro", "dump")
#: mntr keys whose values follow from the ensemble's shape (3 voters, 1 observer, idle).
SHAPE_KEYS = {
    "leader": {"zk_server_state": "leader", "zk_peer_state": "leading - broadcast", "zk_quorum_size": "3",
               "zk_learners": "3", "zk_synced_followers": "2", "zk_synced_non_voting_followers": "0",
               "zk_synced_observers": "1", "zk_pending_syncs": "0"},
    "follower": {"zk_server_state": "follower", "zk_peer_state": "following - broadcast", "zk_quorum_size": "3"},
    "observer": {"zk_server_state": "observer", "zk_peer_state": "observing - broadcast", "zk_quorum_size": "3"},
}
LEADER_ONLY = {"zk_learners", "zk_synced_followers", "zk_synced_non_voting_followers", "zk_synced_observers",
               "zk_pending_syncs", "zk_leader_uptime", "zk_last_proposal_size", "zk_min_proposal_size",
               "zk_max_proposal_size"}
#: ZooKeeper's summary metrics (avg/min/max/cnt/sum/pNN of one histogram): not printed here.
_SUMMARY = ("avg", "min", "max", "cnt", "sum", "p50", "p95", "p99", "p999")


def _collect(kind: Kind, root: Path) -> dict[str, dict[str, str]]:
    """{role: {word: output}} for the leader, one follower and the observer of a fresh ensemble."""
    with Ensemble(root / kind, kind=kind, size=3, observers=1) as ens:
        leader = ens.wait_serving(60)
        zk = KazooClient(hosts=ens.connect_string([leader]), timeout=10.0)
        zk.start(timeout=30)
        try:
            zk.create("/fourlw", b"x")
            session = zk.client_id[0]
            needle = f"0x{session:x}"
            follower = next(s for s in ens.participants if s != leader)
            observer = ens.observers[0]
            roles = {"leader": leader, "follower": follower, "observer": observer}
            deadline = time.monotonic() + 30
            # Every peer applies the createSession commit; poll (bounded) until all list it.
            while not all(needle in four_letter_word(ens.client_port(s), "dump") for s in roles.values()):
                assert time.monotonic() < deadline, f"{kind}: session {needle} not on every peer"
                time.sleep(0.05)
            out = {role: {w: four_letter_word(ens.client_port(sid), w) for w in WORDS}
                   for role, sid in roles.items()}
            out["session"] = {"id": needle}
            return out
        finally:
            zk.stop()
            zk.close()


@pytest.fixture(scope="module")
def words(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[Kind, dict[str, dict[str, str]]]]:
    require_ensemble("zookeeper")
    require_ensemble("trio-quorum")
    root = tmp_path_factory.mktemp("fourlw-ensemble")
    yield {kind: _collect(kind, root) for kind in ("zookeeper", "trio-quorum")}


def _lines(text: str) -> list[tuple[str, str]]:
    return [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in text.splitlines()) if k]


def _mntr(text: str) -> list[tuple[str, str]]:
    rows = [line.split("\t", 1) for line in text.splitlines() if line]
    # A summary is known by its zk_cnt_<name> row (zk_min_latency has none: a plain row).
    summaries = {k[len("zk_cnt_"):] for k, _ in rows if k.startswith("zk_cnt_")}
    drop = {f"zk_{s}_{name}" for name in summaries for s in _SUMMARY}
    return [(k, v) for k, v in rows if k not in drop]


ROLES = ("leader", "follower", "observer")
pytestmark = pytest.mark.zookeeper


@pytest.mark.parametrize("role", ROLES)
def test_srvr_same_lines_and_mode(words: dict[Kind, dict[str, dict[str, str]]], role: str) -> None:
    zk, tq = (_lines(words[k][role]["srvr"]) for k in ("zookeeper", "trio-quorum"))
    assert [k for k, _ in tq] == [k for k, _ in zk]
    assert dict(tq)["Mode"] == dict(zk)["Mode"] == role
    if role == "leader":
        assert re.fullmatch(r"-?\d+/-?\d+/-?\d+", dict(tq)["Proposal sizes last/min/max"])


@pytest.mark.parametrize("role", ROLES)
def test_mntr_ensemble_rows(words: dict[Kind, dict[str, dict[str, str]]], role: str) -> None:
    zk, tq = (_mntr(words[k][role]["mntr"]) for k in ("zookeeper", "trio-quorum"))
    zk_keys, tq_keys = [k for k, _ in zk], [k for k, _ in tq]
    ours_known = [k for k in tq_keys if k in set(zk_keys)]
    # Everything of ZooKeeper's we print, in ZooKeeper's order (ours may add a few of its own).
    assert ours_known == [k for k in zk_keys if k in set(tq_keys)]
    for key, value in SHAPE_KEYS[role].items():
        assert dict(zk).get(key) == value, f"zookeeper {role} {key}"
        assert dict(tq).get(key) == value, f"trio-quorum {role} {key}"
    leader_rows = {k for k in tq_keys if k in LEADER_ONLY}
    assert leader_rows == ({k for k in zk_keys if k in LEADER_ONLY})
    assert leader_rows == (LEADER_ONLY if role == "leader" else set())
    if role == "leader":
        uptime, leader_uptime = int(dict(tq)["zk_uptime"]), int(dict(tq)["zk_leader_uptime"])
        assert 0 <= leader_uptime <= uptime


@pytest.mark.parametrize("role", ROLES)
def test_conf_same_keys_and_membership(words: dict[Kind, dict[str, dict[str, str]]], role: str) -> None:
    zk, tq = (words[k][role]["conf"] for k in ("zookeeper", "trio-quorum"))
    def keys(text: str) -> list[str]:
        return [line.split("=", 1)[0] if not line.startswith("server.") else "server" for line in text.splitlines()]
    assert keys(tq) == keys(zk)
    assert tq.endswith("\nversion=0") and zk.endswith("\nversion=0")
    member = re.compile(r"server\.\d+=127\.0\.0\.1:\d+:\d+:(participant|observer);127\.0\.0\.1:\d+")
    for text in (zk, tq):
        servers = [line for line in text.splitlines() if line.startswith("server.")]
        assert len(servers) == 4 and all(member.fullmatch(s) for s in servers)
        assert sum(":observer;" in s for s in servers) == 1
        peer_type = dict(line.split("=", 1) for line in text.splitlines() if line.startswith("peerType"))
        assert peer_type["peerType"] == ("1" if role == "observer" else "0")


@pytest.mark.parametrize("role", ROLES)
def test_dump_and_isro(words: dict[Kind, dict[str, dict[str, str]]], role: str) -> None:
    for kind in ("zookeeper", "trio-quorum"):
        out = words[kind][role]
        session = words[kind]["session"]["id"]
        assert out["isro"] == "rw", kind
        head = out["dump"].split("ephemeral nodes dump:")[0]
        if role == "leader":
            assert head.startswith("SessionTracker dump:\nSession Sets ("), kind
            assert f"\t{session}\n" in head, kind
        else:
            assert head.startswith("SessionTracker dump:\nGlobal Sessions(1):\n"), (kind, head)
            assert re.search(rf"^{session}\t\d+ms$", head, re.M), (kind, head)
