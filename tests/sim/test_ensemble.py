"""Whole-ensemble simulations: real peers, in-memory network and storage, mock time.

Each test is a scenario run by :func:`~.harness.run_sim` with a seed; the
harness checks the ensemble invariants at the end of every run (one leader
per epoch, one txn per zxid in every store, live trees and last zxids equal,
no acknowledged write lost; see docs/simulation.md).
"""

from __future__ import annotations

import pytest
import trio

from actors import ActorStarting, ActorStopped, ActorStopping

from .client import ConnectionLoss
from .harness import Sim, election_name, run_sim


async def _write_some(sim: Sim, sid: int, prefix: str, n: int) -> list[int]:
    c = await sim.client(sid)
    return [await sim.create(c, f"{prefix}{i}", b"%s-%d" % (prefix.encode(), i)) for i in range(n)]


# ---------------------------------------------------------------------------- cold start


@pytest.mark.parametrize("n", [3, 5])
def test_cold_election_one_leader_all_agree_writes_replicate(n: int) -> None:
    async def scenario(sim: Sim) -> None:
        await sim.start_all()
        with trio.fail_after(2):  # mock seconds: one election round plus the sync
            lead = await sim.wait_settled()
        # Equal logs: the largest sid wins (epoch, zxid, sid order).
        assert lead == n
        assert [e.sid for e in sim.events_of("LEADING")] == [n]
        assert sorted(e.sid for e in sim.events_of("FOLLOWING")) == list(range(1, n))
        assert {sim.epoch(s) for s in sim.sids} == {1}
        for sid in sim.sids:  # a write through every peer (followers forward to the leader)
            await _write_some(sim, sid, f"/p{sid}-", 3)
        await sim.settle()
        for sid in sim.sids:
            assert sorted(p for p in sim.peer(sid).state.tree.nodes if p.startswith("/p")) == sorted(
                a.path for a in sim.acked)

    run_sim(scenario, seed=n, voters=n)


def test_same_seed_same_history() -> None:
    async def scenario(sim: Sim) -> None:
        await sim.start_all()
        lead = await sim.wait_settled()
        await _write_some(sim, 1, "/a", 5)
        await sim.crash(lead)
        await sim.wait_settled()
        await _write_some(sim, 1, "/b", 5)
        await sim.restart(lead)
        await sim.wait_settled()

    first = run_sim(scenario, seed=7).history()
    second = run_sim(scenario, seed=7).history()
    assert first == second
    assert any("crash" in line for line in first)


# ---------------------------------------------------------------------------- failures


def test_leader_crash_reelection_and_writes_continue() -> None:
    async def scenario(sim: Sim) -> None:
        await sim.start_all()
        old = await sim.wait_settled()
        old_epoch = sim.epoch(old)
        await _write_some(sim, old, "/before", 5)
        crashed_at = trio.current_time()
        await sim.crash(old)
        with trio.fail_after(5):
            new = await sim.wait_settled()
        assert new != old and sim.epoch(new) > old_epoch
        log = sim.trace
        print(f"fail-over: {trio.current_time() - crashed_at:.3f} s mock")
        await _write_some(sim, min(set(sim.live()) - {new}), "/after", 5)
        # The old leader comes back as a follower of the new epoch and catches up.
        await sim.restart(old)
        with trio.fail_after(5):
            assert await sim.wait_settled() == new
        assert sim.mode(old) == "follower"
        assert [e for e in log if e.kind == "LEADING"][-1].sid == new

    run_sim(scenario, seed=11)


def test_follower_crash_catches_up_by_diff() -> None:
    async def scenario(sim: Sim) -> None:
        await sim.start_all()
        lead = await sim.wait_settled()
        victim = min(s for s in sim.sids if s != lead)
        await _write_some(sim, lead, "/x", 5)
        await sim.settle()
        await sim.crash(victim)
        await _write_some(sim, lead, "/y", 10)  # committed by the two others
        restarted = trio.current_time()
        await sim.restart(victim)
        with trio.fail_after(5):
            assert await sim.wait_settled() == lead  # the leader is not disturbed
        packets = sim.sync_packets(to=victim, since=restarted)
        assert [p.detail[1] for p in packets] == ["DIFF"], packets
        assert sim.peer(victim).last_zxid() == sim.peer(lead).last_zxid()

    run_sim(scenario, seed=12)


def test_partitioned_leader_uncommitted_txns_truncated_on_return() -> None:
    async def scenario(sim: Sim) -> None:
        await sim.start_all()
        old = await sim.wait_settled()
        await _write_some(sim, old, "/committed", 3)
        await sim.settle()
        stuck = await sim.client(old)
        sim.partition([old])
        lost: list[BaseException] = []

        async def doomed_write(i: int) -> None:
            try:
                reply = await stuck.create(f"/uncommitted{i}", b"never")
            except ConnectionLoss as exc:
                lost.append(exc)
            else:
                raise AssertionError(f"a write without a quorum was answered: {reply}")

        async with trio.open_nursery() as nursery:
            for i in range(3):
                nursery.start_soon(doomed_write, i)
            # The old leader logs them (its own log) but never commits.
            await sim.wait(lambda: sim.peers[old].store.last_zxid > sim.peer(old).last_zxid())
            uncommitted = sim.peers[old].store.last_zxid
            others = [s for s in sim.sids if s != old]
            with trio.fail_after(10):
                new = await sim.wait_settled(others)
        assert len(lost) == 3
        await _write_some(sim, new, "/other", 4)
        sim.heal()
        with trio.fail_after(10):
            assert await sim.wait_settled() == new
        assert sim.mode(old) == "follower"
        truncs = sim.sync_packets(to=old, kind="TRUNC")
        assert truncs and truncs[-1].detail[2] < uncommitted, truncs
        for sid in sim.sids:
            assert not [p for p in sim.peer(sid).state.tree.nodes if p.startswith("/uncommitted")]
            assert all(hdr.zxid != uncommitted for hdr, _ in sim.peers[sid].store.durable)

    run_sim(scenario, seed=13)


def test_far_behind_follower_gets_snap() -> None:
    """Forced by purging the future leader's log: its history window starts after the victim's zxid.

    Peer 3 leads; peer 1 crashes; 30 writes; peer 2's store takes three
    snapshots on the way and purges (snapRetainCount=3), so its oldest
    logged txn is past peer 1's last zxid.  Then peer 3 crashes and peer 1
    comes back: peers 1 and 2 elect peer 2 (the longer log), whose window
    (quorumpeer._history: storage.min_logged_zxid) cannot DIFF peer 1.
    """

    async def scenario(sim: Sim) -> None:
        await sim.start_all()
        assert await sim.wait_settled() == 3
        await _write_some(sim, 3, "/early", 3)
        await sim.settle()
        await sim.crash(1)
        c = await sim.client(3)
        store2 = sim.peers[2].store
        for i in range(30):
            await sim.create(c, f"/late{i}", b"x")
            if i % 10 == 9:
                await sim.wait(lambda: sim.peer(2).last_zxid() == sim.peer(3).last_zxid())
                state = sim.peer(2).state
                await store2.take_snapshot(state.tree, state.tracker.session_timeouts())
        store2.purge(3)
        assert store2.min_logged_zxid() > sim.peers[1].store.last_zxid
        await sim.crash(3)
        restarted = trio.current_time()
        await sim.restart(1)
        with trio.fail_after(10):
            assert await sim.wait_settled() == 2
        assert [p.detail[1] for p in sim.sync_packets(to=1, since=restarted)] == ["SNAP"]
        await _write_some(sim, 1, "/after-snap", 3)
        await sim.restart(3)
        await sim.wait_settled()

    run_sim(scenario, seed=14)


def test_minority_leader_never_commits_and_steps_down_within_sync_limit() -> None:
    async def scenario(sim: Sim) -> None:
        await sim.start_all()
        old = await sim.wait_settled()
        minority = [old, 1 if old != 1 else 2]
        c = await sim.client(old)
        await sim.create(c, "/before", b"")
        await sim.settle()
        sim.partition(minority)
        cut = trio.current_time()
        outcome: list[object] = []

        async def write() -> None:
            try:
                outcome.append(await c.create("/minority", b"x"))
            except ConnectionLoss as exc:
                outcome.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(write)
            await sim.wait(lambda: sim.mode(old) != "leader")
        down = [e for e in sim.events_of("role-end", old) if e.time >= cut]
        assert down and down[0].detail[0] == "leading"
        limit = (sim.sync_limit + 1) * sim.tick_ms / 1000
        assert down[0].time - cut <= limit, f"stepped down after {down[0].time - cut:.3f} s (limit {limit})"
        assert len(outcome) == 1 and isinstance(outcome[0], ConnectionLoss)
        majority = [s for s in sim.sids if s not in minority]
        with trio.fail_after(10):
            new = await sim.wait_settled(majority)
        assert new in majority
        # The minority never establishes a leader again while cut off.
        await trio.sleep(3)
        assert all(sim.mode(s) == "looking" for s in minority)
        assert not [e for e in sim.events_of("LEADING") if e.time > cut and e.sid in minority]
        sim.heal()
        await sim.wait_settled()
        for sid in sim.sids:
            assert "/minority" not in sim.peer(sid).state.tree.nodes

    run_sim(scenario, seed=15, voters=5)


def test_observer_follows_applies_and_never_votes() -> None:
    async def scenario(sim: Sim) -> None:
        await sim.start_all()
        lead = await sim.wait_settled()
        obs = sim.observers[0]
        assert lead in sim.voters and sim.mode(obs) == "observer"
        assert [e.sid for e in sim.events_of("OBSERVING")] == [obs]
        await _write_some(sim, obs, "/via-observer", 3)  # forwarded to the leader
        await _write_some(sim, lead, "/via-leader", 3)
        await sim.settle()
        assert sim.tree_view(obs) == sim.tree_view(lead)
        # One voter of two dies: the observer does not make a quorum.
        other = next(s for s in sim.voters if s != lead)
        crashed = trio.current_time()
        await sim.crash(other)
        await sim.wait(lambda: sim.mode(lead) != "leader")
        await trio.sleep(5)  # plenty of election rounds
        assert not [e for e in sim.trace if e.time > crashed and e.kind in ("LEADING", "FOLLOWING", "OBSERVING")]
        assert not any(sim.serving(s) for s in sim.live())
        await sim.restart(other)
        with trio.fail_after(10):
            await sim.wait_settled()
        assert sim.mode(obs) == "observer"

    run_sim(scenario, seed=16, voters=2, observers=1)


@pytest.mark.parametrize("seed", [21, 22])
def test_lost_and_delayed_election_notifications(seed: int) -> None:
    """Election links drop 30% of frames and delay the rest by 0-200 ms (FIFO per link, as TCP;
    notifications from different peers arrive in any order)."""

    async def scenario(sim: Sim) -> None:
        for a in sim.sids:
            for b in sim.sids:
                if a != b:
                    f = sim.net.faults(election_name(a), election_name(b))
                    f.drop, f.delay = 0.3, (0.0, 0.2)
        await sim.start_all()
        with trio.fail_after(30):
            lead = await sim.wait_settled()
        await _write_some(sim, lead, "/x", 3)
        await sim.crash(lead)
        with trio.fail_after(30):
            new = await sim.wait_settled()
        assert new != lead
        await _write_some(sim, new, "/y", 3)
        await sim.restart(lead)
        with trio.fail_after(30):
            await sim.wait_settled()
        dropped = sum(f.dropped for link in sim.net._links for f in (link._out,))
        print(f"seed {seed}: {dropped} election frames dropped")

    run_sim(scenario, seed=seed, voters=5)


# ---------------------------------------------------------------------------- teardown


def _teardown_checks(sim: Sim, sid: int, role: str) -> None:
    """Every actor the role started under ``peer-N/<role>/`` stopped, each with a reason."""
    prefix = f"peer-{sid}/{role}/"
    events = sim.peers[sid].events
    started = [e.path for e in events if isinstance(e, ActorStarting) and e.path.startswith(prefix)]
    stopped = [e for e in events if isinstance(e, ActorStopped) and e.path.startswith(prefix)]
    assert started and sorted(started) == sorted(e.path for e in stopped)
    for e in sim.teardown_events(sid, role):
        assert e.reason, e  # type: ignore[attr-defined]
    assert any(isinstance(e, ActorStopping) for e in sim.teardown_events(sid, role))


def _leader_loss(sim_clock_check: float) -> object:
    async def scenario(sim: Sim) -> None:
        await sim.start_all()
        old = await sim.wait_settled()
        await _write_some(sim, old, "/t", 3)
        followers = [s for s in sim.sids if s != old]
        marks = {s: len(sim.events_of("role-end", s)) for s in followers}
        await sim.crash(old)
        await sim.wait(lambda: all(len(sim.events_of("role-end", s)) > marks[s] for s in followers))
        for s in followers:
            qp = sim.peer(s).quorum
            assert qp is not None and qp.last_change is not None
            old_role, new_role, reason, stopped, teardown = qp.last_change
            print(f"peer {s}: {old_role} -> {new_role}: {reason!r}, {stopped} actors, teardown {teardown * 1000:.2f} ms")
            assert (old_role, new_role) == ("following", "looking")
            assert "lost" in reason or "down" in reason, reason
            assert stopped >= 3
            assert teardown < sim_clock_check
            _teardown_checks(sim, s, "following")
        await sim.wait_settled()

    return scenario


def test_teardown_after_leader_loss_mock_clock() -> None:
    # Under MockClock nothing takes time unless it waits: the teardown is ~0.
    run_sim(_leader_loss(0.05), seed=31)  # type: ignore[arg-type]


def test_teardown_after_leader_loss_real_clock() -> None:
    run_sim(_leader_loss(0.5), seed=32, mock=False, timeout=30)  # type: ignore[arg-type]


def test_stepped_down_leader_subtree_stops_with_reasons() -> None:
    async def scenario(sim: Sim) -> None:
        await sim.start_all()
        old = await sim.wait_settled()
        sim.partition([old])
        await sim.wait(lambda: sim.mode(old) != "leader")
        await sim.wait(lambda: bool(sim.events_of("role-end", old)))
        _teardown_checks(sim, old, "leading")
        qp = sim.peer(old).quorum
        assert qp is not None and qp.last_change is not None
        assert qp.last_change[0] == "leading" and "Not sufficient followers" in qp.last_change[2]
        assert qp.last_change[4] < 0.05
        sim.heal()
        await sim.wait_settled()

    run_sim(scenario, seed=33)
