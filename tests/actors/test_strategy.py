"""The pure restart decision (actors._strategy): examples and properties."""

import ast
import pathlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import actors._strategy as strategy_module
from actors import Restart, RestartPlanner, Strategy, needs_restart

P, TR, TE = Restart.PERMANENT, Restart.TRANSIENT, Restart.TEMPORARY


def test_module_is_sans_io():
    tree = ast.parse(pathlib.Path(strategy_module.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert strategy_module.__sans_io__ is True
    assert not imported & {"trio", "time", "os", "socket", "threading"}


def test_restart_types():
    assert needs_restart(P, False) and needs_restart(P, True)
    assert needs_restart(TR, True) and not needs_restart(TR, False)
    assert not needs_restart(TE, True) and not needs_restart(TE, False)


CHILDREN = [("a", P), ("b", TE), ("c", P), ("d", TR), ("e", TE)]


def test_one_for_one_restarts_only_the_exited_child():
    d = RestartPlanner(Strategy.ONE_FOR_ONE, 3, 5).decide(CHILDREN, "c", True, 0.0)
    assert (d.stop, d.start, d.forget, d.give_up) == ((), ("c",), (), False)


def test_one_for_all_stops_others_in_reverse_and_forgets_temporary_collateral():
    d = RestartPlanner(Strategy.ONE_FOR_ALL, 3, 5).decide(CHILDREN, "c", True, 0.0)
    assert d.stop == ("e", "d", "b", "a")
    assert d.start == ("a", "c", "d")
    assert d.forget == ("b", "e")


def test_rest_for_one_touches_only_later_children():
    d = RestartPlanner(Strategy.REST_FOR_ONE, 3, 5).decide(CHILDREN, "c", True, 0.0)
    assert d.stop == ("e", "d")
    assert d.start == ("c", "d")
    assert d.forget == ("e",)


@pytest.mark.parametrize("strategy", list(Strategy))
def test_no_restart_needed_forgets_and_touches_nobody(strategy):
    planner = RestartPlanner(strategy, 0, 5)
    for cid, abnormal in [("b", True), ("d", False), ("e", False)]:
        d = planner.decide(CHILDREN, cid, abnormal, 1.0)
        assert (d.stop, d.start, d.forget, d.give_up) == ((), (), (cid,), False)
    # None of those counted against an intensity of zero; the next real restart does.
    assert planner.decide(CHILDREN, "a", False, 1.0).give_up


def test_intensity_window_slides():
    planner = RestartPlanner(Strategy.ONE_FOR_ONE, 2, 10)
    assert not planner.decide(CHILDREN, "a", True, 0.0).give_up
    assert not planner.decide(CHILDREN, "a", True, 5.0).give_up
    assert planner.restarts_in_window(9.9) == 2
    # The restart at t=0 leaves the window (now-10, now] at t=10.
    assert not planner.decide(CHILDREN, "a", True, 10.0).give_up
    d = planner.decide(CHILDREN, "a", True, 11.0)
    assert d.give_up and d.restarts == 3 and d.start == () and d.stop == ()


def test_bad_arguments():
    with pytest.raises(ValueError):
        RestartPlanner(Strategy.ONE_FOR_ONE, -1, 5)
    with pytest.raises(ValueError):
        RestartPlanner(Strategy.ONE_FOR_ONE, 1, 0)
    with pytest.raises(KeyError):
        RestartPlanner(Strategy.ONE_FOR_ONE, 1, 1).decide(CHILDREN, "zz", True, 0.0)


children_st = st.lists(
    st.tuples(st.integers(0, 50), st.sampled_from(list(Restart))),
    min_size=1,
    max_size=12,
    unique_by=lambda t: t[0],
).map(lambda xs: [(f"c{i}", r) for i, r in xs])


@settings(deadline=None)  # the machine is shared: no wall-clock deadlines
@given(
    children=children_st,
    pick=st.integers(0, 11),
    abnormal=st.booleans(),
    strategy=st.sampled_from(list(Strategy)),
    max_restarts=st.integers(0, 3),
)
def test_decision_properties(children, pick, abnormal, strategy, max_restarts):
    exited, restart = children[pick % len(children)]
    ids = [cid for cid, _ in children]
    kinds = dict(children)
    d = RestartPlanner(strategy, max_restarts, 10.0).decide(children, exited, abnormal, 0.0)
    assert exited not in d.stop
    assert not set(d.start) & set(d.forget)
    assert all(kinds[c] is not Restart.TEMPORARY for c in d.start)
    # Orders: stop in reverse start order, start in start order.
    assert list(d.stop) == sorted(d.stop, key=ids.index, reverse=True)
    assert list(d.start) == sorted(d.start, key=ids.index)
    if not needs_restart(restart, abnormal):
        assert (d.stop, d.start, d.forget, d.give_up) == ((), (), (exited,), False)
        return
    if max_restarts == 0:
        assert d.give_up and d.start == () and d.stop == ()
        return
    assert not d.give_up and exited in d.start
    # Every stopped sibling is either restarted or forgotten, exactly one of the two.
    assert set(d.stop) == (set(d.start) | set(d.forget)) - {exited}
    after = ids[ids.index(exited) + 1 :]
    expected_stopped = {
        Strategy.ONE_FOR_ONE: set(),
        Strategy.ONE_FOR_ALL: set(ids) - {exited},
        Strategy.REST_FOR_ONE: set(after),
    }[strategy]
    assert set(d.stop) == expected_stopped


@settings(deadline=None)
@given(
    gaps=st.lists(st.floats(0, 4, allow_nan=False), min_size=1, max_size=30),
    max_restarts=st.integers(0, 5),
    period=st.floats(0.5, 10, allow_nan=False),
)
def test_gives_up_exactly_when_the_window_overflows(gaps, max_restarts, period):
    times, now = [], 0.0
    for gap in gaps:
        now += gap
        times.append(now)
    # Brute-force model: the first restart whose window (t - period, t] holds more
    # than max_restarts restarts (itself included).
    expected = next(
        (
            i
            for i, t in enumerate(times)
            if sum(1 for u in times[: i + 1] if u > t - period) > max_restarts
        ),
        None,
    )
    planner = RestartPlanner(Strategy.ONE_FOR_ONE, max_restarts, period)
    got = None
    for i, t in enumerate(times):
        if planner.decide([("a", P)], "a", True, t).give_up:
            got = i
            break
    assert got == expected
