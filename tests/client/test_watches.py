"""Watches as async iterators and one-shot Watch objects, against both servers."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_quorum.client import (
    AddWatchMode,
    ChildrenEvent,
    DataEvent,
    EventType,
    NoNodeError,
    NoWatcherError,
    WatchedEvent,
    WatcherType,
    open_client,
)

BOUND = 20.0


async def test_one_shot_watches_fire_once(hosts: str) -> None:
    async with open_client(hosts) as zk:
        await zk.create("/w", b"0")
        _, _, wd = await zk.get_and_watch("/w")
        kids, wc = await zk.get_children_and_watch("/w")
        stat, we = await zk.exists_and_watch("/w/new")
        assert kids == [] and stat is None
        await zk.create("/w/new")
        await zk.set("/w", b"1")
        with trio.fail_after(BOUND):
            assert (await wc.wait()) == WatchedEvent(EventType.NodeChildrenChanged, wc_state(), "/w")
            assert (await we.wait()).type is EventType.NodeCreated
            assert (await wd.wait()).type is EventType.NodeDataChanged
        await zk.set("/w", b"2")  # no watch left: nothing is delivered (nothing registered either)
        assert zk._core.watch_count() == 0


def wc_state():  # type: ignore[no-untyped-def]
    from trio_quorum.client import KeeperState

    return KeeperState.SyncConnected


async def test_watch_data_iterates_changes_and_deletion(hosts: str) -> None:
    async with open_client(hosts) as zk:
        seen: list[DataEvent] = []
        step = trio.Event()

        async def follow() -> None:
            async for ev in zk.watch_data("/d"):
                seen.append(ev)
                step.set()

        async with trio.open_nursery() as n:
            n.start_soon(follow)
            for action in (lambda: zk.create("/d", b"a"), lambda: zk.set("/d", b"b"), lambda: zk.delete("/d")):
                with trio.fail_after(BOUND):
                    await step.wait()
                step = trio.Event()
                await action()
            with trio.fail_after(BOUND):
                await step.wait()
            n.cancel_scope.cancel()
        assert [(e.data, e.event and e.event.type) for e in seen] == [
            (None, None), (b"a", EventType.NodeCreated), (b"b", EventType.NodeDataChanged),
            (None, EventType.NodeDeleted)]
        assert zk._core.watch_count() == 0  # the cancelled iterator left nothing registered


async def test_watch_children_ends_on_delete(hosts: str) -> None:
    async with open_client(hosts) as zk:
        with pytest.raises(NoNodeError):
            async for _ in zk.watch_children("/none"):
                pass
        await zk.create("/c")
        seen: list[ChildrenEvent] = []
        step = trio.Event()

        async def follow() -> None:
            async for ev in zk.watch_children("/c"):
                seen.append(ev)
                step.set()

        async with trio.open_nursery() as n:
            n.start_soon(follow)
            for action in (lambda: zk.create("/c/x"), lambda: zk.delete("/c/x"), lambda: zk.delete("/c")):
                with trio.fail_after(BOUND):
                    await step.wait()
                step = trio.Event()
                await action()
        assert [sorted(e.children) for e in seen] == [[], ["x"], []]


async def test_persistent_and_recursive_watches(hosts: str) -> None:
    async with open_client(hosts) as zk:
        await zk.create("/r")
        got: list[tuple[str, WatchedEvent]] = []
        async with zk.add_watch("/r", AddWatchMode.PERSISTENT_RECURSIVE) as rec, \
                zk.add_watch("/r/a") as flat:  # not "/r" too: 3.8 keeps one mode per path (ZOOKEEPER-4466)
            async def drain(name: str, it: object) -> None:
                async for ev in it:  # type: ignore[attr-defined]
                    got.append((name, ev))

            async with trio.open_nursery() as n:
                n.start_soon(drain, "rec", rec)
                n.start_soon(drain, "flat", flat)
                await zk.create("/r/a")
                await zk.create("/r/a/b")
                await zk.set("/r", b"1")
                await zk.set("/r/a/b", b"1")
                await zk.sync("/r")
                with trio.fail_after(BOUND):
                    while len(got) < 6:
                        await trio.testing.wait_all_tasks_blocked()
                        if len(got) < 6:
                            await zk.sync("/r")
                n.cancel_scope.cancel()
        rec_events = [(e.type, e.path) for name, e in got if name == "rec"]
        flat_events = [(e.type, e.path) for name, e in got if name == "flat"]
        assert rec_events == [(EventType.NodeCreated, "/r/a"), (EventType.NodeCreated, "/r/a/b"),
                              (EventType.NodeDataChanged, "/r"), (EventType.NodeDataChanged, "/r/a/b")]
        assert flat_events == [(EventType.NodeCreated, "/r/a"), (EventType.NodeChildrenChanged, "/r/a")]
        assert zk._core.watch_count() == 0
        # the server forgot them too: removing again finds nothing
        with pytest.raises(NoWatcherError):
            await zk.remove_watches("/r", WatcherType.Any)  # (3.8 refuses the persistent types here)


async def test_remove_watches_ends_the_watch(hosts: str) -> None:
    async with open_client(hosts) as zk:
        await zk.create("/rm")
        _, _, w = await zk.get_and_watch("/rm")
        await zk.remove_watches("/rm", WatcherType.Data)
        assert zk._core.watch_count() == 0
        from trio_quorum.client import ClientClosedError

        with pytest.raises(ClientClosedError):
            await w.wait()
