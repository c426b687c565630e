"""Crash test: SIGKILL the server under pipelined write load; nothing acknowledged is lost.

Each round: several connections pipeline writes (create, setData with the
expected version and an increasing value, delete, multi, failing multi) with
hundreds in flight; after a seeded random delay the server process gets
SIGKILL; it is restarted at once on the same dataDir and port, and every
connection's subtree is read back and must equal the model state after ``j``
ops, for some ``j`` between the number of acknowledged ops and the number sent
(``tests/chaos/workload.py``).  That single check says: every acknowledged
write is there with its value and version, a multi is all or nothing, writes
apply in order, and an unacknowledged write is either absent or complete.

Also checked per round: zxids of acknowledged writes only grow across restarts
and the restarted server's ``srvr`` zxid is at least the largest acknowledged
one.  At the end, ``trio-quorum log-dump`` and ``snapshot-dump`` read the
files the crashes left, and every acknowledged zxid is in the logs.

The delay before each kill is part of the scenario, chosen by the seeded RNG;
nothing here sleeps to wait for a condition.  The default run is 24 rounds
(~20-40 s); ``-m slow`` (``nox -s chaos``) runs a longer, heavier variant.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio

from tests.chaos.rawclient import ConnectionLost, RawSession, open_raw_session
from tests.chaos.workload import Workload, freeze
from tests.support.server import REPO, ServerProcess, four_letter_word, write_cfg
from trio_quorum.protocol import records as p
from trio_quorum.protocol.consts import OpCode
from trio_quorum.protocol.data import OPEN_ACL_UNSAFE

# snapCount small: fuzzy snapshots are taken (and interrupted) under load, so
# recovery runs snapshot + log tail; preAllocSize small: the log file grows
# while writes are in flight.
_EXTRA = "snapCount=400\npreAllocSize=16\n4lw.commands.whitelist=*\n"


@dataclass
class CrashStats:
    rounds: int = 0
    acked: int = 0
    in_flight_at_kill: list[int] = field(default_factory=list)
    unacked_applied: int = 0
    torn_tails: int = 0


async def _drive(port: int, w: Workload, window: int) -> None:
    """Pipeline ``w``'s ops on a new session until the connection dies."""
    w.begin_round()
    try:
        s = await open_raw_session(port)
    except ConnectionLost:
        return
    room = trio.Event()

    async def sender() -> None:
        nonlocal room
        while True:
            free = window - (w.sent - w.acked)
            if free < max(1, window // 4):
                await room.wait()
                room = trio.Event()
                continue
            frames = []
            for _ in range(free):
                op = w.generate()
                op.xid = s.next_xid()
                frames.append(p.encode_request(op.xid, op.opcode, op.request))
            await s.send_frames(frames)

    async def receiver() -> None:
        while True:
            payload = await s.recv_payload()
            w.check_reply(p.decode_reply_header(payload), payload)
            room.set()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender)
            nursery.start_soon(receiver)
    except* ConnectionLost:
        pass
    finally:
        with trio.CancelScope(shield=True):
            await s.aclose()


async def _load_and_kill(
    port: int, pid: int, workloads: list[Workload], window: int, delay: float
) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for w in workloads:
                nursery.start_soon(_drive, port, w, window)
            await trio.sleep(delay)  # the scenario's seeded kill moment
            os.kill(pid, signal.SIGKILL)


async def _read_subtree(s: RawSession, root: str) -> tuple[tuple[str, bytes, int], ...]:
    hdr, body = await s.call(OpCode.getChildren, p.GetChildrenRequest(root, False))
    assert hdr.err == 0, (root, hdr)
    names = sorted(body.children)
    xids = []
    frames = []
    for name in names:
        xid = s.next_xid()
        xids.append(xid)
        frames.append(
            p.encode_request(xid, OpCode.getData, p.GetDataRequest(f"{root}/{name}", False))
        )
    await s.send_frames(frames)
    out = {}
    for name, xid in zip(names, xids, strict=True):
        payload = await s.recv_payload()
        h = p.decode_reply_header(payload)
        assert h.xid == xid and h.err == 0, (name, h)
        r = p.decode_response(OpCode.getData, payload, offset=16)
        out[name] = (r.data, r.stat.version)
    return freeze(out)


async def _verify(port: int, workloads: list[Workload], stats: CrashStats) -> None:
    with trio.fail_after(30):
        s = await open_raw_session(port)
        try:
            for w in workloads:
                got = await _read_subtree(s, w.root)
                cands = w.candidates()
                if got not in cands:
                    acked = dict((k, (d, v)) for k, d, v in cands[0]) if cands else {}
                    now = dict((k, (d, v)) for k, d, v in got)
                    diff = {
                        k: (acked.get(k), now.get(k))
                        for k in sorted(set(acked) | set(now))
                        if acked.get(k) != now.get(k)
                    }
                    raise AssertionError(
                        f"conn {w.conn}: recovered subtree is no prefix state "
                        f"(acked {w.acked}, sent {w.sent}); diff vs acknowledged state "
                        f"(expected, recovered): {diff}"
                    )
                stats.unacked_applied += w.settle(got) - w.acked
        finally:
            await s.aclose()


async def _setup(port: int, workloads: list[Workload]) -> None:
    with trio.fail_after(30):
        s = await open_raw_session(port)
        try:
            for path in ["/crash", *(w.root for w in workloads)]:
                hdr, _ = await s.call(OpCode.create, p.CreateRequest(path, b"", OPEN_ACL_UNSAFE, 0))
                assert hdr.err == 0, (path, hdr)
        finally:
            await s.aclose()


def _srvr_zxid(port: int) -> int:
    m = re.search(r"Zxid: (0x[0-9a-f]+)", four_letter_word(port, "srvr"))
    assert m, "srvr has no Zxid line"
    return int(m.group(1), 16)


def _tool(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "trio_quorum", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def run_crash_rounds(
    tmp_path: Path,
    *,
    seed: int,
    rounds: int,
    conns: int,
    window: int,
    max_delay: float,
    value_size: int,
) -> tuple[CrashStats, list[int], Path]:
    rng = random.Random(seed)
    data = tmp_path / "data"
    srv = ServerProcess(write_cfg(tmp_path, extra=_EXTRA, data_dir=data)).start()
    port = srv.port
    cfg = write_cfg(tmp_path, port=port, extra=_EXTRA, data_dir=data)
    workloads = [
        Workload(k, random.Random(rng.getrandbits(64)), value_size=value_size) for k in range(conns)
    ]
    stats = CrashStats()
    all_acked: list[int] = []
    high = 0
    try:
        trio.run(_setup, port, workloads)
        for rnd in range(rounds):
            delay = rng.uniform(0.02, max_delay)
            assert srv.proc is not None
            trio.run(_load_and_kill, port, srv.proc.pid, workloads, window, delay)
            srv.kill()
            acked = [z for w in workloads for z in w.acked_zxids]
            if acked:
                assert min(acked) > high, (
                    f"round {rnd}: a zxid was reused after restart ({min(acked):#x} <= {high:#x})"
                )
                high = max(acked)
            all_acked += acked
            stats.rounds += 1
            stats.acked += len(acked)
            stats.in_flight_at_kill.append(sum(w.sent - w.acked for w in workloads))
            srv = ServerProcess(cfg).start()  # same dataDir, same port, at once
            assert srv.port == port
            if "Truncating torn txn log" in srv.log_text():
                stats.torn_tails += 1
            try:
                trio.run(_verify, port, workloads, stats)
                assert _srvr_zxid(port) >= high, (
                    f"round {rnd}: server zxid behind an acknowledged write"
                )
            except AssertionError as exc:
                raise AssertionError(
                    f"seed {seed} round {rnd} (kill after {delay:.3f}s): {exc}"
                ) from exc
    finally:
        code = srv.terminate()
    assert code == 0, srv.log_text()[-3000:]
    return stats, all_acked, data


def _check_tools(data: Path, acked: list[int]) -> None:
    vdir = data / "version-2"
    logs = sorted(vdir.glob("log.*"), key=lambda f: int(f.name.split(".")[1], 16))
    snaps = sorted(
        (f for f in vdir.glob("snapshot.*") if not f.name.endswith(".tmp")),
        key=lambda f: int(f.name.split(".")[1], 16),
    )
    assert logs, "no txn log"
    assert len(snaps) >= 2, (
        f"no snapshot taken under load: {sorted(f.name for f in vdir.iterdir())}"
    )
    dumped: set[int] = set()
    res = _tool("log-dump", str(data))  # every log file, oldest first
    assert res.returncode == 0, res.stderr[-3000:]
    dumped.update(int(z, 16) for z in re.findall(r" zxid 0x([0-9a-f]+) ", res.stdout))
    missing = sorted(set(acked) - dumped)
    assert not missing, f"{len(missing)} acknowledged zxids not in the logs, first {missing[:5]}"
    res = _tool("log-dump", str(logs[-1]))  # one file, as an operator would
    assert res.returncode == 0, res.stderr[-3000:]
    assert " zxid 0x" in res.stdout
    res = _tool("snapshot-dump", "-d", str(snaps[-1]))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "/crash/c0" in res.stdout


def _check_stats(stats: CrashStats, rounds: int) -> None:
    # the scenario really happened: writes were acknowledged and many rounds
    # killed the server with writes still in flight
    assert stats.rounds == rounds
    assert stats.acked > 50 * rounds, stats
    with_in_flight = sum(1 for n in stats.in_flight_at_kill if n > 0)
    assert with_in_flight >= rounds // 2, stats


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_sigkill_under_pipelined_writes_loses_nothing_acknowledged(tmp_path: Path) -> None:
    rounds = 24
    stats, acked, data = run_crash_rounds(
        tmp_path, seed=20240611, rounds=rounds, conns=4, window=64, max_delay=0.35, value_size=16
    )
    _check_stats(stats, rounds)
    _check_tools(data, acked)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_chaos_long(tmp_path: Path, seed: int) -> None:
    rounds = 80
    stats, acked, data = run_crash_rounds(
        tmp_path, seed=seed, rounds=rounds, conns=8, window=256, max_delay=1.2, value_size=1024
    )
    _check_stats(stats, rounds)
    _check_tools(data, acked)


def test_workload_model_detects_loss_and_half_multis() -> None:
    # the checker itself: a lost acknowledged write and a half-applied multi are
    # no candidate state; an unacknowledged but complete write is
    w = Workload(0, random.Random(5))
    w.begin_round()
    ops = [w.generate() for _ in range(200)]
    w.acked = 120
    cands = w.candidates()
    assert len(cands) == 81 and cands[0] == w.states[119]
    w.settle(w.states[150])
    lost = dict((k, (d, v)) for k, d, v in w.states[119])
    lost.popitem()
    assert freeze(lost) not in cands
    multi_i = next(i for i in range(120, 200) if ops[i].opcode == OpCode.multi and ops[i].expect_ok)
    before = dict((k, (d, v)) for k, d, v in w.states[multi_i - 1])
    first_sub = ops[multi_i].request.ops[0][1]
    name = first_sub.path.rsplit("/", 1)[1]
    half = dict(before)
    after = dict((k, (d, v)) for k, d, v in w.states[multi_i])
    if name in after:
        half[name] = after[name]
    else:
        half.pop(name, None)
    assert half != after and freeze(half) not in cands
    with pytest.raises(AssertionError):
        w.settle(freeze(lost))
