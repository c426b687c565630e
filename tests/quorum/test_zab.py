"""ZAB cores wired together in memory (tests/quorum/test_zab_sim.py): phases, sync modes, broadcast, liveness.

Scenarios ported from ZooKeeper's ``Zab1_0Test`` and ``DIFFSyncConsistencyTest``
are marked with the test they come from.
"""

from __future__ import annotations

import pytest

from tests.quorum.test_zab_sim import INIT_LIMIT, SYNC_LIMIT, TICK, Disk, Ensemble
from trio_quorum.quorum import zab_effects as fx
from trio_quorum.quorum import zab_packets as p
from trio_quorum.quorum.leader import LeaderCore, NotLeadingError
from trio_quorum.quorum.learner import LearnerCore
from trio_quorum.quorum.zab_zxid import make_zxid as z


def empty(n: int) -> dict[int, Disk]:
    return {sid: Disk() for sid in range(1, n + 1)}


def established(ens: Ensemble) -> None:
    ens.start()
    ens.deliver_all()
    assert ens.violations == []
    assert ens.effects_of(ens.leader_sid, fx.Established)


# -- discovery and synchronization -------------------------------------------------


def test_discovery_and_sync_of_an_empty_ensemble() -> None:
    ens = Ensemble(empty(3), leader=1)
    established(ens)
    assert ens.effects_of(1, fx.Established) == [fx.Established(1)]
    for sid in (1, 2, 3):
        d = ens.nodes[sid].disk
        assert (d.accepted_epoch, d.current_epoch) == (1, 1)
    for sid in (2, 3):
        assert ens.sync_modes[sid] == ["DIFF"]
        assert ens.effects_of(sid, fx.StartServing) == [fx.StartServing(1)]
        assert ens.learner(sid).phase.name == "SERVING"
    # What a follower said, in order: FOLLOWERINFO, ACKEPOCH, ACK(NEWLEADER).
    assert ens.sent_by(2) == [p.FollowerInfo(2, 0, 0), p.AckEpoch(0, 0), p.Ack(z(1, 0))]


def test_epoch_is_max_accepted_plus_one_and_persisted_before_leaderinfo() -> None:
    # Zab1_0Test.testLastAcceptedEpoch / getEpochToPropose.
    disks = {1: Disk(accepted_epoch=2), 2: Disk(accepted_epoch=5), 3: Disk(accepted_epoch=3)}
    ens = Ensemble(disks, leader=1)
    ens.start()
    # Only the leader's own vote so far: no quorum, no epoch.
    assert ens.leader.epoch is None
    ens.deliver(2, 1)
    assert ens.leader.epoch == 6
    effects = ens.nodes[1].effects
    persist = effects.index(fx.PersistAcceptedEpoch(6))
    first_send = next(i for i, e in enumerate(effects) if isinstance(e, fx.Send))
    assert persist < first_send
    ens.deliver_all()
    assert all(n.disk.accepted_epoch == 6 and n.disk.current_epoch == 6 for n in ens.nodes.values())


def test_learner_persists_accepted_epoch_before_ackepoch() -> None:
    core = LearnerCore(
        2,
        accepted_epoch=1,
        current_epoch=1,
        last_zxid=z(1, 4),
        tick_time=TICK,
        init_limit=INIT_LIMIT,
        sync_limit=SYNC_LIMIT,
    )
    core.start(0)
    assert core.receive(p.LeaderInfo(2), 0) == [
        fx.PersistAcceptedEpoch(2),
        fx.SendToLeader((p.AckEpoch(1, z(1, 4)),)),
    ]


def test_learner_refuses_a_leader_of_an_older_epoch() -> None:
    core = LearnerCore(
        2,
        accepted_epoch=7,
        current_epoch=6,
        last_zxid=0,
        tick_time=TICK,
        init_limit=INIT_LIMIT,
        sync_limit=SYNC_LIMIT,
    )
    core.start(0)
    (lost,) = core.receive(p.LeaderInfo(5), 0)
    assert isinstance(lost, fx.LeaderLost) and "less than accepted epoch" in lost.reason
    assert core.receive(p.Diff(0), 1) == []  # stopped: input ignored


def test_leader_gives_up_when_a_follower_is_ahead() -> None:
    # Zab1_0Test.testLeaderBehind's check in waitForEpochAck: the follower's
    # (currentEpoch, lastZxid) beats the leader's.
    disks = {
        1: Disk.with_log([z(1, 1)], accepted=1, current=1),
        2: Disk.with_log([z(1, 1), z(1, 2)], accepted=1, current=1),
        3: Disk(accepted_epoch=1, current_epoch=1),
    }
    ens = Ensemble(disks, leader=1, auto_persist=True)
    ens.start()
    ens.deliver_all()
    (down,) = ens.effects_of(1, fx.StepDown)
    assert "ahead of the leader" in down.reason
    assert not ens.effects_of(1, fx.Established)


def test_follower_behind_gets_a_diff() -> None:
    leader_log = [z(1, i) for i in range(1, 6)]
    disks = {
        1: Disk.with_log(leader_log, accepted=1, current=1),
        2: Disk.with_log(leader_log[:3], accepted=1, current=1),
        3: Disk.with_log(leader_log, accepted=1, current=1),
    }
    ens = Ensemble(disks, leader=1)
    established(ens)
    assert ens.sync_modes == {2: ["DIFF"], 3: ["DIFF"]}
    sent = ens.sent_by(1)
    assert p.Diff(z(1, 5)) in sent
    assert [x.zxid for x in ens.nodes[2].disk.log] == leader_log
    assert [x.zxid for x in ens.nodes[2].disk.tree] == leader_log
    # Follower 3 was in sync: an empty DIFF, no replay.
    assert ens.learner(3).last_committed == z(1, 5)


def test_uncommitted_proposals_of_an_old_epoch_are_truncated() -> None:
    # The follower was leader of epoch 1 and logged (1,4), (1,5) that nobody
    # else saw; epoch 2 went on without them.
    common = [z(1, 1), z(1, 2), z(1, 3)]
    leader_log = common + [z(2, 1), z(2, 2)]
    disks = {
        1: Disk.with_log(leader_log, accepted=2, current=2),
        2: Disk.with_log(common + [z(1, 4), z(1, 5)], accepted=1, current=1),
        3: Disk.with_log(leader_log, accepted=2, current=2),
    }
    ens = Ensemble(disks, leader=1)
    established(ens)
    assert ens.sync_modes[2] == ["TRUNC"]
    assert fx.Truncate(z(1, 3)) in ens.nodes[2].effects
    assert [x.zxid for x in ens.nodes[2].disk.log] == leader_log
    assert [x.zxid for x in ens.nodes[2].disk.tree] == leader_log


def test_learner_newer_than_the_leader_is_truncated() -> None:
    # Zab1_0Test.testLeaderBehind's other half: same epoch, the follower logged
    # one more (never committed) txn; after ACKEPOCH the quorum is reached
    # without it (it is not "ahead" in currentEpoch of a leader that moved on).
    leader_log = [z(1, 1), z(1, 2)]
    disks = {
        1: Disk.with_log(leader_log, accepted=1, current=2),
        2: Disk.with_log(leader_log + [z(1, 3)], accepted=1, current=1),
        3: Disk.with_log(leader_log, accepted=1, current=1),
    }
    ens = Ensemble(disks, leader=1)
    established(ens)
    assert ens.sync_modes[2] == ["TRUNC"]
    assert fx.Truncate(z(1, 2)) in ens.nodes[2].effects
    assert [x.zxid for x in ens.nodes[2].disk.log] == leader_log


def test_far_behind_gets_a_snapshot() -> None:
    leader_log = [z(1, i) for i in range(1, 11)]
    disks = {
        1: Disk.with_log(leader_log, accepted=1, current=1),
        2: Disk(accepted_epoch=1, current_epoch=1),
        3: Disk.with_log(leader_log, accepted=1, current=1),
    }
    ens = Ensemble(disks, leader=1, commit_log_count=3)
    established(ens)
    assert ens.sync_modes[2] == ["SNAP"]
    (snap,) = ens.effects_of(2, fx.ApplySnapshot)
    assert snap.zxid == z(1, 10)
    assert ens.nodes[2].disk.tree == ens.nodes[1].disk.tree


def test_unnecessary_snap_is_avoided() -> None:
    # Zab1_0Test.testUnnecessarySnap: a follower already at the leader's zxid
    # gets an empty DIFF even when the committed log window is tiny.
    leader_log = [z(1, i) for i in range(1, 11)]
    disks = {sid: Disk.with_log(leader_log, accepted=1, current=1) for sid in (1, 2, 3)}
    ens = Ensemble(disks, leader=1, commit_log_count=1)
    established(ens)
    assert ens.sync_modes == {2: ["DIFF"], 3: ["DIFF"]}
    assert not ens.effects_of(2, fx.LogTxns)


# -- ZOOKEEPER-4646 -------------------------------------------------------------------


def test_newleader_is_not_acked_before_the_sync_is_durable() -> None:
    leader_log = [z(1, i) for i in range(1, 6)]
    disks = {
        1: Disk.with_log(leader_log, accepted=1, current=1),
        2: Disk.with_log(leader_log[:2], accepted=1, current=1),
        3: Disk.with_log(leader_log, accepted=1, current=1),
    }
    ens = Ensemble(disks, leader=1)
    ens.nodes[2].auto_persist = False
    ens.start()
    ens.deliver_all()
    f2 = ens.nodes[2]
    assert ens.effects_of(2, fx.LogTxns)  # the diffed txns were handed to the log
    assert p.Ack(z(2, 0)) not in ens.sent_by(2)
    assert f2.disk.current_epoch == 1
    assert not ens.effects_of(2, fx.PersistCurrentEpoch)
    # The leader got its quorum from 3; 2 is still syncing.
    assert ens.leader.synced_learners() == [3]
    before = len(f2.effects)
    ens.flush(2)
    assert f2.effects[before:] == [fx.PersistCurrentEpoch(2), fx.SendToLeader((p.Ack(z(2, 0)),))]
    ens.deliver_all()
    assert ens.leader.synced_learners() == [2, 3]
    assert ens.effects_of(2, fx.StartServing)


def test_crash_before_persist_loses_nothing_committed() -> None:
    # DIFFSyncConsistencyTest's shape: a follower gets a DIFF, dies before its
    # log is on disk, comes back; nothing that was committed is lost and it
    # re-syncs to the same history.
    leader_log = [z(1, i) for i in range(1, 6)]
    disks = {
        1: Disk.with_log(leader_log, accepted=1, current=1),
        2: Disk.with_log(leader_log[:1], accepted=1, current=1),
        3: Disk.with_log(leader_log, accepted=1, current=1),
    }
    ens = Ensemble(disks, leader=1)
    ens.nodes[2].auto_persist = False
    established(ens)
    ens.propose("a", "b")
    ens.deliver_all()
    ens.disconnect(2, crash=True)
    assert ens.nodes[2].disk.current_epoch == 1  # it never acked NEWLEADER
    assert [x.zxid for x in ens.nodes[2].disk.log] == leader_log[:1]
    ens.nodes[2].auto_persist = True
    ens.connect(2)
    ens.deliver_all()
    assert ens.violations == []
    assert ens.nodes[2].disk.log == ens.nodes[1].disk.log
    assert ens.nodes[2].disk.tree == ens.nodes[1].disk.tree


# -- broadcast -----------------------------------------------------------------------------


def test_broadcast_commits_only_with_a_quorum() -> None:
    ens = Ensemble(empty(5), leader=1, auto_persist=False)
    ens.start()
    ens.deliver_all()
    assert ens.effects_of(1, fx.Established)
    (zx,) = ens.propose("x")
    assert zx == z(1, 1)
    ens.deliver_all()
    ens.flush(1)  # the leader's own vote
    ens.flush(2)
    ens.deliver_all()
    assert not ens.effects_of(1, fx.Commit)  # 2 of 5
    ens.flush(3)
    ens.deliver(3, 1)
    (commit,) = ens.effects_of(1, fx.Commit)
    assert commit.zxid == zx
    ens.deliver_all()
    for sid in (2, 3, 4, 5):  # every follower applies it, acked or not
        assert [x.zxid for x in ens.nodes[sid].disk.tree] == [zx]
    assert ens.violations == []


def test_leader_vote_counts_only_after_its_own_persist() -> None:
    ens = Ensemble(empty(3), leader=1, auto_persist=False)
    ens.start()
    ens.deliver_all()
    ens.propose("x")
    ens.deliver_all()
    ens.flush(2)
    ens.deliver_all()
    assert not ens.effects_of(1, fx.Commit)  # 2 acked; the leader has not persisted
    ens.flush(1)
    assert len(ens.effects_of(1, fx.Commit)) == 1


def test_acks_are_cumulative_and_commits_batched() -> None:
    ens = Ensemble(empty(3), leader=1, auto_persist=False)
    ens.start()
    ens.deliver_all()
    zxids = ens.propose("a", "b", "c")
    assert zxids == [z(1, 1), z(1, 2), z(1, 3)]
    ens.flush(1)
    ens.deliver_all()
    ens.flush(2)  # one fsync for the three
    assert [x for x in ens.sent_by(2) if isinstance(x, p.Ack)][-1] == p.Ack(z(1, 3))
    ens.deliver_all()
    (commit,) = ens.effects_of(1, fx.Commit)
    assert [x.zxid for x in commit.proposals] == zxids
    assert [x for x in ens.links_sent_to(3) if isinstance(x, p.Commit)] == [p.Commit(z(1, 3))]
    (applied,) = ens.effects_of(3, fx.Commit)
    assert [x.zxid for x in applied.proposals] == zxids


def test_proposals_commit_in_zxid_order() -> None:
    ens = Ensemble(empty(3), leader=1, auto_persist=False)
    ens.start()
    ens.deliver_all()
    ens.propose("a")
    ens.flush(1)  # the leader's log holds (1,1) ...
    ens.propose("b")  # ... but not yet (1,2)
    ens.deliver_all()
    ens.flush(2)  # 2 acks (1,2), which covers (1,1)
    ens.deliver_all()
    commits = ens.effects_of(1, fx.Commit)
    assert [x.zxid for c in commits for x in c.proposals] == [z(1, 1)]
    ens.flush(1)
    commits = ens.effects_of(1, fx.Commit)
    assert [x.zxid for c in commits for x in c.proposals] == [z(1, 1), z(1, 2)]
    assert ens.violations == []


def test_observer_gets_inform_and_does_not_vote() -> None:
    # Zab1_0Test.testNormalObserverRun.
    ens = Ensemble(empty(4), leader=1, observers=frozenset({4}), auto_persist=False)
    ens.start()
    ens.deliver_all()
    assert ens.sent_by(4)[0] == p.ObserverInfo(4, 0, 0)
    ens.flush(4)
    ens.deliver_all()
    assert ens.effects_of(4, fx.StartServing)
    ens.propose("x")
    ens.flush(1)
    ens.flush(4)
    ens.deliver_all()
    assert not ens.effects_of(1, fx.Commit)  # the observer's persist is no vote
    assert not any(isinstance(x, p.Proposal) for x in ens.links_sent_to(4))
    ens.flush(2)
    ens.deliver_all()
    assert ens.effects_of(1, fx.Commit)
    assert p.Inform(z(1, 1), "x") in ens.links_sent_to(4)
    assert [x.zxid for x in ens.nodes[4].disk.tree] == [z(1, 1)]
    assert [x for x in ens.sent_by(4) if isinstance(x, p.Ack)] == [p.Ack(z(1, 0))]


def test_late_follower_gets_in_flight_proposals() -> None:
    ens = Ensemble(empty(3), leader=1, auto_persist=False)
    ens.start()
    # 3 stays away during discovery.
    ens.disconnect(3, crash=False)
    ens.deliver_all()
    ens.flush(2)
    ens.deliver_all()
    assert ens.effects_of(1, fx.Established)
    ens.propose("a")
    ens.flush(1)
    ens.deliver_all()
    ens.flush(2)
    ens.deliver_all()
    ens.propose("b")  # in flight while 3 joins
    ens.connect(3)
    ens.deliver_all()
    assert ens.sync_modes[3] == ["DIFF"]
    ens.flush(3)
    ens.deliver_all()
    # 3's ACK of NEWLEADER is followed by a cumulative ACK covering the in-flight (1,2).
    assert [x for x in ens.sent_by(3) if isinstance(x, p.Ack)] == [p.Ack(z(1, 0)), p.Ack(z(1, 2))]
    ens.flush(1)
    ens.deliver_all()
    assert [x.zxid for x in ens.nodes[3].disk.tree] == [z(1, 1), z(1, 2)]
    assert ens.violations == []


# -- sync, requests, sessions ------------------------------------------------------------------


def test_sync_answer_follows_the_commits_before_it() -> None:
    ens = Ensemble(empty(3), leader=1, auto_persist=False)
    ens.start()
    ens.deliver_all()
    ens.flush(2), ens.flush(3)
    ens.deliver_all()
    ens.propose("a")
    ens.run(ens.nodes[3], ens.learner(3).sync("tok"))
    ens.deliver_all()
    assert not ens.effects_of(3, fx.SyncDone)  # (1,1) not committed yet
    ens.flush(1), ens.flush(2)
    ens.deliver_all()
    effects = ens.nodes[3].effects
    done = effects.index(fx.SyncDone("tok"))
    commit = next(i for i, e in enumerate(effects) if isinstance(e, fx.Commit))
    assert commit < done
    assert ens.violations == []
    # Nothing outstanding: answered at once.
    ens.run(ens.nodes[2], ens.learner(2).sync("now"))
    ens.deliver_all()
    assert ens.effects_of(2, fx.SyncDone) == [fx.SyncDone("now")]


def test_requests_pings_and_revalidation_reach_the_leader() -> None:
    ens = Ensemble(empty(3), leader=1)
    established(ens)
    ens.nodes[2].touches = {0x10: 4000}
    ens.run(ens.nodes[2], ens.learner(2).forward(b"create /x"))
    ens.run(ens.nodes[2], ens.learner(2).revalidate(42, 3000))
    ens.tick(TICK // 2)  # the leader pings; 2 answers with its touches
    ens.deliver_all()
    assert ens.effects_of(1, fx.SubmitRequest) == [fx.SubmitRequest(2, b"create /x")]
    assert ens.effects_of(1, fx.TouchSessions) == [fx.TouchSessions(2, {0x10: 4000})]
    assert ens.effects_of(1, fx.RevalidateSession) == [fx.RevalidateSession(2, 42, 3000)]
    assert ens.effects_of(2, fx.SessionRevalidated) == [fx.SessionRevalidated(42, True)]


# -- liveness ----------------------------------------------------------------------------------


def test_leader_steps_down_when_it_loses_its_quorum() -> None:
    ens = Ensemble(empty(3), leader=1)
    established(ens)
    # Followers answer pings: the leader keeps leading.
    for _ in range(3 * SYNC_LIMIT):
        ens.tick(TICK // 2)
        ens.deliver_all()
    assert not ens.effects_of(1, fx.StepDown)
    # Now 2 and 3 are cut off (nothing delivered): after syncLimit ticks it gives up.
    for _ in range(2 * SYNC_LIMIT + 2):
        ens.now += TICK // 2
        ens.run(ens.nodes[1], ens.leader.tick(ens.now))
    (down,) = ens.effects_of(1, fx.StepDown)
    assert "Not sufficient followers synced" in down.reason
    assert {e.sid for e in ens.effects_of(1, fx.DropLearner)} == {2, 3}
    with pytest.raises(NotLeadingError):
        ens.leader.propose("late")


def test_minority_loss_does_not_stop_the_leader() -> None:
    ens = Ensemble(empty(3), leader=1)
    established(ens)
    ens.disconnect(3, crash=True)
    for _ in range(4 * SYNC_LIMIT):
        ens.tick(TICK // 2)
        ens.deliver_all()
    assert not ens.effects_of(1, fx.StepDown)


def test_learner_detects_a_silent_leader() -> None:
    ens = Ensemble(empty(3), leader=1)
    established(ens)
    core = ens.learner(2)
    assert core.tick(ens.now + SYNC_LIMIT * TICK) == []
    (lost,) = core.tick(ens.now + SYNC_LIMIT * TICK + 1)
    assert isinstance(lost, fx.LeaderLost) and "silent" in lost.reason


def test_leader_abandons_without_epoch_quorum() -> None:
    # Zab1_0Test.testAbandonBeforeACKEpoch: FOLLOWERINFO from one of three,
    # then nothing: after initLimit ticks the leader gives up.
    ens = Ensemble(empty(3), leader=1)
    ens.start()
    ens.deliver(2, 1)  # FOLLOWERINFO: the epoch is fixed
    ens.now = INIT_LIMIT * TICK
    ens.run(ens.nodes[1], ens.leader.tick(ens.now))
    assert not ens.effects_of(1, fx.StepDown)
    ens.now += 1
    ens.run(ens.nodes[1], ens.leader.tick(ens.now))
    (down,) = ens.effects_of(1, fx.StepDown)
    assert "epoch to be acked" in down.reason


# -- protocol errors and zxid rollover -------------------------------------------------------------


def test_learner_out_of_order_is_dropped_not_fatal() -> None:
    ens = Ensemble(empty(3), leader=1)
    established(ens)
    ens.run(ens.nodes[1], ens.leader.receive(2, p.AckEpoch(0, 0), ens.now))
    (drop,) = ens.effects_of(1, fx.DropLearner)
    assert drop.sid == 2 and "unexpected AckEpoch" in drop.reason
    assert not ens.effects_of(1, fx.StepDown)


def test_commit_of_an_unknown_proposal_loses_the_leader() -> None:
    ens = Ensemble(empty(3), leader=1)
    established(ens)
    (lost,) = ens.learner(2).receive(p.Commit(z(1, 7)), ens.now)
    assert isinstance(lost, fx.LeaderLost) and "never received" in lost.reason


def test_zxid_rollover_steps_down() -> None:
    core = LeaderCore(
        1,
        [1],
        accepted_epoch=0,
        current_epoch=0,
        last_zxid=0,
        tick_time=TICK,
        init_limit=INIT_LIMIT,
        sync_limit=SYNC_LIMIT,
    )
    effects = core.start(0)
    assert fx.Established(1) in effects  # a single voter is its own quorum
    core.last_proposed = z(1, 0xFFFFFFFD)
    zxids, effects = core.propose_many(["last", "too many"])
    assert zxids == [z(1, 0xFFFFFFFE)]
    assert isinstance(effects[-1], fx.StepDown) and "rolled over" in effects[-1].reason
    with pytest.raises(NotLeadingError):
        core.propose("x")


def test_single_voter_commits_on_its_own_persist() -> None:
    core = LeaderCore(
        1,
        [1],
        accepted_epoch=3,
        current_epoch=3,
        last_zxid=z(3, 9),
        tick_time=TICK,
        init_limit=INIT_LIMIT,
        sync_limit=SYNC_LIMIT,
    )
    assert core.start(0) == [
        fx.PersistAcceptedEpoch(4),
        fx.PersistCurrentEpoch(4),
        fx.Established(4),
    ]
    zx, effects = core.propose(b"t")
    assert zx == z(4, 1) and effects == [fx.LogTxns((p.Proposal(zx, b"t"),))]
    assert core.persisted(zx) == [fx.Commit((p.Proposal(zx, b"t"),))]


def test_in_flight_proposal_durable_before_newleader_is_acked_with_it() -> None:
    # Found by the property test: the ACK of a proposal made durable during the
    # sync must leave with ACK(NEWLEADER), not wait for another fsync.
    core = LearnerCore(
        2,
        accepted_epoch=0,
        current_epoch=0,
        last_zxid=0,
        tick_time=TICK,
        init_limit=INIT_LIMIT,
        sync_limit=SYNC_LIMIT,
    )
    core.start(0)
    core.receive(p.LeaderInfo(1), 0)
    assert core.receive_many([p.Diff(0), p.Proposal(z(1, 1), "a")], 0) == [
        fx.LogTxns((p.Proposal(z(1, 1), "a"),))
    ]
    assert core.persisted(z(1, 1)) == []  # no NEWLEADER yet: nothing to ack
    assert core.receive(p.NewLeader(z(1, 0)), 0) == [
        fx.PersistCurrentEpoch(1),
        fx.SendToLeader((p.Ack(z(1, 0)), p.Ack(z(1, 1)))),
    ]
