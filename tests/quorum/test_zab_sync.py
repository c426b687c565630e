"""choose_sync (quorum/sync.py): ZooKeeper's syncFollower cases, then a replay property."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_quorum.quorum.sync import SyncMode, SyncPlan, choose_sync
from trio_quorum.quorum.zab_zxid import (
    ZxidRolloverError,
    counter_of,
    epoch_of,
    is_epoch_start,
    next_zxid,
)
from trio_quorum.quorum.zab_zxid import (
    make_zxid as z,
)

LOG = [z(1, 1), z(1, 2), z(1, 3), z(2, 1), z(2, 2), z(3, 1)]


# -- zxid helpers ------------------------------------------------------------------


def test_zxid_parts() -> None:
    zx = z(0x12, 0x345)
    assert zx == 0x12_0000_0345
    assert (epoch_of(zx), counter_of(zx)) == (0x12, 0x345)
    assert is_epoch_start(z(7, 0)) and not is_epoch_start(z(7, 1))
    with pytest.raises(ValueError):
        z(1, 1 << 32)


def test_counter_rollover_forces_a_new_epoch() -> None:
    assert next_zxid(z(3, 0xFFFFFFFD)) == z(3, 0xFFFFFFFE)
    with pytest.raises(ZxidRolloverError, match="rolled over"):
        next_zxid(z(3, 0xFFFFFFFE))


# -- ZooKeeper's cases ----------------------------------------------------------------


def test_learner_equal_to_leader_gets_an_empty_diff() -> None:
    assert choose_sync(z(3, 1), LOG, z(3, 1)) == SyncPlan(SyncMode.DIFF, z(3, 1), len(LOG), 0)
    # ... and the proposals in flight.
    assert choose_sync(z(3, 1), LOG, z(3, 1), [z(3, 2)]) == SyncPlan(
        SyncMode.DIFF, z(3, 1), len(LOG), 0
    )


def test_learner_in_the_committed_log_gets_a_diff() -> None:
    plan = choose_sync(z(1, 3), LOG, z(3, 1))
    assert plan == SyncPlan(SyncMode.DIFF, z(3, 1), 3, 0)


def test_learner_ahead_in_an_older_epoch_is_truncated_to_that_epoch() -> None:
    # Learner has (1,4), (1,5) that the leader never had: TRUNC to (1,3), then (2,1)...
    plan = choose_sync(z(1, 5), LOG, z(3, 1))
    assert plan == SyncPlan(SyncMode.TRUNC, z(1, 3), 3, 0)


def test_learner_newer_than_the_leader_is_truncated() -> None:
    assert choose_sync(z(3, 4), LOG, z(3, 1)) == SyncPlan(SyncMode.TRUNC, z(3, 1), len(LOG), 0)
    # Even an outstanding proposal it already has is truncated and sent again
    # (ZooKeeper's rule: nothing uncommitted stays in a learner's tree).
    assert choose_sync(z(4, 1), LOG, z(3, 1), [z(4, 1), z(4, 2)]) == SyncPlan(
        SyncMode.TRUNC, z(3, 1), len(LOG), 0
    )


def test_learner_below_the_committed_log_gets_a_snapshot() -> None:
    assert choose_sync(z(1, 0), LOG[2:], z(3, 1)).mode is SyncMode.SNAP
    assert choose_sync(0, [], z(3, 1)).mode is SyncMode.SNAP
    # With the window known to be complete back to 0, no snapshot is needed.
    assert choose_sync(0, LOG, z(3, 1), base=0) == SyncPlan(SyncMode.DIFF, z(3, 1), 0, 0)


def test_new_epoch_zxid_is_diffed_never_truncated() -> None:
    # ZooKeeper's isPeerNewEpochZxid: (2,0) is a position, not a txn.
    assert choose_sync(z(2, 0), LOG, z(3, 1)) == SyncPlan(SyncMode.DIFF, z(3, 1), 3, 0)
    # Above everything the leader has: it cannot know, so SNAP.
    assert choose_sync(z(5, 0), LOG, z(3, 1)).mode is SyncMode.SNAP


def test_inputs_that_are_not_a_history_are_refused() -> None:
    with pytest.raises(ValueError):
        choose_sync(0, LOG, z(2, 2))
    with pytest.raises(ValueError):
        choose_sync(0, LOG, z(3, 1), [z(3, 1)])


# -- property: replaying the plan yields the leader's history --------------------------------


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[int], int, int]:
    """A leader history (zxids, several epochs), how many are committed, and a window start."""
    epochs = draw(st.lists(st.integers(1, 4), min_size=1, max_size=5))
    zxids: list[int] = []
    for epoch, count in enumerate(epochs, start=1):
        zxids.extend(z(epoch, c) for c in range(1, count + 1))
    committed = draw(st.integers(0, len(zxids)))
    window_start = draw(st.integers(0, committed))
    return zxids, committed, window_start


@given(histories(), st.data())
@settings(max_examples=400)
def test_replaying_the_plan_yields_the_leaders_history(
    hist: tuple[list[int], int, int], data: st.DataObject
) -> None:
    zxids, ncommitted, wstart = hist
    committed_all, in_flight = zxids[:ncommitted], zxids[ncommitted:]
    last = committed_all[-1] if committed_all else 0
    window = committed_all[wstart:]
    base_known = data.draw(st.booleans())
    base = (committed_all[wstart - 1] if wstart else 0) if base_known else None
    # A learner log with ZAB's prefix property: a prefix of the leader's
    # history, then txns the leader never had, all between the prefix's end
    # and the leader's next zxid (in some epoch's unused counters), or an
    # epoch-start position.
    p = data.draw(st.integers(0, len(zxids)))
    learner = zxids[:p]
    after = zxids[p] if p < len(zxids) else None
    kind = data.draw(st.sampled_from(["prefix", "extra", "epoch-start"]))
    if kind == "extra":
        lo = learner[-1] if learner else 0
        hi = after if after is not None else z(epoch_of(lo) + 2, 0)
        candidates = [
            x
            for x in (lo + 1, lo + 2, z(epoch_of(lo), 0xFFFF))
            if lo < x < hi and not is_epoch_start(x)
        ]
        if candidates:
            learner = learner + sorted(
                set(data.draw(st.lists(st.sampled_from(candidates), min_size=1)))
            )
    L = learner[-1] if learner else 0
    if kind == "epoch-start" and learner:
        # The learner holds everything of H below (e, 0) and reports (e, 0).
        e = epoch_of(learner[-1]) + 1
        L = z(e, 0)
        learner = [x for x in zxids if x < L]
    plan = choose_sync(L, window, last, in_flight, base)

    if plan.mode is SyncMode.SNAP:
        result = list(committed_all)
    elif plan.mode is SyncMode.TRUNC:
        result = [x for x in learner if x <= plan.zxid]
    else:
        result = list(learner)
    result += window[plan.committed_from :] + in_flight[plan.in_flight_from :]
    assert result == zxids, (plan, learner, L)
    # SNAP only when the leader cannot replay from the learner's position.
    if plan.mode is SyncMode.SNAP:
        bottom = base if base is not None else (window[0] if window else last)
        assert L < bottom or (is_epoch_start(L) and L > (in_flight[-1] if in_flight else last))
    # Nothing the learner holds of the leader's COMMITTED history is ever
    # truncated (proposals in flight are, and sent again: ZooKeeper's rule).
    if plan.mode is SyncMode.TRUNC:
        assert all(x <= plan.zxid for x in learner if x in committed_all)
        assert plan.zxid <= last
