"""Runners of the ensemble figures that are not throughput: fail-over, cold start,
follower catch-up, memory per peer.  (Ensemble throughput is the ``throughput``
runner of :mod:`.scenarios` with the load spread over, or placed on, the peers.)

Each returns a JSON-able dict of measured values.  Times are ``time.monotonic``
differences taken in this process; a "write acknowledged" is a reply with
``err == 0`` read off the socket.  Polls of ``srvr`` and retries of a refused
connection run every few ms: that is the resolution of these figures (stated in
the results as ``poll_ms``).
"""

from __future__ import annotations

import os
import signal
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from ..protocol.consts import OpCode
from . import _codec as codec
from .client import SyncClient, ZkError
from .ensemble import Ensemble
from .loadgen import LoadSpec, run_load
from .servers import HOST

__all__ = ["run_failover", "run_coldstart", "run_catchup", "run_ens_memory"]

FAILOVER_PATH = "/bench/failover"
RETRY = 0.002  # pause after a refused / broken connection before the next attempt


def _write(c: SyncClient, path: str) -> int:
    """setData ``path``; the zxid of the reply (raises ZkError / OSError)."""
    payload, _ = c.call(OpCode.setData, codec.set_data_request(path, b"w"))
    return int(codec.decode_reply_header(payload)[1])


class _Writer(threading.Thread):
    """One session writing ``path`` back to back; on any failure a new session on the next peer.

    Records the time and zxid of every acknowledged write after :meth:`mark`.
    """

    def __init__(self, ens: Ensemble, start: int, path: str) -> None:
        super().__init__(daemon=True)
        self.ens, self.i, self.path = ens, start, path
        self.stop_evt = threading.Event()
        self.lock = threading.Lock()
        self.acks: list[tuple[float, int]] = []
        self.count = 0
        self.failures = 0

    def mark(self) -> None:
        with self.lock:
            self.acks = []

    def run(self) -> None:
        c: SyncClient | None = None
        sids = self.ens.sids
        while not self.stop_evt.is_set():
            try:
                if c is None:
                    port = self.ens.peers[sids[self.i % len(sids)]].port
                    c = SyncClient(HOST, port, timeout_ms=6000, io_timeout=0.5)
                z = _write(c, self.path)
                t = time.monotonic()
                with self.lock:
                    self.acks.append((t, z))
                    if len(self.acks) > 10000:
                        del self.acks[:5000]
                self.count += 1
            except (OSError, ZkError, ValueError):
                self.failures += 1
                if c is not None:
                    c.abandon()
                c = None
                self.i += 1
                time.sleep(RETRY)
        if c is not None:
            c.abandon()

    def first_ack(self, after_epoch: int) -> float | None:
        with self.lock:
            for t, z in self.acks:
                if z >> 32 > after_epoch:
                    return t
        return None


def run_failover(ens: Ensemble, sc: Any, settings: Any) -> dict[str, Any]:
    """``kill -9`` the leader under write load, ``failover_kills`` times.

    Load: two sessions per peer writing back to back (they reconnect to the next
    peer with a new session when theirs breaks).  Per kill: ``elected_s`` = kill to the
    first ``srvr`` of a survivor saying leader; ``first_write_s`` = kill to the first
    write acknowledged with a zxid of a newer epoch (so committed by the new leader).
    Then the killed peer is restarted and the ensemble waits until every peer serves
    and the writers are acknowledged again before the next kill.
    """
    c = SyncClient(HOST, ens.port)
    try:
        c.ensure_path(FAILOVER_PATH)
    finally:
        c.close()
    writers = [_Writer(ens, i, FAILOVER_PATH) for i in range(2 * len(ens.sids))]
    for w in writers:
        w.start()
    kills: list[dict[str, Any]] = []
    try:
        for _ in range(max(1, settings.failover_kills)):
            leader = ens.wait_serving(settings.ready_timeout)
            _wait_acks(writers, 20, 30.0)
            epoch = max(z for w in writers for _, z in list(w.acks)[-1:]) >> 32
            survivors = [s for s in ens.running() if s != leader]
            for w in writers:
                w.mark()
            proc = ens.peers[leader].proc
            assert proc is not None
            t0 = time.monotonic()
            os.kill(proc.pid, signal.SIGKILL)
            elected = first = None
            new_leader = None
            deadline = t0 + settings.ready_timeout
            while (elected is None or first is None) and time.monotonic() < deadline:
                if elected is None:
                    for s in survivors:
                        if ens.mode(s) == "leader":
                            elected, new_leader = time.monotonic() - t0, s
                            break
                if first is None:
                    ts = [t for w in writers if (t := w.first_ack(epoch)) is not None]
                    if ts:
                        first = min(ts) - t0
                time.sleep(0.005)
            proc.wait(timeout=15)
            kills.append(
                {
                    "killed": leader,
                    "new_leader": new_leader,
                    "elected_s": elected,
                    "first_write_s": first,
                }
            )
            if first is None:
                raise RuntimeError(f"no write acknowledged by a new leader: {kills[-1]}")
            ens.peers[leader].start()
            ens.wait_serving(settings.ready_timeout)
    finally:
        for w in writers:
            w.stop_evt.set()
        for w in writers:
            w.join(timeout=5)
    firsts = [k["first_write_s"] for k in kills]
    elects = [k["elected_s"] for k in kills if k["elected_s"] is not None]
    return {
        "kills": kills,
        "first_write_s_median": statistics.median(firsts),
        "first_write_s_max": max(firsts),
        "first_write_s_min": min(firsts),
        "elected_s_median": statistics.median(elects) if elects else None,
        "elected_s_max": max(elects) if elects else None,
        "writes": sum(w.count for w in writers),
        "writers": len(writers),
        "poll_ms": 5,
    }


def _wait_acks(writers: list[_Writer], n: int, timeout: float) -> None:
    """Until the writers have ``n`` more acknowledged writes (the load is flowing)."""
    start = sum(w.count for w in writers)
    deadline = time.monotonic() + timeout
    while sum(w.count for w in writers) < start + n:
        if time.monotonic() > deadline:
            raise RuntimeError("the write load is not being acknowledged")
        time.sleep(0.005)


def run_coldstart(ens: Ensemble, sc: Any, settings: Any) -> dict[str, Any]:
    """Start ``size`` fresh peers together; time to the first acknowledged write.

    ``coldstart_trials`` trials, each on a fresh ensemble (new ports, empty data) in
    its own directory next to ``ens``'s (which is not started).  One client tries the
    peers round robin, a new session each time (a refused connection costs ~0.1 ms),
    until a create is acknowledged; ``srvr`` is polled alongside for the election.
    """
    trials = []
    for i in range(max(1, settings.coldstart_trials)):
        e = Ensemble(ens.target, Path(ens.root) / f"cold{i}", ens.size, ens.tick_time)
        try:
            t0 = time.monotonic()
            e.start()
            elected = first = None
            k = 0
            deadline = t0 + settings.ready_timeout
            while first is None and time.monotonic() < deadline:
                sid = e.sids[k % len(e.sids)]
                k += 1
                if elected is None and e.mode(sid) == "leader":
                    elected = time.monotonic() - t0
                try:
                    c = SyncClient(HOST, e.peers[sid].port, timeout_ms=6000, io_timeout=0.5)
                    try:
                        c.create(f"/cold-{i}")
                        first = time.monotonic() - t0
                    finally:
                        c.abandon()
                except (OSError, ZkError, ValueError):
                    e.check_alive()
                    time.sleep(RETRY)
            if first is None:
                raise RuntimeError(f"no write acknowledged within {settings.ready_timeout} s")
            if elected is None:  # the write came first: the leader is known by now
                elected = first
            trials.append({"elected_s": elected, "first_write_s": first})
        finally:
            e.stop()
    firsts = [t["first_write_s"] for t in trials]
    return {
        "trials": trials,
        "first_write_s_median": statistics.median(firsts),
        "first_write_s_max": max(firsts),
        "elected_s_median": statistics.median(t["elected_s"] for t in trials),
    }


def run_catchup(ens: Ensemble, sc: Any, settings: Any) -> dict[str, Any]:
    """Stop a follower, write ``catchup_writes`` setData to the others, restart it.

    ``synced_s``: from spawning the follower's process to its ``srvr`` Zxid equal to
    the leader's (polled every ~10 ms); ``serving_s``: to its first ``srvr`` with a Mode.
    """
    leader = ens.wait_serving(settings.ready_timeout)
    follower = [s for s in ens.running() if s != leader][0]
    before = ens.zxid(follower)
    ens.peers[follower].stop()
    others = [(HOST, ens.peers[s].port) for s in ens.running()]
    n = settings.catchup_writes
    spec = LoadSpec(
        op="set",
        sessions=8,
        inflight=32,
        workers=settings.workers,
        total=n,
        value_size=settings.value_size,
        key_prefix=sc.params.get("key_prefix", "/bench/k"),
        keys=settings.keys,
    )
    res = run_load(HOST, others[0][1], spec, endpoints=others)
    if res.errors:
        raise RuntimeError(f"{res.errors} of {n} writes failed: {res.workers[0].get('first_error')}")
    target = ens.zxid(leader)
    assert target is not None
    t0 = time.monotonic()
    ens.peers[follower].start()
    serving = synced = None
    deadline = t0 + settings.ready_timeout
    while synced is None and time.monotonic() < deadline:
        ens.check_alive([follower])
        z = ens.zxid(follower)
        now = time.monotonic()
        if z is not None and serving is None:
            serving = now - t0
        if z == target:
            synced = now - t0
            break
        time.sleep(0.01)
    if synced is None:
        raise RuntimeError(f"follower {follower} not synced to {target:#x} in time")
    return {
        "writes_behind": n,
        "write_rate": res.throughput,
        "zxid_before": before,
        "zxid_leader": target,
        "serving_s": serving,
        "synced_s": synced,
        "poll_ms": 10,
    }


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run_ens_memory(ens: Ensemble, sc: Any, settings: Any) -> dict[str, Any]:
    """Create N znodes (100-byte values) at 8x32 spread over the peers; RSS of each peer."""
    n = int(getattr(settings, sc.params["size"]))
    c = SyncClient(HOST, ens.port)
    try:
        c.ensure_path("/bench/m")
    finally:
        c.close()
    empty = ens.rss_by_peer()
    spec = LoadSpec(
        op="create",
        sessions=8,
        inflight=32,
        workers=settings.workers,
        total=n,
        value_size=settings.value_size,
        create_prefix="/bench/m",
    )
    res = run_load(HOST, ens.port, spec, endpoints=ens.endpoints("spread"))
    if res.errors:
        raise RuntimeError(f"{res.errors} of {n} creates failed: {res.workers[0].get('first_error')}")
    ens.wait_converged()
    rss = ens.rss_by_peer()
    return {
        "znodes_created": res.completed,
        "create_rate": res.throughput,
        "rss_bytes_empty_by_peer": {str(k): v for k, v in empty.items()},
        "rss_bytes_by_peer": {str(k): v for k, v in rss.items()},
        "rss_bytes_max_peer": max(rss.values()),
        "rss_bytes_mean_peer": sum(rss.values()) / len(rss),
        "rss_bytes_leader": rss.get(ens.leader() or 0),
        "data_dir_bytes_max_peer": max(
            _dir_bytes(ens.peers[s].cfg_path.parent / "data") for s in ens.sids
        ),
    }
