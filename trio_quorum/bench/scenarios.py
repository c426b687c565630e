"""The benchmark's scenarios, as data, and the functions that run each kind.

A :class:`Scenario` says *what* is measured; its ``kind`` picks the runner below and
its ``group`` says which scenarios share one server process (the throughput
scenarios share one, so the JVM's JIT warms up once and start-up is paid once; the
memory and expiry figures each want a fresh server).  ``topology`` is
``standalone`` or ``ensembleN``: a group of ``ensembleN`` scenarios runs against N
peers (:class:`~.ensemble.Ensemble`) started together, its runners get the
ensemble where the standalone ones get the server (ensemble throughput is the
same runner, its sessions spread over the peers or placed on the leader or a
follower: ``params["on"]``); ``params["start"] = False`` leaves the peers to the
runner (cold start).

Every runner returns a plain JSON-able dict of measured values, never a made-up one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..protocol.consts import CreateFlag
from . import ensemble_runs
from .client import SyncClient, ZkError
from .loadgen import LoadSpec, populate_keys, run_load
from .servers import ServerProcess

__all__ = ["Settings", "Scenario", "SCENARIOS", "select", "RUNNERS", "GROUP_SETUP"]

KEY_PREFIX = "/bench/k"
CREATE_PREFIX = "/bench/c"
MEMORY_PREFIX = "/bench/m"
EXPIRY_PREFIX = "/bench/expiry"
PROBE_PATH = f"{KEY_PREFIX}/0"


@dataclass(frozen=True)
class Settings:
    """Knobs of one harness run (``--quick`` picks smaller ones)."""

    warmup: float = 3.0
    duration: float = 10.0
    workers: int = 2
    keys: int = 1024
    value_size: int = 100
    memory_znodes: int = 100_000
    big_znodes: int = 1_000_000
    big: bool = False
    tick_time: int = 2000
    expiry_timeout_ms: int = 6000
    expiry_trials: int = 3
    ready_timeout: float = 90.0
    #: Throughput scenarios run this many times back to back on one server (within a
    #: round); the run with the median throughput is that round's result.
    repeat: int = 1
    #: Throughput groups run in this many rounds, each on fresh servers, the targets
    #: alternating who goes first; the round with the median throughput is reported.
    rounds: int = 3
    #: Ensemble figures: leader kills of the fail-over figure, cold starts, and how many
    #: writes a restarted follower is behind in the catch-up figure.
    failover_kills: int = 10
    coldstart_trials: int = 3
    catchup_writes: int = 100_000


@dataclass(frozen=True)
class Scenario:
    """One figure to measure.

    Attributes:
        id: stable key in the JSON (``throughput.get.8x32``).
        kind: which runner (``throughput``, ``memory``, ``expiry``).
        group: scenarios of one group run, in order, against one server process.
        params: the kind's parameters.
        needs_big: only with ``--big``.
    """

    id: str
    kind: str
    title: str
    group: str
    params: dict[str, Any] = field(default_factory=dict)
    topology: str = "standalone"
    needs_big: bool = False

    @property
    def peers(self) -> int:
        """1 standalone; N for ``ensembleN``."""
        return int(self.topology[len("ensemble") :]) if self.topology.startswith("ensemble") else 1


_OPS = [
    ("get", "getData"),
    ("set", "setData"),
    ("mix", "90% getData / 10% setData"),
    ("create", "create"),
]
_SHAPES = [(8, 32), (1, 1)]

SCENARIOS: list[Scenario] = [
    *(
        Scenario(
            id=f"throughput.{op}.{s}x{i}",
            kind="throughput",
            title=f"{title}, {s} session{'s' if s > 1 else ''} x {i} in flight",
            group="throughput",
            params={"op": op, "sessions": s, "inflight": i},
        )
        for op, title in _OPS
        for s, i in _SHAPES
    ),
    Scenario(
        "memory.100k",
        "memory",
        "Memory and restart with 100k znodes",
        "memory.100k",
        {"size": "memory_znodes"},
    ),
    Scenario(
        "memory.1m",
        "memory",
        "Memory and restart with 1M znodes",
        "memory.1m",
        {"size": "big_znodes"},
        needs_big=True,
    ),
    Scenario("expiry", "expiry", "Session expiry precision", "expiry"),
    # -- ensembles: every peer of a target on this machine, clients spread over the peers
    *(
        Scenario(
            id=f"ensemble3.{op}.8x32",
            kind="throughput",
            title=f"3 peers: {title}, 8 sessions x 32 in flight, spread over the peers",
            group="ensemble3",
            params={"op": op, "sessions": 8, "inflight": 32, "on": "spread"},
            topology="ensemble3",
        )
        for op, title in [_OPS[1], _OPS[3], _OPS[0], _OPS[2]]
    ),
    *(
        Scenario(
            id=f"ensemble3.{op}.1x1.{on}",
            kind="throughput",
            title=f"3 peers: {title}, 1 session x 1 in flight, on the {on}",
            group="ensemble3",
            params={"op": op, "sessions": 1, "inflight": 1, "on": on},
            topology="ensemble3",
        )
        for op, title in [_OPS[1], _OPS[3]]
        for on in ("follower", "leader")
    ),
    Scenario(
        "ensemble5.set.8x32",
        "throughput",
        "5 peers: setData, 8 sessions x 32 in flight, spread over the peers",
        "ensemble5",
        {"op": "set", "sessions": 8, "inflight": 32, "on": "spread"},
        topology="ensemble5",
    ),
    Scenario(
        "ensemble3.failover",
        "failover",
        "3 peers: fail-over, kill -9 of the leader under write load to the first write"
        " acknowledged by the new leader",
        "ensemble3.failover",
        topology="ensemble3",
    ),
    Scenario(
        "ensemble3.coldstart",
        "coldstart",
        "3 peers: cold start, 3 processes started together to the first write acknowledged",
        "ensemble3.coldstart",
        {"start": False},
        topology="ensemble3",
    ),
    Scenario(
        "ensemble3.catchup",
        "catchup",
        "3 peers: follower catch-up, a follower restarted N writes behind until synced",
        "ensemble3.catchup",
        topology="ensemble3",
    ),
    Scenario(
        "ensemble3.memory.100k",
        "ens_memory",
        "3 peers: memory per peer with 100k znodes",
        "ensemble3.memory.100k",
        {"size": "memory_znodes"},
        topology="ensemble3",
    ),
    Scenario(
        "ensemble3.memory.1m",
        "ens_memory",
        "3 peers: memory per peer with 1M znodes",
        "ensemble3.memory.1m",
        {"size": "big_znodes"},
        topology="ensemble3",
        needs_big=True,
    ),
]


def select(only: Iterable[str] = (), big: bool = False) -> list[Scenario]:
    """Scenarios whose id starts with one of ``only`` (all if empty); big ones only if ``big``."""
    only = list(only)
    return [
        sc
        for sc in SCENARIOS
        if (big or not sc.needs_big) and (not only or any(sc.id.startswith(o) for o in only))
    ]


# ------------------------------------------------------------------------ runners

Runner = Callable[[ServerProcess, Scenario, Settings], dict[str, Any]]


def _setup_throughput(server: ServerProcess, settings: Settings) -> None:
    populate_keys(server.host, server.port, KEY_PREFIX, settings.keys, settings.value_size)
    c = SyncClient(server.host, server.port)
    try:
        c.ensure_path(CREATE_PREFIX)
    finally:
        c.close()


def run_throughput(server: ServerProcess, sc: Scenario, settings: Settings) -> dict[str, Any]:
    p = sc.params
    spec = LoadSpec(
        op=p["op"],
        sessions=p["sessions"],
        inflight=p["inflight"],
        workers=settings.workers,
        warmup=settings.warmup,
        duration=settings.duration,
        value_size=settings.value_size,
        key_prefix=KEY_PREFIX,
        keys=settings.keys,
        create_prefix=CREATE_PREFIX,
    )
    endpoints = server.endpoints(p.get("on", "spread"))
    runs = [
        run_load(
            server.host, server.port, spec, server_cpu=server.cpu_seconds, endpoints=endpoints
        )
        for _ in range(max(1, settings.repeat))
    ]
    res = sorted(runs, key=lambda r: r.throughput)[(len(runs) - 1) // 2]
    out = res.to_json()
    out["runs_throughput"] = [r.throughput for r in runs]
    out["server_cpu_util"] = (
        (res.server_cpu_s / res.window_s) if res.server_cpu_s is not None else None
    )
    out["server_rss_bytes"] = server.rss_bytes()  # an ensemble: its largest peer
    if sc.peers > 1:
        out["peers"] = sc.peers
        out["placement"] = p.get("on", "spread")
        out["endpoints"] = [port for _h, port in endpoints]
    return out


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run_memory(server: ServerProcess, sc: Scenario, settings: Settings) -> dict[str, Any]:
    """Create N znodes (100-byte values), read RSS; then restart and time it."""
    n = int(getattr(settings, sc.params["size"]))
    c = SyncClient(server.host, server.port)
    try:
        c.ensure_path(MEMORY_PREFIX)
        c.ensure_path(KEY_PREFIX)
        c.create(PROBE_PATH, b"p" * settings.value_size)
    finally:
        c.close()
    rss_before = server.rss_bytes()
    spec = LoadSpec(
        op="create",
        sessions=8,
        inflight=32,
        workers=settings.workers,
        total=n,
        value_size=settings.value_size,
        create_prefix=MEMORY_PREFIX,
    )
    res = run_load(server.host, server.port, spec, server_cpu=server.cpu_seconds)
    if res.errors:
        raise RuntimeError(
            f"{res.errors} of {n} creates failed: {res.workers[0].get('first_error')}"
        )
    srvr = server.wait_ready(timeout=10)
    rss_after = server.rss_bytes()
    data_dir = server.cfg_path.parent / "data"
    disk = _dir_bytes(data_dir)

    stop_s = server.stop()
    t0 = time.monotonic()
    server.start()
    server.wait_ready(timeout=settings.ready_timeout)
    t_srvr = time.monotonic() - t0
    srvr2 = server.wait_ready(timeout=settings.ready_timeout, probe_path=PROBE_PATH)
    t_get = time.monotonic() - t0
    return {
        "znodes_created": res.completed,
        "create_rate": res.throughput,
        "create_latency_ms": res.latency_ms["all"],
        "node_count": _int_or_none(srvr.get("Node count")),
        "node_count_after_restart": _int_or_none(srvr2.get("Node count")),
        "rss_bytes_empty": rss_before,
        "rss_bytes": rss_after,
        "rss_bytes_after_restart": server.rss_bytes(),
        "data_dir_bytes": disk,
        "stop_s": stop_s,
        "restart_srvr_s": t_srvr,
        "restart_s": t_get,
    }


def _int_or_none(v: str | None) -> int | None:
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


def run_expiry(server: ServerProcess, sc: Scenario, settings: Settings) -> dict[str, Any]:
    """Sessions with timeout T create an ephemeral and vanish; time until it is gone.

    Trials run concurrently, their vanishing staggered over one tick so they sample
    different phases of the server's expiry buckets.  The last touch of each session
    is a ping answered just before its socket is closed.
    """
    trials = settings.expiry_trials
    t_ms = settings.expiry_timeout_ms
    poller = SyncClient(server.host, server.port, timeout_ms=30000)
    try:
        poller.ensure_path(EXPIRY_PREFIX)
        victims = []
        for i in range(trials):
            v = SyncClient(server.host, server.port, timeout_ms=t_ms)
            path = f"{EXPIRY_PREFIX}/e{i}-{v.session_id:x}"
            v.create(path, b"x", flags=CreateFlag.EPHEMERAL)
            victims.append((v, path))
        negotiated = [v.timeout_ms for v, _ in victims]
        stagger = settings.tick_time / 1000 / max(1, trials)
        t_start = time.monotonic()
        vanish_at = [t_start + i * stagger for i in range(trials)]
        vanished: list[float | None] = [None] * trials
        gone: list[float | None] = [None] * trials
        deadline = vanish_at[-1] + 3 * max(negotiated) / 1000 + 3 * settings.tick_time / 1000 + 10
        polls = 0
        while time.monotonic() < deadline and any(g is None for g in gone):
            now = time.monotonic()
            for i, (v, path) in enumerate(victims):
                if vanished[i] is None and now >= vanish_at[i]:
                    v.ping()
                    v.abandon()
                    vanished[i] = time.monotonic()
                elif vanished[i] is not None and gone[i] is None:
                    polls += 1
                    if not poller.exists(path):
                        gone[i] = time.monotonic()
            time.sleep(0.005)  # the poll period: bounds the measurement's resolution
    finally:
        poller.close()
    results: list[dict[str, Any]] = []
    for i in range(trials):
        vi, gi = vanished[i], gone[i]
        elapsed = (gi - vi) * 1000 if gi is not None and vi is not None else None
        results.append(
            {
                "timeout_ms": negotiated[i],
                "elapsed_ms": elapsed,
                "overshoot_ms": elapsed - negotiated[i] if elapsed is not None else None,
                "ratio": elapsed / negotiated[i] if elapsed is not None else None,
            }
        )
    done = [r["elapsed_ms"] for r in results if r["elapsed_ms"] is not None]
    return {
        "requested_timeout_ms": t_ms,
        "tick_time_ms": settings.tick_time,
        "trials": results,
        "expired": len(done),
        "expired_before_timeout": sum(
            1 for r in results if r["elapsed_ms"] is not None and r["elapsed_ms"] < r["timeout_ms"]
        ),
        "not_expired": trials - len(done),
        "elapsed_ms_min": min(done) if done else None,
        "elapsed_ms_max": max(done) if done else None,
        "elapsed_ms_mean": sum(done) / len(done) if done else None,
        "poll_period_ms": 5,
        "polls": polls,
    }


def _setup_ensemble_throughput(ens: Any, settings: Settings) -> None:
    _setup_throughput(ens, settings)
    ens.wait_converged()  # every peer has the keys before a load reads them anywhere


RUNNERS: dict[str, Runner] = {
    "throughput": run_throughput,
    "memory": run_memory,
    "expiry": run_expiry,
    "failover": ensemble_runs.run_failover,  # type: ignore[dict-item]
    "coldstart": ensemble_runs.run_coldstart,  # type: ignore[dict-item]
    "catchup": ensemble_runs.run_catchup,  # type: ignore[dict-item]
    "ens_memory": ensemble_runs.run_ens_memory,  # type: ignore[dict-item]
}

#: Work done once when a group's server has started, before its scenarios.
GROUP_SETUP: dict[str, Callable[[Any, Settings], None]] = {
    "throughput": _setup_throughput,
    "ensemble3": _setup_ensemble_throughput,
    "ensemble5": _setup_ensemble_throughput,
    "ensemble3.catchup": _setup_ensemble_throughput,
}


def quick(settings: Settings) -> Settings:
    """The ``--quick`` sizes: seconds, not minutes."""
    return replace(
        settings,
        warmup=0.5,
        duration=1.5,
        keys=256,
        memory_znodes=5_000,
        big_znodes=20_000,
        expiry_timeout_ms=2 * settings.tick_time,
        expiry_trials=2,
        ready_timeout=60.0,
        rounds=1,
        failover_kills=2,
        coldstart_trials=1,
        catchup_writes=2_000,
    )


__all__ += ["quick", "ZkError"]
