"""Supervisors: strategies, restart types, intensity, escalation, start-up and shutdown."""

import math

import pytest
import trio

from actors import (
    ActorCancelled,
    ActorCrashed,
    ActorGaveUp,
    ActorNotRunning,
    ActorRestarted,
    ActorStarted,
    ActorStarting,
    ActorStopped,
    ActorStopping,
    ActorTree,
    ChildSpec,
    ChildStartFailed,
    Restart,
    Strategy,
    SupervisorError,
    SupervisorGaveUp,
    open_supervisor,
    supervisor_spec,
)
from actors.testing import EventRecorder, inject_cancel, inject_crash, live_tasks

from .helpers import echo, events_of, stubborn


def is_(kind, path):
    return lambda e: isinstance(e, kind) and e.path == path


async def incarnations(sup):
    return {cid: (await sup.ref(cid).call("?", timeout=1))[1] for cid in sup.child_ids()}


# -- strategies ---------------------------------------------------------------


async def test_one_for_one_restarts_only_the_crashed_child(autojump_clock):
    tree = ActorTree()
    with EventRecorder(tree) as rec:
        specs = [ChildSpec(c, echo) for c in "abc"]
        async with open_supervisor(
            "root", tree=tree, strategy=Strategy.ONE_FOR_ONE, children=specs
        ) as sup:
            await sup.ref("b").send("crash")
            await rec.wait_for(is_(ActorRestarted, "root/b"))
            assert await incarnations(sup) == {"a": 0, "b": 1, "c": 0}
            assert rec.of_type(ActorStopping) == []
            crash = events_of(rec, ActorCrashed, "root/b")[0]
            assert isinstance(crash.exc, RuntimeError)


async def test_one_for_all_stops_all_in_reverse_and_restarts_in_order(autojump_clock):
    tree = ActorTree()
    with EventRecorder(tree) as rec:
        specs = [ChildSpec(c, echo) for c in "abc"]
        async with open_supervisor(
            "root", tree=tree, strategy=Strategy.ONE_FOR_ALL, children=specs
        ) as sup:
            rec.clear()
            inject_crash(tree, "root/b", ValueError("injected"))
            await rec.wait_for(is_(ActorRestarted, "root/c"))
            assert await incarnations(sup) == {"a": 1, "b": 1, "c": 1}
            assert rec.paths(ActorStopping) == ["root/c", "root/a"]
            assert rec.paths(ActorStarting) == ["root/a", "root/b", "root/c"]
            assert events_of(rec, ActorCrashed, "root/b")[0].exc.args == ("injected",)


async def test_rest_for_one_restarts_the_later_children(autojump_clock):
    tree = ActorTree()
    with EventRecorder(tree) as rec:
        specs = [ChildSpec(c, echo) for c in "abcd"]
        async with open_supervisor(
            "root", tree=tree, strategy=Strategy.REST_FOR_ONE, children=specs
        ) as sup:
            rec.clear()
            await sup.ref("b").send("crash")
            await rec.wait_for(is_(ActorRestarted, "root/d"))
            assert await incarnations(sup) == {"a": 0, "b": 1, "c": 1, "d": 1}
            assert rec.paths(ActorStopping) == ["root/d", "root/c"]
            assert rec.paths(ActorStarting) == ["root/b", "root/c", "root/d"]


# -- restart types --------------------------------------------------------------


async def test_permanent_child_is_restarted_even_after_returning(autojump_clock):
    tree = ActorTree()
    with EventRecorder(tree) as rec:
        async with open_supervisor("root", tree=tree, children=[ChildSpec("p", echo)]) as sup:
            await sup.ref("p").send("quit")
            await rec.wait_for(is_(ActorRestarted, "root/p"))
            assert events_of(rec, ActorStopped, "root/p")[0].reason == "returned"
            assert (await sup.ref("p").call("?", timeout=1))[1] == 1


async def test_transient_child_restarts_after_crash_not_after_return(autojump_clock):
    tree = ActorTree()
    with EventRecorder(tree) as rec:
        spec = ChildSpec("t", echo, restart=Restart.TRANSIENT)
        async with open_supervisor("root", tree=tree, children=[spec]) as sup:
            await sup.ref("t").send("crash")
            await rec.wait_for(is_(ActorRestarted, "root/t"))
            await sup.ref("t").send("quit")
            await rec.wait_for_count(is_(ActorStopped, "root/t"), 2)
            assert sup.child_ids() == []
            assert len(rec.of_type(ActorRestarted)) == 1
            with pytest.raises(ActorNotRunning):
                tree.lookup("root/t")


async def test_temporary_child_is_never_restarted_and_spares_its_siblings(autojump_clock):
    tree = ActorTree()
    with EventRecorder(tree) as rec:
        specs = [
            ChildSpec("a", echo),
            ChildSpec("tmp", echo, restart=Restart.TEMPORARY),
            ChildSpec("c", echo),
        ]
        async with open_supervisor(
            "root", tree=tree, strategy=Strategy.ONE_FOR_ALL, children=specs
        ) as sup:
            await sup.ref("tmp").send("crash")
            await rec.wait_for(is_(ActorStopped, "root/tmp"))
            await trio.testing.wait_all_tasks_blocked()
            assert sup.child_ids() == ["a", "c"]
            assert rec.of_type(ActorRestarted) == [] and rec.of_type(ActorStopping) == []


async def test_unrequested_cancel_counts_as_abnormal_exit(autojump_clock):
    tree = ActorTree()
    with EventRecorder(tree) as rec:
        spec = ChildSpec("t", echo, restart=Restart.TRANSIENT)
        async with open_supervisor("root", tree=tree, children=[spec]) as sup:
            inject_cancel(tree, "root/t", "chaos monkey")
            await rec.wait_for(is_(ActorRestarted, "root/t"))
            cancelled = events_of(rec, ActorCancelled, "root/t")[0]
            assert (cancelled.by, cancelled.reason) == ("actors.testing", "chaos monkey")
            assert "chaos monkey" in events_of(rec, ActorStopped, "root/t")[0].reason
            assert sup.child_ids() == ["t"]


# -- intensity and escalation ------------------------------------------------


async def test_intensity_exceeded_gives_up_with_the_crash_as_cause(autojump_clock):
    tree = ActorTree()
    with EventRecorder(tree) as rec:
        specs = [ChildSpec("a", echo), ChildSpec("b", echo)]
        with pytest.raises(SupervisorGaveUp) as info:
            async with open_supervisor(
                "root", tree=tree, children=specs, max_restarts=2, max_seconds=10
            ) as sup:
                for n in range(3):
                    await sup.ref("b").send("crash")
                    if n < 2:
                        await rec.wait_for_count(is_(ActorRestarted, "root/b"), n + 1)
                await trio.sleep_forever()  # cancelled when the supervisor gives up
    err = info.value
    assert (err.path, err.child, err.restarts, err.max_restarts) == ("root", "root/b", 3, 2)
    assert isinstance(err.__cause__, RuntimeError) and "root/b" in str(err.__cause__)
    gave_up = rec.of_type(ActorGaveUp)
    assert [g.path for g in gave_up] == ["root"] and gave_up[0].cause is err.__cause__
    # Every running child was stopped before the supervisor failed.
    assert rec.paths(ActorStopping) == ["root/a"]  # b is already dead
    assert tree.paths() == []


async def test_restarts_spread_over_time_do_not_exhaust_intensity(autojump_clock):
    tree = ActorTree()
    with EventRecorder(tree) as rec:
        async with open_supervisor(
            "root", tree=tree, children=[ChildSpec("a", echo)], max_restarts=1, max_seconds=5
        ) as sup:
            for n in range(4):
                await sup.ref("a").send("crash")
                await rec.wait_for_count(is_(ActorRestarted, "root/a"), n + 1)
                autojump_clock.jump(6)  # the previous restart leaves the window
            assert rec.of_type(ActorGaveUp) == []


async def test_escalation_through_nested_supervisors(autojump_clock):
    tree = ActorTree()
    with EventRecorder(tree) as rec:
        mid = supervisor_spec("mid", [ChildSpec("leaf", echo)], max_restarts=0)
        with pytest.raises(SupervisorGaveUp) as info:
            async with open_supervisor(
                "root", tree=tree, children=[mid, ChildSpec("other", echo)], max_restarts=1
            ):
                await tree.ref("root/mid/leaf").send("crash")
                # mid gives up, crashes; root restarts mid with a fresh leaf.
                await rec.wait_for(is_(ActorRestarted, "root/mid"))
                assert (await tree.ref("root/mid/leaf").call("?", timeout=1))[1] == 0
                await tree.ref("root/mid/leaf").send("crash")
                await trio.sleep_forever()
    root_err = info.value
    assert root_err.path == "root" and root_err.child == "root/mid"
    mid_err = root_err.__cause__
    assert isinstance(mid_err, SupervisorGaveUp) and mid_err.path == "root/mid"
    assert isinstance(mid_err.__cause__, RuntimeError)
    assert rec.paths(ActorGaveUp) == ["root/mid", "root/mid", "root"]
    # root stopped its other child on the way out
    assert events_of(rec, ActorStopped, "root/other")


# -- start-up -----------------------------------------------------------------


async def test_crash_during_startup_stops_started_siblings_and_fails(autojump_clock):
    async def broken(ctx, inbox, *, task_status):
        await trio.sleep(1)
        raise OSError("port in use")

    tree = ActorTree()
    with EventRecorder(tree) as rec:
        specs = [
            ChildSpec("a", echo),
            ChildSpec("b", echo),
            ChildSpec("bad", broken),
            ChildSpec("z", echo),
        ]
        with pytest.raises(ChildStartFailed) as info:
            async with open_supervisor("root", tree=tree, children=specs):
                pytest.fail("the body must not run")
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.path == "root/bad"
    assert rec.paths(ActorStopping) == ["root/b", "root/a"]
    assert "root/z" not in {e.path for e in rec.events}
    assert rec.for_path("root")[-1].reason.startswith("failed: ChildStartFailed")


async def test_dynamic_child_start_failure_leaves_the_supervisor_running(autojump_clock):
    async def broken(ctx, inbox, *, task_status):
        raise ValueError("bad config")

    async def lazy(ctx, inbox, *, task_status):
        return  # returns without ever being ready

    async with open_supervisor("root", children=[ChildSpec("a", echo)]) as sup:
        with pytest.raises(ChildStartFailed) as info:
            await sup.start_child(ChildSpec("x", broken))
        assert isinstance(info.value.__cause__, ValueError)
        with pytest.raises(ChildStartFailed, match="before it was ready"):
            await sup.start_child(ChildSpec("y", lazy))
        with pytest.raises(ValueError, match="already has"):
            await sup.start_child(ChildSpec("a", echo))
        assert sup.child_ids() == ["a"]
        assert (await sup.ref("a").call("?", timeout=1))[1] == 0


async def test_crash_during_restart_startup_counts_toward_intensity(autojump_clock):
    async def flaky(ctx, inbox, *, task_status):
        if ctx.incarnation > 0:
            raise OSError("still broken")
        task_status.started()
        await trio.sleep_forever()

    tree = ActorTree()
    with EventRecorder(tree) as rec:
        with pytest.raises(SupervisorGaveUp) as info:
            async with open_supervisor(
                "root", tree=tree, children=[ChildSpec("f", flaky)], max_restarts=3
            ):
                inject_crash(tree, "root/f", RuntimeError("first"))
                await trio.sleep_forever()
    assert isinstance(info.value.__cause__, OSError)
    assert [e.incarnation for e in events_of(rec, ActorStarting, "root/f")] == [
        0,
        1,
        2,
        3,
    ]  # 3 restarts allowed; the 4th gives up


# -- shutdown -------------------------------------------------------------------


async def test_child_ignoring_stop_is_cancelled_after_its_grace(autojump_clock):
    tree = ActorTree()
    with EventRecorder(tree) as rec:
        async with open_supervisor("root", tree=tree) as sup:
            await sup.start_child(ChildSpec("polite", echo, shutdown=3))
            await sup.start_child(ChildSpec("deaf", stubborn, shutdown=3))
            t0 = trio.current_time()
            await sup.stop_child("polite", "not needed")
            assert trio.current_time() == t0
            await sup.stop_child("deaf", "not needed")
            assert trio.current_time() - t0 == pytest.approx(3)
            assert sup.child_ids() == []
    assert rec.kinds("root/deaf")[-3:] == ["ActorStopping", "ActorCancelled", "ActorStopped"]
    cancelled = events_of(rec, ActorCancelled, "root/deaf")[0]
    assert cancelled.by == "root" and "grace of 3s expired" in cancelled.reason
    assert events_of(rec, ActorStopped, "root/polite")[0].reason == "stop requested: not needed"
    assert events_of(rec, ActorCancelled, "root/polite") == []


async def test_block_exit_stops_children_in_reverse_start_order(autojump_clock):
    tree = ActorTree()
    with EventRecorder(tree) as rec:
        specs = [ChildSpec(c, echo) for c in "abc"]
        async with open_supervisor("root", tree=tree, children=specs) as sup:
            await sup.start_child(ChildSpec("d1", stubborn, shutdown=2, restart=Restart.TEMPORARY))
            await sup.start_child(ChildSpec("d2", stubborn, shutdown=2, restart=Restart.TEMPORARY))
            t0 = trio.current_time()
    # Dynamic children are asked together and share one grace period.
    assert trio.current_time() - t0 == pytest.approx(2)
    assert rec.paths(ActorStopped) == ["root/d2", "root/d1", "root/c", "root/b", "root/a", "root"]


async def test_cancelling_the_root_while_children_start(autojump_clock):
    entered = trio.Event()

    async def slow_start(ctx, inbox, *, task_status):
        entered.set()
        await trio.sleep_forever()
        task_status.started()  # never reached

    tree = ActorTree()
    with EventRecorder(tree) as rec:
        with trio.CancelScope() as cs:
            async with trio.open_nursery() as n:

                async def canceller():
                    await entered.wait()
                    cs.cancel(reason="operator pressed ^C")

                n.start_soon(canceller)
                specs = [
                    ChildSpec("a", echo),
                    ChildSpec("slow", slow_start),
                    ChildSpec("never", echo),
                ]
                async with open_supervisor("root", tree=tree, children=specs):
                    pytest.fail("the body must not run")
        assert cs.cancelled_caught
    assert not any(name.startswith("root") for name in live_tasks())
    assert tree.paths() == []
    for path in ("root/slow", "root/a", "root"):
        (stopped,) = events_of(rec, ActorStopped, path)
        assert "operator pressed ^C" in stopped.reason
        (cancelled,) = events_of(rec, ActorCancelled, path)
        assert cancelled.reason == "operator pressed ^C" and cancelled.by
    assert rec.paths(ActorStarted) == ["root/a"]
    assert "root/never" not in {e.path for e in rec.events}


async def test_teardown_trace_of_a_three_level_tree(autojump_clock):
    tree = ActorTree()
    leaves = [ChildSpec(f"learner-handler-{i}", echo) for i in range(3)]
    leading = supervisor_spec("leading", leaves, strategy=Strategy.ONE_FOR_ALL)
    with EventRecorder(tree) as rec:
        with trio.CancelScope() as cs:
            async with open_supervisor(
                "peer-2", tree=tree, children=[ChildSpec("storage", echo), leading]
            ):
                assert len(tree.paths()) == 5
                cs.cancel(reason="test teardown")
                await trio.sleep_forever()
    stopped = rec.of_type(ActorStopped)
    order = [e.path for e in stopped]
    expected = {
        "peer-2",
        "peer-2/storage",
        "peer-2/leading",
        *(f"peer-2/leading/learner-handler-{i}" for i in range(3)),
    }
    assert sorted(order) == sorted(expected)  # every actor stopped exactly once
    for e in stopped:
        assert "test teardown" in e.reason, e
        parent = e.path.rpartition("/")[0]
        if parent:
            assert order.index(e.path) < order.index(parent), f"{e.path} after {parent}"
    for e in rec.of_type(ActorCancelled):
        assert e.reason == "test teardown" and e.by is not None
    assert {e.path for e in rec.of_type(ActorCancelled)} == expected
    assert rec.of_type(ActorCrashed) == []
    assert not any(name.startswith("peer-2") for name in live_tasks())


async def test_no_task_alive_after_the_root_exits(autojump_clock):
    baseline = sorted(live_tasks())
    tree = ActorTree()

    async def spawner(ctx, inbox, *, task_status):
        async with trio.open_nursery() as n:
            n.start_soon(trio.sleep_forever)
            task_status.started()
            async for _ in inbox:
                pass
            n.cancel_scope.cancel()

    mid = supervisor_spec("mid", [ChildSpec("s", spawner), ChildSpec("x", stubborn, shutdown=1)])
    async with open_supervisor("root", tree=tree, children=[mid]) as sup:
        await sup.start_child(ChildSpec("dyn", spawner, restart=Restart.TEMPORARY))
        assert len(live_tasks()) > len(baseline) + 4
    assert sorted(live_tasks()) == baseline
    assert tree.paths() == []


async def test_body_exception_is_not_wrapped_in_a_group(autojump_clock):
    tree = ActorTree()
    with EventRecorder(tree) as rec:
        with pytest.raises(KeyError) as info:
            async with open_supervisor("root", tree=tree, children=[ChildSpec("a", echo)]):
                raise KeyError("mine")
    assert type(info.value) is KeyError
    assert events_of(rec, ActorCancelled, "root/a")
    assert "failed: KeyError" in rec.for_path("root")[-1].reason


async def test_supervisor_cancel_and_statistics(autojump_clock):
    tree = ActorTree()
    with EventRecorder(tree) as rec:
        async with open_supervisor("root", tree=tree, children=[ChildSpec("a", echo)]) as sup:
            stats = sup.statistics()
            assert (stats.children, stats.running, stats.child_ids) == (1, 1, ("a",))
            assert sup.started_value("a") is None
            sup.cancel("done here")
            await trio.sleep_forever()
    assert events_of(rec, ActorCancelled, "root/a")[0].reason == "done here"
    assert rec.for_path("root")[-1].reason == "cancelled: supervisor.cancel()"


async def test_injecting_into_a_subtree_restarts_it_whole(autojump_clock):
    tree = ActorTree()
    with EventRecorder(tree) as rec:
        mid = supervisor_spec("mid", [ChildSpec("leaf", echo)])
        async with open_supervisor("root", tree=tree, children=[mid]):
            inject_crash(tree, "root/mid", RuntimeError("subtree"))
            await rec.wait_for(is_(ActorRestarted, "root/mid"))
            assert (await tree.ref("root/mid/leaf").call("?", timeout=1)) == ("root/mid/leaf", 0)
            assert len(events_of(rec, ActorStarting, "root/mid/leaf")) == 2
            assert events_of(rec, ActorCancelled, "root/mid/leaf")


async def test_bad_input_is_rejected_clearly(autojump_clock):
    with pytest.raises(ValueError):
        ChildSpec("a/b", echo)
    with pytest.raises(ValueError):
        ChildSpec("", echo)
    with pytest.raises(ValueError):
        ChildSpec("a", echo, shutdown=-1)
    with pytest.raises(ValueError):
        async with open_supervisor("a/b"):
            pass
    with pytest.raises(ActorNotRunning):
        ActorTree().lookup("nope")
    async with open_supervisor("root") as sup:
        with pytest.raises(KeyError):
            await sup.stop_child("nope")
        assert math.isinf(supervisor_spec("s", []).shutdown)
    assert issubclass(SupervisorGaveUp, SupervisorError)


@pytest.mark.filterwarnings("ignore::trio.TrioDeprecationWarning")
def test_works_without_strict_exception_groups():
    async def main():
        with pytest.raises(KeyError):
            async with open_supervisor("root", children=[ChildSpec("a", echo)]):
                raise KeyError("mine")
        tree = ActorTree()
        with EventRecorder(tree) as rec:
            with trio.move_on_after(1):
                async with open_supervisor("root", tree=tree, children=[ChildSpec("a", echo)]):
                    await trio.sleep_forever()
        assert rec.paths(ActorStopped) == ["root/a", "root"]

    trio.run(
        main, clock=trio.testing.MockClock(autojump_threshold=0), strict_exception_groups=False
    )
