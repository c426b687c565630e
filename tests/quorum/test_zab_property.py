"""Random interleavings of an ensemble with loss at a minority (Hypothesis).

Each example starts an ensemble (3 or 5 voters, sometimes an observer, some
learners with divergent old histories), then draws steps: deliver the next
packet on some link, complete some node's fsync, propose a batch, ask for a
``sync``, cut a minority learner's link (losing what is in flight) with or
without a crash (losing what is not fsynced), reconnect it.  Then the network
heals and everything is delivered and fsynced.

Checked all along (test_zab_sim's executor): every committed zxid was acked by
a quorum and is durable on a quorum; every learner's commits are the leader's,
in order, without gaps; snapshots are taken at the zxid announced; SYNC answers
come after the commits they must follow.  At the end: every learner's log and
tree equal the leader's.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.quorum.test_zab_sim import Disk, Ensemble
from trio_quorum.quorum import zab_effects as fx
from trio_quorum.quorum.zab_zxid import make_zxid as z

STEPS = (
    "deliver",
    "deliver",
    "deliver",
    "deliver",
    "flush",
    "flush",
    "propose",
    "sync",
    "cut",
    "reconnect",
)


def _initial_disks(data: st.DataObject, n_voters: int, observer: bool) -> dict[int, Disk]:
    """Histories ZAB could leave behind: epoch 1 wrote ``common`` (and, on a
    minority, a few txns nobody else logged: its leader crashed); epoch 2 was
    established by server 1 and a quorum without writing anything; server 1
    now leads again, so its (currentEpoch, lastZxid) is the highest."""
    common = [z(1, i) for i in range(1, data.draw(st.integers(0, 4)) + 1)]
    minority = range(2, 2 + (n_voters - 1) // 2)
    disks = {1: Disk.with_log(common, accepted=2, current=2)}
    for sid in range(2, n_voters + 1 + observer):
        upto = data.draw(st.integers(0, len(common)), label=f"prefix of {sid}")
        log = common[:upto]
        # Extras only after the whole common prefix: epoch 1's counters are consecutive.
        if (
            sid in minority
            and upto == len(common)
            and data.draw(st.booleans(), label=f"extra {sid}")
        ):
            log = log + [z(1, len(common) + 1 + k) for k in range(data.draw(st.integers(1, 2)))]
        disks[sid] = Disk.with_log(log, accepted=1, current=1)
    return disks


@given(st.data())
@settings(
    max_examples=int(os.environ.get("ZAB_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
def test_committed_prefixes_agree_under_minority_loss(data: st.DataObject) -> None:
    n_voters = data.draw(st.sampled_from([3, 5]), label="voters")
    observer = data.draw(st.booleans(), label="observer")
    disks = _initial_disks(data, n_voters, observer)
    observers = frozenset({n_voters + 1}) if observer else frozenset()
    ens = Ensemble(
        disks,
        leader=1,
        observers=observers,
        commit_log_count=data.draw(st.sampled_from([2, 500])),
        auto_persist=False,
    )
    # Which learners may fail: a minority of the voters (plus the observer).
    followers = list(range(2, n_voters + 1))
    fragile = set(data.draw(st.permutations(followers))[: (n_voters - 1) // 2]) | set(observers)
    ens.start()
    down: set[int] = set()
    tokens = 0
    for _ in range(data.draw(st.integers(10, 120), label="steps")):
        step = data.draw(st.sampled_from(STEPS))
        if step == "deliver":
            pending = ens.pending()
            if pending:
                src, dst = data.draw(st.sampled_from(sorted(pending)))
                ens.deliver(src, dst, data.draw(st.integers(1, 4)))
        elif step == "flush":
            ens.flush(data.draw(st.sampled_from(sorted(ens.nodes))))
        elif step == "propose":
            if ens.leader.state is fx.ZabState.BROADCAST:
                ens.propose(*(f"t{tokens}-{k}" for k in range(data.draw(st.integers(1, 3)))))
                tokens += 1
        elif step == "sync":
            sid = data.draw(st.sampled_from(followers))
            if sid not in down and ens.nodes[sid].core is not None:
                tokens += 1
                ens.run(ens.nodes[sid], ens.learner(sid).sync(f"sync-{tokens}"))
        elif step == "cut":
            alive = sorted(fragile - down)
            if alive:
                sid = data.draw(st.sampled_from(alive))
                ens.disconnect(sid, crash=data.draw(st.booleans()))
                down.add(sid)
        elif step == "reconnect" and down:
            sid = data.draw(st.sampled_from(sorted(down)))
            down.discard(sid)
            ens.connect(sid)
        assert ens.violations == []
        assert not ens.effects_of(1, fx.StepDown)

    # Heal: everyone back, every fsync done, every packet delivered.
    for sid in sorted(down):
        ens.connect(sid)
    for node in ens.nodes.values():
        node.auto_persist = True
    for _ in range(10):
        for sid in sorted(ens.nodes):
            ens.flush(sid)
        ens.deliver_all()
    assert ens.violations == []
    assert ens.leader.state is fx.ZabState.BROADCAST
    leader = ens.nodes[1].disk
    for sid, node in ens.nodes.items():
        assert node.stopped is None, (sid, node.stopped)
        assert [x.zxid for x in node.disk.log] == [x.zxid for x in leader.log], sid
        assert node.disk.tree == leader.tree, sid
        assert node.disk.current_epoch == ens.leader.epoch
    # Everything proposed was committed once the network healed.
    assert ens.leader.last_committed == (leader.log[-1].zxid if leader.log else 0)
