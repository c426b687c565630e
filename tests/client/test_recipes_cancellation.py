"""Recipes, cancellation (no orphan znodes, no leaked tasks) and session expiry, on both servers."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from tests.client.helpers import expire_session, task_tree_size
from trio_quorum.client import Client, NoNodeError, SessionExpiredError, SessionState, open_client

BOUND = 20.0


async def wait_children(zk: Client, path: str, n: int) -> list[str]:
    """Wait (on a children watch, bounded) until ``path`` has ``n`` children."""
    with trio.fail_after(BOUND):
        while True:
            try:
                kids, w = await zk.get_children_and_watch(path)
            except NoNodeError:
                _, w2 = await zk.exists_and_watch(path)
                await w2.wait()
                continue
            if len(kids) == n:
                w.cancel()
                return kids
            await w.wait()


async def test_lock_layout_and_mutual_exclusion(hosts: str) -> None:
    async with open_client(hosts) as a, open_client(hosts) as b:
        order: list[str] = []
        async with a.lock("/locks/x", "A") as la:
            kids = await a.get_children("/locks/x")
            assert len(kids) == 1 and "__lock__" in kids[0] and kids[0] == la.node

            async def contender() -> None:
                async with b.lock("/locks/x", "B"):
                    order.append("B")

            async with trio.open_nursery() as n:
                n.start_soon(contender)
                await wait_children(a, "/locks/x", 2)
                assert await a.lock("/locks/x").contenders() == ["A", "B"]
                order.append("A")
                await la.release()
        assert order == ["A", "B"]
        assert await a.get_children("/locks/x") == []


async def test_cancel_lock_waiter_leaves_no_znode(hosts: str) -> None:
    async with open_client(hosts) as a, open_client(hosts) as b:
        async with a.lock("/locks/y"):
            with trio.CancelScope() as cs:
                async def cancel_when_queued() -> None:
                    await wait_children(a, "/locks/y", 2)
                    cs.cancel()

                async with trio.open_nursery() as n:
                    n.start_soon(cancel_when_queued)
                    async with b.lock("/locks/y"):
                        pytest.fail("acquired a held lock")
            assert cs.cancelled_caught
            assert len(await a.get_children("/locks/y")) == 1
        assert await a.get_children("/locks/y") == []
        assert b._core.watch_count() == 0


async def test_cancel_lock_with_create_in_flight_leaves_no_znode(hosts: str) -> None:
    async with open_client(hosts) as a, open_client(hosts) as b:
        await a.create("/locks")
        async with a.lock("/locks/z"):
            for _ in range(5):
                with trio.CancelScope() as cs:
                    cs.cancel()  # the create is sent (writes are shielded), its reply abandoned
                    await b.lock("/locks/z").acquire()
                assert cs.cancelled_caught
            assert len(await a.get_children("/locks/z")) == 1


async def test_cancel_request_in_flight_keeps_the_session_usable(hosts: str) -> None:
    async with open_client(hosts) as zk:
        await zk.create("/f", b"v")
        for _ in range(50):
            with trio.CancelScope() as cs:
                cs.cancel()
                await zk.get("/f")
        assert (await zk.get("/f"))[0] == b"v"  # the abandoned replies were matched and dropped
        assert not zk._core.pending


async def test_cancel_election_candidate_and_watch(hosts: str) -> None:
    async with open_client(hosts) as a, open_client(hosts) as b:
        led = trio.Event()
        release = trio.Event()

        async def lead() -> str:
            led.set()
            await release.wait()
            return "done"

        async with trio.open_nursery() as n:
            n.start_soon(a.election("/el", "a").run, lead)
            with trio.fail_after(BOUND):
                await led.wait()
            with trio.CancelScope() as cs:
                async def cancel_when_queued() -> None:
                    await wait_children(a, "/el", 2)
                    assert await a.election("/el").contenders() == ["a", "b"]
                    cs.cancel()

                n.start_soon(cancel_when_queued)
                await b.election("/el", "b").run(lead)
            assert len(await a.get_children("/el")) == 1
            with trio.CancelScope() as ws:
                ws.cancel()
                async for _ in b.watch_data("/el"):
                    pytest.fail("cancelled before the first value")
            assert b._core.watch_count() == 0
            release.set()
        assert await a.get_children("/el") == []


async def test_counter_barrier_double_barrier_semaphore(hosts: str) -> None:
    async with open_client(hosts) as zk, open_client(hosts) as other:
        c = zk.counter("/cnt")
        async with trio.open_nursery() as n:
            for _ in range(10):
                n.start_soon(c.add, 1)
                n.start_soon(other.counter("/cnt").add, 2)
        assert await c.get() == 30

        bar = zk.barrier("/bar")
        await bar.create()
        passed = trio.Event()

        async def through() -> None:
            await other.barrier("/bar").wait()
            passed.set()

        async with trio.open_nursery() as n:
            n.start_soon(through)
            await trio.testing.wait_all_tasks_blocked()
            assert not passed.is_set()
            assert await bar.remove()
        assert passed.is_set()

        entered: list[str] = []
        async with trio.open_nursery() as n:
            async def member(cl: Client, name: str) -> None:
                async with cl.double_barrier("/db", 2, name):
                    entered.append(name)
            n.start_soon(member, zk, "one")
            n.start_soon(member, other, "two")
        assert sorted(entered) == ["one", "two"]
        assert await zk.get_children("/db") == []

        holders = 0
        peak = 0

        async def lease(cl: Client) -> None:
            nonlocal holders, peak
            async with cl.semaphore("/sem", max_leases=2):
                holders += 1
                peak = max(peak, holders)
                await cl.sync("/")
                holders -= 1

        async with trio.open_nursery() as n:
            for i in range(6):
                n.start_soon(lease, zk if i % 2 else other)
        assert peak <= 2 and await zk.get_children("/sem") == []


async def test_no_task_outlives_the_block(hosts: str) -> None:
    before = task_tree_size()
    async with open_client(hosts) as zk:
        async with zk.add_watch("/"):
            assert task_tree_size() > before
    assert task_tree_size() == before
    assert zk.state is SessionState.CLOSED


async def test_session_expiry_raises_out_of_the_block(hosts: str) -> None:
    reached = False
    states: list[SessionState] = []
    with pytest.raises(SessionExpiredError):
        async with open_client(hosts) as zk, open_client(hosts) as observer:
            await zk.create("/eph", ephemeral=True)
            _, _, w = await zk.get_and_watch("/eph")

            async def follow() -> None:
                async for st in zk.session_states():
                    states.append(st)

            async with trio.open_nursery() as n:
                n.start_soon(follow)
                await expire_session(zk)
                with trio.fail_after(BOUND):
                    _, gone = await observer.exists_and_watch("/eph")
                    if await observer.exists("/eph") is not None:
                        await gone.wait()
                    with pytest.raises(SessionExpiredError):
                        await w.wait()
                await trio.sleep_forever()  # cancelled by the expiry
            reached = True
    assert not reached
    assert states[0] is SessionState.CONNECTED and states[-1] is SessionState.EXPIRED
