"""Significant children and auto_shutdown (OTP's ``significant`` flag and ``auto_shutdown``).

A significant child that ends on its own and is not restarted shuts its
supervisor down (any_significant), or the last one does (all_significant); a
stop that was asked for never does.  No sleeps: events and the autojump clock.
"""

import pytest
import trio

from actors import (
    ActorCrashed,
    ActorGaveUp,
    ActorRestarted,
    ActorStarting,
    ActorStopped,
    ActorStopping,
    ActorTree,
    AutoShutdown,
    ChildSpec,
    Restart,
    Strategy,
    SupervisorAutoShutdown,
    SupervisorError,
    SupervisorGaveUp,
    auto_shutdown_due,
    open_supervisor,
    supervisor_spec,
)
from actors.testing import EventRecorder, inject_cancel, inject_crash, live_tasks

from .helpers import echo, events_of, stubborn

ANY = AutoShutdown.ANY_SIGNIFICANT
ALL = AutoShutdown.ALL_SIGNIFICANT
TEMP, TRANS = Restart.TEMPORARY, Restart.TRANSIENT


def is_(kind, path):
    return lambda e: isinstance(e, kind) and e.path == path


def sig(cid, restart=TEMP, start=echo, **kw):
    return ChildSpec(cid, start, restart=restart, significant=True, **kw)


async def quitter(ctx, inbox, *, task_status):
    """Ready, then returns at once (a significant job that is done)."""
    task_status.started()


async def block_forever():
    """The typical body (``await something.wait()``); fails fast, in clock time, if never unblocked."""
    with trio.fail_after(1000):
        await trio.Event().wait()


async def seen(rec, match, count=1):
    """Wait (bounded, in clock time) until ``count`` recorded events match."""
    with trio.fail_after(1000):
        return await rec.wait_for_count(match, count)


async def ask(tree, path):
    return await tree.ref(path).call("?", timeout=1)


# -- the policy, as pure data ---------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "left", "due"),
    [
        (AutoShutdown.NEVER, 0, False),
        (AutoShutdown.NEVER, 3, False),
        (ANY, 0, True),
        (ANY, 2, True),
        (ALL, 0, True),
        (ALL, 1, False),
    ],
)
def test_auto_shutdown_due(policy, left, due):
    assert auto_shutdown_due(policy, left) is due


# -- spec errors ---------------------------------------------------------------------


def test_a_permanent_significant_child_is_a_spec_error():
    with pytest.raises(ValueError, match="TRANSIENT or TEMPORARY"):
        ChildSpec("s", echo, significant=True)
    with pytest.raises(ValueError, match="TRANSIENT or TEMPORARY"):
        supervisor_spec("sub", [], significant=True, auto_shutdown=ANY)
    assert ChildSpec("s", echo, restart=TRANS, significant=True).significant


async def test_significant_children_need_an_auto_shutdown_policy(autojump_clock):
    tree = ActorTree()
    with EventRecorder(tree) as rec:
        with pytest.raises(ValueError, match="auto_shutdown=NEVER"):
            async with open_supervisor(
                "root", tree=tree, children=[ChildSpec("a", echo), sig("s")]
            ):
                pytest.fail("the body must not run")
        assert rec.events == []  # rejected before anything started
        with pytest.raises(ValueError, match="auto_shutdown is NEVER"):
            supervisor_spec("sub", [sig("s")])
        async with open_supervisor("root", tree=tree) as sup:
            with pytest.raises(ValueError, match="auto_shutdown=NEVER"):
                await sup.start_child(sig("s"))
            assert sup.child_ids() == []


# -- any_significant ---------------------------------------------------------------


async def end_by_quit(tree, path):
    await tree.ref(path).send("quit")


async def end_by_crash(tree, path):
    await tree.ref(path).send("crash")


async def end_by_injected_cancel(tree, path):
    inject_cancel(tree, path, "chaos monkey")


@pytest.mark.parametrize(
    ("end", "crashed", "cancelled", "why"),
    [
        (end_by_quit, False, False, "returned"),
        (end_by_crash, True, False, "crashed: RuntimeError('root/s asked to crash')"),
        (end_by_injected_cancel, False, True, "cancelled by actors.testing: chaos monkey"),
    ],
)
async def test_any_significant_temporary_child_ending_shuts_the_supervisor_down(
    autojump_clock, end, crashed, cancelled, why
):
    baseline = sorted(live_tasks())
    tree = ActorTree()
    reached_after_wait = False
    with EventRecorder(tree) as rec:
        specs = [ChildSpec("a", echo), sig("s"), ChildSpec("b", echo), ChildSpec("c", echo)]
        async with open_supervisor("root", tree=tree, children=specs, auto_shutdown=ANY) as sup:
            rec.clear()
            await end(tree, "root/s")
            await block_forever()  # unblocked by the shutdown
            reached_after_wait = True
        await trio.lowlevel.checkpoint()  # no stray cancellation leaks out of the block
    assert not reached_after_wait
    reason = f"auto_shutdown: significant child 'root/s' exited ({why})"
    cause = sup.auto_shutdown_cause
    assert (cause.id, cause.path, cause.reason) == ("s", "root/s", why)
    assert (cause.crashed, cause.cancelled, cause.requested) == (crashed, cancelled, False)
    assert cause.abnormal is (crashed or cancelled)
    if crashed:
        assert isinstance(cause.exc, RuntimeError)
        assert events_of(rec, ActorCrashed, "root/s")[0].exc is cause.exc
    else:
        assert cause.exc is None
    assert sup.auto_shutdown_reason == reason
    # One event, after the child's stop and before any sibling is asked to stop.
    (auto,) = rec.of_type(SupervisorAutoShutdown)
    assert (auto.path, auto.child, auto.reason) == ("root", "root/s", reason)
    kinds = [(type(e).__name__, e.path) for e in rec.events]
    assert kinds.index(("ActorStopped", "root/s")) < kinds.index(("SupervisorAutoShutdown", "root"))
    assert kinds.index(("SupervisorAutoShutdown", "root")) < kinds.index(
        ("ActorStopping", "root/c")
    )
    # The others stop gracefully, in reverse start order, told why.
    stopping = rec.of_type(ActorStopping)
    assert [e.path for e in stopping] == ["root/c", "root/b", "root/a"]
    assert {e.reason for e in stopping} == {reason}
    for path in ("root/c", "root/b", "root/a"):
        assert events_of(rec, ActorStopped, path)[0].reason == f"stop requested: {reason}"
    assert events_of(rec, ActorStopped, "root")[0].reason == reason
    assert rec.of_type(ActorRestarted) == [] and rec.of_type(ActorGaveUp) == []
    assert tree.paths() == [] and sup.child_ids() == []
    assert sorted(live_tasks()) == baseline


async def test_static_children_still_start_when_a_significant_one_ends_during_start_up(
    autojump_clock,
):
    tree = ActorTree()
    with EventRecorder(tree) as rec:
        specs = [sig("job", start=quitter), ChildSpec("a", echo), ChildSpec("b", echo)]
        async with open_supervisor("root", tree=tree, children=specs, auto_shutdown=ANY) as sup:
            await block_forever()
    assert sup.auto_shutdown_cause.path == "root/job"
    assert rec.paths(ActorStarting) == ["root", "root/job", "root/a", "root/b"]
    assert rec.paths(ActorStopping) == ["root/b", "root/a"]


async def test_dynamic_significant_child(autojump_clock):
    tree = ActorTree()
    with EventRecorder(tree) as rec:
        async with open_supervisor(
            "root", tree=tree, children=[ChildSpec("a", echo)], auto_shutdown=ANY
        ) as sup:
            await sup.start_child(ChildSpec("conn", echo, restart=TEMP))  # not significant
            await sup.start_child(sig("job"))
            await tree.ref("root/conn").send("quit")
            await seen(rec, is_(ActorStopped, "root/conn"))
            assert sup.auto_shutdown_cause is None
            await tree.ref("root/job").send("quit")
            await block_forever()
    assert sup.auto_shutdown_cause.path == "root/job"
    assert rec.paths(ActorStopping) == ["root/a"]


# -- transient significant children: crash restarts, normal exit shuts down ----------


async def test_transient_significant_child_is_restarted_after_a_crash_then_shuts_down(
    autojump_clock,
):
    tree = ActorTree()
    with EventRecorder(tree) as rec:
        specs = [ChildSpec("a", echo), sig("t", restart=TRANS)]
        async with open_supervisor("root", tree=tree, children=specs, auto_shutdown=ANY) as sup:
            await tree.ref("root/t").send("crash")
            await seen(rec, is_(ActorRestarted, "root/t"))
            inject_cancel(tree, "root/t", "unasked")  # abnormal too: restarted
            await seen(rec, is_(ActorRestarted, "root/t"), 2)
            assert sup.auto_shutdown_cause is None and rec.of_type(SupervisorAutoShutdown) == []
            assert await ask(tree, "root/t") == ("root/t", 2)
            await tree.ref("root/t").send("quit")
            await block_forever()
    cause = sup.auto_shutdown_cause
    assert (cause.path, cause.reason, cause.crashed) == ("root/t", "returned", False)
    assert rec.paths(ActorStopping) == ["root/a"]


async def test_exhausted_intensity_still_gives_up(autojump_clock):
    tree = ActorTree()
    with EventRecorder(tree) as rec:
        specs = [ChildSpec("a", echo), sig("t", restart=TRANS)]
        with pytest.raises(SupervisorGaveUp) as info:
            async with open_supervisor(
                "root", tree=tree, children=specs, auto_shutdown=ANY, max_restarts=1
            ) as sup:
                await tree.ref("root/t").send("crash")
                await seen(rec, is_(ActorRestarted, "root/t"))
                await tree.ref("root/t").send("crash")
                await block_forever()
    assert info.value.child == "root/t"
    assert sup.auto_shutdown_cause is None
    assert rec.of_type(SupervisorAutoShutdown) == []
    assert [e.path for e in rec.of_type(ActorGaveUp)] == ["root"]


# -- requested stops never trigger ------------------------------------------------------


async def test_stop_child_of_a_significant_child_does_not_shut_down(autojump_clock):
    tree = ActorTree()
    with EventRecorder(tree) as rec:
        specs = [ChildSpec("a", echo), sig("s"), sig("t", restart=TRANS, start=stubborn)]
        async with open_supervisor("root", tree=tree, children=specs, auto_shutdown=ANY) as sup:
            await sup.stop_child("s", reason="done with it")
            await sup.stop_child("t", reason="done too")  # ends by the grace's cancel
            assert sup.child_ids() == ["a"]
            assert await ask(tree, "root/a") == ("root/a", 0)  # still serving
        assert sup.auto_shutdown_cause is None
        assert rec.of_type(SupervisorAutoShutdown) == []
        assert events_of(rec, ActorStopped, "root")[0].reason == (
            "stop requested: supervisor block exited"
        )


async def test_significant_children_stopped_by_a_restart_or_a_shutdown_do_not_trigger(
    autojump_clock,
):
    tree = ActorTree()
    with EventRecorder(tree) as rec:
        specs = [sig("s"), ChildSpec("a", echo), sig("t", restart=TRANS)]
        async with open_supervisor(
            "root", tree=tree, children=specs, strategy=Strategy.ONE_FOR_ALL, auto_shutdown=ANY
        ) as sup:
            await tree.ref("root/a").send(
                "crash"
            )  # s (temporary) stopped and forgotten, t restarted
            await seen(rec, is_(ActorRestarted, "root/t"))
            assert sup.child_ids() == ["a", "t"]
            assert sup.auto_shutdown_cause is None
        # ... and the block's own shutdown stops t: a requested stop too.
    assert sup.auto_shutdown_cause is None
    assert rec.of_type(SupervisorAutoShutdown) == []


async def test_a_parent_stopping_a_subtree_does_not_trigger_it(autojump_clock):
    tree = ActorTree()
    with EventRecorder(tree) as rec:
        sub = supervisor_spec(
            "sub", [sig("w"), ChildSpec("x", echo)], auto_shutdown=ANY, restart=TRANS
        )
        async with open_supervisor("root", tree=tree, children=[ChildSpec("a", echo), sub]) as sup:
            inner = sup.started_value("sub")
            await sup.stop_child("sub", reason="role change")
            assert inner.auto_shutdown_cause is None
    assert rec.of_type(SupervisorAutoShutdown) == []
    assert events_of(rec, ActorStopping, "root/sub/w")[0].reason == "supervisor block exited"


# -- all_significant -------------------------------------------------------------------


async def test_all_significant_waits_for_the_last_one(autojump_clock):
    tree = ActorTree()
    with EventRecorder(tree) as rec:
        specs = [ChildSpec("a", echo), sig("s1"), sig("s2", restart=TRANS), sig("s3")]
        async with open_supervisor("root", tree=tree, children=specs, auto_shutdown=ALL) as sup:
            await tree.ref("root/s1").send("crash")  # temporary: gone, not the last
            await seen(rec, is_(ActorStopped, "root/s1"))
            await sup.stop_child("s3")  # requested: gone, no trigger
            await tree.ref("root/s2").send("crash")  # transient crash: restarted, still counts
            await seen(rec, is_(ActorRestarted, "root/s2"))
            assert sup.auto_shutdown_cause is None and rec.of_type(SupervisorAutoShutdown) == []
            assert sup.child_ids() == ["a", "s2"]
            await tree.ref("root/s2").send("quit")  # the last significant child ends
            await block_forever()
    reason = (
        "auto_shutdown: significant child 'root/s2' exited (returned); no significant child left"
    )
    assert sup.auto_shutdown_reason == reason
    assert [(e.child, e.reason) for e in rec.of_type(SupervisorAutoShutdown)] == [
        ("root/s2", reason)
    ]
    assert events_of(rec, ActorStopping, "root/a")[-1].reason == reason


async def test_all_significant_whose_last_one_is_stopped_by_request_keeps_running(autojump_clock):
    tree = ActorTree()
    specs = [ChildSpec("a", echo), sig("s1"), sig("s2")]
    async with open_supervisor("root", tree=tree, children=specs, auto_shutdown=ALL) as sup:
        await sup.stop_child("s1")
        await sup.stop_child("s2")
        assert await ask(tree, "root/a") == ("root/a", 0)
    assert sup.auto_shutdown_cause is None


# -- nested supervisors ---------------------------------------------------------------


async def test_a_significant_subtree_cascades(autojump_clock):
    tree = ActorTree()
    with EventRecorder(tree) as rec:
        sub = supervisor_spec(
            "sub",
            [ChildSpec("x", echo), sig("w")],
            auto_shutdown=ANY,
            restart=TRANS,
            significant=True,
        )
        specs = [ChildSpec("a", echo), sub, ChildSpec("b", echo)]
        async with open_supervisor("root", tree=tree, children=specs, auto_shutdown=ANY) as sup:
            inner = sup.started_value("sub")
            await tree.ref("root/sub/w").send("quit")
            await block_forever()
    assert inner.auto_shutdown_cause.path == "root/sub/w"
    cause = sup.auto_shutdown_cause
    assert (cause.path, cause.reason, cause.crashed) == ("root/sub", "returned", False)
    autos = rec.of_type(SupervisorAutoShutdown)
    assert [(e.path, e.child) for e in autos] == [("root/sub", "root/sub/w"), ("root", "root/sub")]
    assert rec.paths(ActorStopping) == ["root/sub/x", "root/b", "root/a"]
    assert tree.paths() == []


async def test_a_subtree_that_shuts_down_is_a_normal_exit_for_its_parent(autojump_clock):
    tree = ActorTree()
    with EventRecorder(tree) as rec:
        transient = supervisor_spec("t", [sig("w")], auto_shutdown=ANY, restart=TRANS)
        permanent = supervisor_spec("p", [sig("w")], auto_shutdown=ANY)
        async with open_supervisor("root", tree=tree, children=[transient, permanent]) as sup:
            await tree.ref("root/t/w").send("quit")
            await tree.ref("root/p/w").send("quit")
            await seen(rec, is_(ActorRestarted, "root/p"))  # permanent: always restarted
            await seen(rec, is_(ActorStopped, "root/t"))
            assert sup.child_ids() == ["p"]  # transient, ended normally: forgotten
            assert events_of(rec, ActorStopped, "root/t")[0].reason == "returned"
            assert await ask(tree, "root/p/w") == ("root/p/w", 0)
    assert sup.auto_shutdown_cause is None


async def test_a_pipeline_that_gives_up_shuts_the_root_down(autojump_clock):
    """The server's shape: a one_for_all, intensity-0 pipeline as a significant temporary child."""
    tree = ActorTree()
    with EventRecorder(tree) as rec:
        pipeline = supervisor_spec(
            "pipeline",
            [ChildSpec("prep", echo), ChildSpec("sync", echo), ChildSpec("final", echo)],
            strategy=Strategy.ONE_FOR_ALL,
            max_restarts=0,
            restart=TEMP,
            significant=True,
        )
        specs = [sig("storage", start=stubborn, shutdown=1), pipeline, ChildSpec("port", echo)]
        async with open_supervisor(
            "server", tree=tree, children=specs, strategy=Strategy.REST_FOR_ONE, auto_shutdown=ANY
        ) as sup:
            inject_crash(tree, "server/pipeline/sync", OSError("disk full"))
            await block_forever()
    cause = sup.auto_shutdown_cause
    assert cause.path == "server/pipeline" and cause.crashed
    assert isinstance(cause.exc, SupervisorGaveUp) and cause.exc.child == "server/pipeline/sync"
    assert isinstance(cause.exc.__cause__, OSError)
    assert rec.paths(ActorGaveUp) == ["server/pipeline"]
    assert rec.paths(ActorStopping)[-2:] == ["server/port", "server/storage"]
    assert events_of(rec, ActorStopped, "server")[0].reason.startswith(
        "auto_shutdown: significant child 'server/pipeline' exited (crashed: SupervisorGaveUp("
    )


async def test_no_dynamic_child_starts_once_an_auto_shutdown_is_due(autojump_clock):
    tree = ActorTree()
    with EventRecorder(tree) as rec:
        specs = [ChildSpec("slow", stubborn, shutdown=3), sig("s")]
        async with open_supervisor("root", tree=tree, children=specs, auto_shutdown=ANY) as sup:
            await tree.ref("root/s").send("quit")
            await seen(rec, is_(SupervisorAutoShutdown, "root"))
            with pytest.raises(SupervisorError, match="shutting down"):
                await sup.start_child(ChildSpec("late", echo))
            await block_forever()
    assert "root/late" not in {e.path for e in rec.events}


async def test_a_restart_under_way_is_abandoned_once_an_auto_shutdown_is_due(autojump_clock):
    """The shutdown that was due first wins: a restart failing afterwards cannot make it give up."""
    tree = ActorTree()
    gate = trio.Event()

    async def flaky(ctx, inbox, *, task_status):
        if ctx.incarnation > 0:
            await gate.wait()
            raise RuntimeError("restart failed")
        task_status.started()
        async for _ in inbox:
            pass

    with EventRecorder(tree) as rec:
        specs = [sig("s"), ChildSpec("a", echo), ChildSpec("b", flaky)]
        async with open_supervisor(
            "root",
            tree=tree,
            children=specs,
            strategy=Strategy.REST_FOR_ONE,
            max_restarts=1,
            auto_shutdown=ANY,
        ) as sup:
            await tree.ref("root/a").send("crash")  # restart 1 of 1: a, then b (held at the gate)
            await seen(rec, is_(ActorStarting, "root/b"), 2)
            await tree.ref("root/s").send("quit")
            await seen(rec, is_(SupervisorAutoShutdown, "root"))
            gate.set()  # b's restart fails: would be restart 2 of 1, a give-up
            await block_forever()
    assert sup.auto_shutdown_cause.path == "root/s"
    assert rec.of_type(ActorGaveUp) == []
    assert tree.paths() == []


async def test_an_actor_reads_why_it_was_asked_to_stop(autojump_clock):
    seen = []

    async def quiet(ctx, inbox, *, task_status):
        task_status.started()
        assert ctx.stop_reason is None
        await ctx.wait_stop_requested()
        seen.append(ctx.stop_reason)

    async with open_supervisor("root", children=[ChildSpec("a", quiet, mailbox=0)]) as sup:
        await sup.stop_child("a", reason="role change")
    assert seen == ["role change"]
