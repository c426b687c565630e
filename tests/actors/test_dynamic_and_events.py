"""Dynamic children under churn, the event stream's non-blocking delivery, the public face."""

import dataclasses

import pytest
import trio

import actors
from actors import (
    ActorCrashed,
    ActorStarted,
    ActorStopped,
    ActorTree,
    ChildSpec,
    EventBus,
    Restart,
    open_supervisor,
)
from actors.testing import EventRecorder, inject_crash, live_tasks

from .helpers import echo, stubborn


async def test_thousands_of_short_lived_children_do_not_leak(autojump_clock):
    tree = ActorTree()
    sub = tree.events.subscribe(max_buffer=100_000)
    baseline = len(live_tasks())
    n = 2000
    async with open_supervisor("client-port", tree=tree) as sup:
        peak = 0
        for i in range(n):
            ref = await sup.start_child(
                ChildSpec(f"conn-{i}", echo, restart=Restart.TEMPORARY, mailbox=4)
            )
            kind = i % 4
            if kind == 0:
                await ref.send("quit")  # the connection closed
            elif kind == 1:
                await ref.send("crash")  # a protocol error
            elif kind == 2:
                await sup.stop_child(f"conn-{i}")  # the server closed it
            # kind 3 stays open for a while
            if i % 100 == 99:
                await trio.testing.wait_all_tasks_blocked()
                peak = max(peak, len(sup.child_ids()))
                for cid in list(sup.child_ids()):
                    await sup.ref(cid).send("quit")
        await trio.testing.wait_all_tasks_blocked()
        assert sup.child_ids() == [] and tree.paths() == []
        assert len(live_tasks()) == baseline + 1  # only the supervisor's control task
        assert 0 < peak <= 100
    events = sub.drain()
    assert sub.dropped == 0
    assert sum(isinstance(e, ActorStarted) for e in events) == n + 1  # + the root
    assert sum(isinstance(e, ActorStopped) for e in events) == n + 1  # + the root
    assert sum(isinstance(e, ActorCrashed) for e in events) == n // 4
    assert len(live_tasks()) == baseline


async def test_events_never_block_actors_and_overflow_is_counted(autojump_clock):
    tree = ActorTree()
    slow_reader = tree.events.subscribe(max_buffer=10)  # never read during the run
    with EventRecorder(tree) as rec:
        async with open_supervisor("root", tree=tree) as sup:
            with trio.fail_after(5):  # clock time; would trip if publishing ever waited
                for i in range(50):
                    await sup.start_child(ChildSpec(f"c{i}", echo, restart=Restart.TEMPORARY))
                    await sup.stop_child(f"c{i}")
        total = len(rec.events)
    assert total > 200
    assert len(slow_reader.drain()) == 10
    assert slow_reader.dropped == total - 10
    slow_reader.close()
    assert not tree.events.active or tree.events._subscribers == (rec._sub,)


async def test_subscription_is_an_async_iterator(autojump_clock):
    bus = EventBus()
    sub = bus.subscribe()
    got = []

    async def reader():
        async for event in sub:
            got.append(event.path)

    async with trio.open_nursery() as n:
        n.start_soon(reader)
        tree = ActorTree(bus)
        async with open_supervisor("r", tree=tree) as sup:
            await sup.start_child(ChildSpec("x", echo))
        await trio.testing.wait_all_tasks_blocked()
        sub.close()
    assert got[0] == "r" and got[-1] == "r" and "r/x" in got
    with pytest.raises(ValueError):
        bus.subscribe(0)


async def test_events_are_frozen_slotted_and_timestamped(autojump_clock):
    tree = ActorTree()
    with EventRecorder(tree) as rec:
        async with open_supervisor("root", tree=tree, children=[ChildSpec("a", echo)]):
            autojump_clock.jump(7)
            inject_crash(tree, "root/a", RuntimeError("x"))
            await rec.wait_for(lambda e: isinstance(e, actors.ActorRestarted))
    events = rec.events
    assert [e.time for e in events] == sorted(e.time for e in events)
    assert rec.of_type(ActorCrashed)[0].time == pytest.approx(7)
    for e in events:
        assert isinstance(e, actors.LifecycleEvent)
        assert not hasattr(e, "__dict__")
        with pytest.raises(dataclasses.FrozenInstanceError):
            e.path = "elsewhere"


def test_public_api_is_explicit_and_complete():
    exported = set(actors.__all__)
    assert len(exported) == len(actors.__all__)
    for name in exported:
        obj = getattr(actors, name)
        if isinstance(obj, type) or callable(obj):
            assert obj.__doc__, f"{name} has no docstring"
    public_in_namespace = {n for n in vars(actors) if not n.startswith("_")}
    # Everything public in the namespace is exported, except the testing submodule.
    assert public_in_namespace - exported <= {"testing"}
    for name in exported:
        module = getattr(getattr(actors, name), "__module__", "actors")
        assert module == "actors" or module.startswith("actors._") or module == "enum"
    assert {"open_supervisor", "ChildSpec", "ActorRef", "SupervisorGaveUp"} <= exported


async def test_stubborn_dynamic_children_share_one_grace(autojump_clock):
    async with open_supervisor("root") as sup:
        for i in range(100):
            await sup.start_child(
                ChildSpec(f"s{i}", stubborn, shutdown=4, restart=Restart.TEMPORARY)
            )
        t0 = trio.current_time()
    assert trio.current_time() - t0 == pytest.approx(4)


def test_packaging_version_typed_marker_and_constant_aliases():
    import pathlib
    import re

    assert re.fullmatch(r"\d+\.\d+\.\d+", actors.__version__)
    assert (pathlib.Path(actors.__file__).parent / "py.typed").is_file()
    # One spelling (the enum member); the bare names left are the very same objects.
    assert actors.TEMPORARY is actors.Restart.TEMPORARY
    assert actors.ONE_FOR_ONE is actors.Strategy.ONE_FOR_ONE
    assert actors.ONE_FOR_ALL is actors.Strategy.ONE_FOR_ALL
    assert actors.REST_FOR_ONE is actors.Strategy.REST_FOR_ONE
    assert not hasattr(actors, "PERMANENT") and not hasattr(actors, "TRANSIENT")
