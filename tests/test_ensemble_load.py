"""Failover under load: nothing acknowledged is lost, on any peer.

Kazoo clients (``Writer`` threads, each with its own session, connected to
every peer) write sequentially and continuously: creates of new nodes and
setData of one counter node per writer, each write retried across connection
loss within a deadline, every acknowledged write recorded with its value.
While they write, peers are SIGKILLed (and restarted); each step waits for a
bounded number of further acknowledged writes, so each happens mid-load:

* ``..._a_leader_kill_under_load``: the leader is killed; the two others go on;
* ``..._kills_and_restarts_under_load``: the leader is killed and restarted,
  then a follower is killed and restarted;
* ``slow``: five peers, more writers, two rounds of (leader kill, second leader
  kill — three of five left —, restarts, follower kill and restart).

At the end:

* no writer failed, and no writer stalled longer than ``FAILOVER_BOUND``;
* the peers' ``srvr`` Zxids converge;
* on EVERY live peer, alone (a client connected to it only, ``sync`` then
  reads), every acknowledged create is present with its value, every counter
  holds its last acknowledged value or a later attempted one, and the peers'
  trees under ``/load`` are identical (data, version, mzxid, owner);
* every writer kept its session throughout (never LOST, same session id) and
  its ephemeral node is on every live peer, owned by that session.

Parametrized over ``kind``: Apache ZooKeeper 3.8 (the reference) and trio-quorum.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import NodeExistsError

from tests.support.ensemble import (
    Ensemble,
    Kind,
    StateLog,
    kazoo_client,
    op_retry,
    require_ensemble,
)

KINDS = [
    pytest.param("zookeeper", marks=pytest.mark.zookeeper, id="zookeeper"),
    pytest.param("trio-quorum", id="trio-quorum"),
]
#: Restarting a killed peer mid-load meets a trio-quorum bug (tests/test_ensemble_rejoin.py).
KINDS_RESTARTS = [
    pytest.param("zookeeper", marks=pytest.mark.zookeeper, id="zookeeper"),
    pytest.param("trio-quorum", id="trio-quorum"),
]

START_TIMEOUT = 60.0
#: A restarted peer serves again within this bound (ZooKeeper: under 2 s here, even under load).
REJOIN_BOUND = 10.0
#: A new leader serves, and every writer's next write is acknowledged, within this bound.
FAILOVER_BOUND = 15.0
#: Writers' session timeout (s): outlives every failover here.
SESSION_TIMEOUT = 15.0
#: Upper bounds on the load itself, whatever happens.
MAX_OPS_PER_WRITER = 5000
LOAD_DEADLINE = 240.0


class Progress:
    """The count of acknowledged writes, all writers together, with a bounded wait on it."""

    def __init__(self) -> None:
        self.count = 0
        self.failed = False
        self._cv = threading.Condition()

    def bump(self, *, failed: bool = False) -> None:
        with self._cv:
            self.count += 1
            self.failed = self.failed or failed
            self._cv.notify_all()

    def wait_more(self, more: int, timeout: float) -> int:
        """Wait until ``more`` writes beyond the current count are acknowledged (or a writer
        failed); return the new count."""
        with self._cv:
            target = self.count + more
            ok = self._cv.wait_for(lambda: self.count >= target or self.failed, timeout)
            assert ok, f"only {self.count} of {target} writes acknowledged within {timeout}s"
            assert not self.failed, "a writer failed (see its error)"
            return self.count


@dataclass
class Writer:
    """One kazoo session writing ``/load/<k>/nNNNNN`` (creates) and ``/load/<k>/counter`` (sets)."""

    k: int
    hosts: str
    progress: Progress
    stop: threading.Event
    release: threading.Event
    created: dict[str, bytes] = field(default_factory=dict)
    counter_acked: int = -1
    counter_attempted: int = -1
    ack_times: list[float] = field(default_factory=list)
    session: int | None = None
    error: BaseException | None = None
    hit_bound: bool = False
    states: StateLog = field(default_factory=StateLog)
    ready: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    @property
    def base(self) -> str:
        return f"/load/{self.k}"

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"writer-{self.k}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            with kazoo_client(self.hosts, timeout=SESSION_TIMEOUT) as zk:
                zk.add_listener(self.states)
                self.session = zk.client_id[0]
                zk.create(f"/load/eph-{self.k}", str(self.k).encode(), ephemeral=True)
                zk.create(self.base, b"")
                zk.create(f"{self.base}/counter", b"-1")
                self.ready.set()
                self._write_until_stopped(zk)
                self.done.set()
                # keep the session (and its ephemeral) until the main thread has checked them
                self.release.wait(LOAD_DEADLINE)
        except BaseException as exc:  # reported by the main thread
            self.error = exc
            self.progress.bump(failed=True)
        finally:
            self.ready.set()
            self.done.set()

    def _write_until_stopped(self, zk: KazooClient) -> None:
        retry = op_retry(deadline=FAILOVER_BOUND)
        deadline = time.monotonic() + LOAD_DEADLINE
        i = 0
        while not self.stop.is_set():
            if i >= MAX_OPS_PER_WRITER or time.monotonic() >= deadline:
                self.hit_bound = True
                return
            if i % 2 == 0:
                path, value = f"{self.base}/n{i:05d}", f"{self.k}:{i}".encode()
                try:
                    retry(zk.create, path, value)
                except NodeExistsError:  # our attempt was applied before its connection dropped
                    pass
                self.created[path] = value
            else:
                self.counter_attempted = i
                retry(zk.set, f"{self.base}/counter", str(i).encode())
                self.counter_acked = i
            self.ack_times.append(time.monotonic())
            self.progress.bump()
            i += 1

    def longest_stall(self) -> float:
        gaps = [b - a for a, b in zip(self.ack_times, self.ack_times[1:], strict=False)]
        return max(gaps, default=0.0)


def _dump(zk: KazooClient) -> dict[str, tuple[bytes, int, int, int]]:
    """``/load``'s tree as {path: (data, version, mzxid, ephemeralOwner)} (reads pipelined)."""
    paths = ["/load"]
    for child in zk.get_children("/load"):
        paths.append(f"/load/{child}")
        if not child.startswith("eph-"):
            paths.extend(f"/load/{child}/{c}" for c in zk.get_children(f"/load/{child}"))
    pending = [(p, zk.get_async(p)) for p in paths]
    out = {}
    for p, a in pending:
        data, stat = a.get(timeout=30)
        out[p] = (data, stat.version, stat.mzxid, stat.ephemeralOwner)
    return out


def _check_peer(ens: Ensemble, sid: int, writers: list[Writer]) -> dict[str, tuple[bytes, int, int, int]]:
    with kazoo_client(ens.connect_string([sid]), timeout=SESSION_TIMEOUT) as zk:
        zk.sync("/")
        tree = _dump(zk)
    for w in writers:
        for path, value in w.created.items():
            assert path in tree, f"peer {sid} lost acknowledged create {path}"
            assert tree[path][0] == value, (sid, path, tree[path][0], value)
        counter = int(tree[f"{w.base}/counter"][0])
        assert w.counter_acked <= counter <= w.counter_attempted, (sid, w.k, counter, w.counter_acked)
        eph = tree.get(f"/load/eph-{w.k}")
        assert eph is not None and eph[3] == w.session, f"peer {sid}: writer {w.k}'s ephemeral: {eph}"
    return tree


def _run_under_load(
    ens: Ensemble, n_writers: int, chunk: int, scenario: Callable[[Callable[[], None]], None]
) -> list[Writer]:
    """Start ``n_writers`` writers, run ``scenario(more)`` (``more()`` waits for ``chunk`` more
    acknowledged writes), stop the writers, check every peer; return the writers."""
    with kazoo_client(ens.hosts, timeout=SESSION_TIMEOUT) as zk:
        zk.create("/load", b"")
    progress, stop, release = Progress(), threading.Event(), threading.Event()
    writers = [Writer(k, ens.hosts, progress, stop, release) for k in range(n_writers)]
    try:
        for w in writers:
            w.start()
        for w in writers:
            assert w.ready.wait(START_TIMEOUT) and w.error is None, w.error

        def more() -> None:
            progress.wait_more(chunk, FAILOVER_BOUND * 2)

        more()
        scenario(more)
        more()
        stop.set()
        for w in writers:
            assert w.done.wait(FAILOVER_BOUND * 2), f"writer {w.k} did not stop"
        for w in writers:
            assert w.error is None, f"writer {w.k}: {w.error!r}"
            assert not w.hit_bound, f"writer {w.k} ran out of its bounds before the scenario ended"
            assert w.longest_stall() < FAILOVER_BOUND, (w.k, w.longest_stall())
            assert w.counter_acked > 0 and len(w.created) > 0

        ens.wait_serving(REJOIN_BOUND)
        ens.wait_zxid_converged(FAILOVER_BOUND * 2)
        trees = {sid: _check_peer(ens, sid, writers) for sid in ens.live()}
        first, *others = trees.values()
        for sid, tree in trees.items():
            assert tree == first, f"peer {sid}'s /load differs from peer {next(iter(trees))}'s"
        for w in writers:
            assert KazooState.LOST not in w.states.states, (w.k, w.states.states)
    finally:
        stop.set()
        release.set()
        for w in writers:
            if w.thread is not None:
                w.thread.join(SESSION_TIMEOUT + 10)
    return writers


def _follower(ens: Ensemble) -> int:
    leader = ens.wait_serving(REJOIN_BOUND)
    return next(s for s in ens.live() if s != leader)


#: The leader-kill case meets, in about one run in three, a trio-quorum bug that loses
#: acknowledged writes: marked xfail *non*-strict, as a strict mark would fail on the runs
#: that pass.  Remove the mark once it is fixed.
KINDS_LEADER_KILL = [
    pytest.param("zookeeper", marks=pytest.mark.zookeeper, id="zookeeper"),
    pytest.param(
        "trio-quorum",
        id="trio-quorum",
        marks=pytest.mark.xfail(
            strict=False,
            reason="trio-quorum bug (intermittent): the new leader is elected with, and establishes "
            "its epoch from, its last *applied* zxid, not its last *logged* one; proposals logged "
            "on a quorum (so committed and acknowledged by the killed leader) but whose COMMIT "
            "was lost are never applied: the write is missing from every tree, though in every "
            "peer's txn log",
        ),
    ),
]


@pytest.mark.parametrize("kind", KINDS_LEADER_KILL)
def test_acknowledged_writes_survive_a_leader_kill_under_load(tmp_path: Path, kind: Kind) -> None:
    require_ensemble(kind)
    with Ensemble(tmp_path / kind, kind=kind, size=3, start_timeout=START_TIMEOUT) as ens:

        def scenario(more: Callable[[], None]) -> None:
            leader = ens.wait_serving(START_TIMEOUT)
            ens.kill(leader)
            ens.wait_leader(FAILOVER_BOUND, exclude=(leader,))
            more()  # writes go on with two peers
            more()

        writers = _run_under_load(ens, n_writers=3, chunk=250, scenario=scenario)
        assert sum(len(w.ack_times) for w in writers) >= 4 * 250


@pytest.mark.parametrize("kind", KINDS_RESTARTS)
def test_acknowledged_writes_survive_kills_and_restarts_under_load(tmp_path: Path, kind: Kind) -> None:
    require_ensemble(kind)
    with Ensemble(tmp_path / kind, kind=kind, size=3, start_timeout=START_TIMEOUT) as ens:

        def scenario(more: Callable[[], None]) -> None:
            leader = ens.wait_serving(START_TIMEOUT)
            ens.kill(leader)
            ens.wait_leader(FAILOVER_BOUND, exclude=(leader,))
            more()  # writes go on with two peers
            ens.start_peer(leader)  # restarted mid-load: catches up while writes go on
            more()
            ens.wait_answering(leader, START_TIMEOUT)
            ens.wait_serving(REJOIN_BOUND)
            follower = _follower(ens)
            ens.kill(follower)
            more()
            ens.start_peer(follower)
            more()
            ens.wait_answering(follower, START_TIMEOUT)

        writers = _run_under_load(ens, n_writers=3, chunk=150, scenario=scenario)
        assert sum(len(w.ack_times) for w in writers) >= 6 * 150


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS_RESTARTS)
def test_acknowledged_writes_survive_repeated_kills_of_five_peers_under_load(tmp_path: Path, kind: Kind) -> None:
    require_ensemble(kind)
    with Ensemble(tmp_path / kind, kind=kind, size=5, start_timeout=START_TIMEOUT) as ens:

        def scenario(more: Callable[[], None]) -> None:
            for _round in range(2):
                first = ens.wait_serving(REJOIN_BOUND)
                ens.kill(first)
                second = ens.wait_leader(FAILOVER_BOUND, exclude=(first,))
                more()
                ens.kill(second)  # three of five left
                ens.wait_leader(FAILOVER_BOUND, exclude=(first, second))
                more()
                ens.start_peer(first)
                more()
                ens.start_peer(second)
                more()
                for sid in (first, second):
                    ens.wait_answering(sid, START_TIMEOUT)
                follower = _follower(ens)
                ens.kill(follower)
                more()
                ens.start_peer(follower)
                more()
                ens.wait_answering(follower, START_TIMEOUT)

        writers = _run_under_load(ens, n_writers=4, chunk=200, scenario=scenario)
        assert sum(len(w.ack_times) for w in writers) >= 13 * 200
