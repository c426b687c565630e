"""ActorRef, call, backpressure, per-sender order and the latest-value mailbox."""

import pytest
import trio

from actors import (
    LATEST,
    ActorNotRunning,
    ActorTree,
    Call,
    CallTimeout,
    ChildSpec,
    MessageReplaced,
    Restart,
    open_supervisor,
)
from actors.testing import inject_crash


def collector(seen):
    async def run(ctx, inbox, *, task_status):
        task_status.started()
        async for msg in inbox:
            if isinstance(msg, Call):
                msg.reply(list(seen))
            else:
                seen.append(msg)

    return run


async def test_message_order_per_sender_is_preserved(autojump_clock):
    seen = []
    async with open_supervisor(
        "root", children=[ChildSpec("sink", collector(seen), mailbox=4)]
    ) as sup:
        ref = sup.ref("sink")

        async def sender(name):
            for i in range(200):
                await ref.send((name, i))
                if i % 7 == 0:
                    await trio.lowlevel.checkpoint()  # interleave the senders

        async with trio.open_nursery() as n:
            for name in "abc":
                n.start_soon(sender, name)
        got = await ref.call("dump", timeout=10)
    assert len(got) == 600
    for name in "abc":
        assert [i for s, i in got if s == name] == list(range(200))
    # The senders really interleaved (otherwise the test proves nothing).
    assert [s for s, _ in got[:30]] != ["a"] * 30


async def test_send_waits_for_room_and_send_nowait_refuses(autojump_clock):
    release = trio.Event()

    async def slow(ctx, inbox, *, task_status):
        task_status.started()
        await release.wait()
        async for _ in inbox:
            pass

    async with open_supervisor("root", children=[ChildSpec("slow", slow, mailbox=2)]) as sup:
        ref = sup.ref("slow")
        ref.send_nowait(1)
        ref.send_nowait(2)
        with pytest.raises(trio.WouldBlock):
            ref.send_nowait(3)
        with trio.move_on_after(1) as cs:
            await ref.send(3)  # blocks: backpressure
        assert cs.cancelled_caught
        release.set()
        with trio.fail_after(1):
            await ref.send(3)


async def test_call_times_out_with_a_clear_error(autojump_clock):
    async def mute(ctx, inbox, *, task_status):
        task_status.started()
        async for _ in inbox:
            pass  # never answers

    async with open_supervisor("root", children=[ChildSpec("mute", mute)]) as sup:
        t0 = trio.current_time()
        with pytest.raises(CallTimeout, match="root/mute") as info:
            await sup.ref("mute").call("hello?", timeout=2.5)
        assert trio.current_time() - t0 == pytest.approx(2.5)
        assert isinstance(info.value, trio.TooSlowError)


async def test_call_reply_and_failure(autojump_clock):
    async def answerer(ctx, inbox, *, task_status):
        task_status.started()
        async for msg in inbox:
            if msg.request == "bad":
                msg.fail(KeyError("bad"))
            else:
                msg.reply(msg.request * 2)
                with pytest.raises(RuntimeError):
                    msg.reply(0)

    async with open_supervisor("root", children=[ChildSpec("x", answerer)]) as sup:
        assert await sup.ref("x").call(21, timeout=1) == 42
        with pytest.raises(KeyError):
            await sup.ref("x").call("bad", timeout=1)


async def test_pending_calls_fail_when_the_actor_dies(autojump_clock):
    tree = ActorTree()
    entered = trio.Event()

    async def stuck(ctx, inbox, *, task_status):
        task_status.started()
        entered.set()
        await trio.sleep_forever()

    spec = ChildSpec("stuck", stuck, restart=Restart.TEMPORARY)
    async with open_supervisor("root", tree=tree, children=[spec]) as sup:
        ref = sup.ref("stuck")
        await entered.wait()
        async with trio.open_nursery() as n:

            async def caller():
                with pytest.raises(ActorNotRunning):
                    await ref.call("x", timeout=100)

            n.start_soon(caller)
            await trio.testing.wait_all_tasks_blocked()
            t0 = trio.current_time()
            inject_crash(tree, "root/stuck", RuntimeError("boom"))
        assert trio.current_time() == t0  # failed at once, not at the timeout
        with pytest.raises(ActorNotRunning):
            await ref.send("after")
        assert not ref.alive


async def test_latest_value_mailbox_replaces_pending_message(autojump_clock):
    got = []
    go = trio.Event()

    async def voter(ctx, inbox, *, task_status):
        task_status.started()
        await go.wait()
        async for msg in inbox:
            if isinstance(msg, Call):
                msg.reply(list(got))
            else:
                got.append(msg)

    async with open_supervisor("root", children=[ChildSpec("v", voter, mailbox=LATEST)]) as sup:
        ref = sup.ref("v")
        for i in range(100):
            ref.send_nowait(i)  # never blocks, never WouldBlock
            await ref.send(i + 1000)
        go.set()
        await trio.testing.wait_all_tasks_blocked()
        assert got == [1099]


async def test_call_replaced_in_latest_mailbox_fails_instead_of_hanging(autojump_clock):
    go = trio.Event()
    got = []

    async def voter(ctx, inbox, *, task_status):
        task_status.started()
        await go.wait()
        async for msg in inbox:
            got.append(msg)

    async with open_supervisor("root", children=[ChildSpec("v", voter, mailbox=LATEST)]) as sup:
        ref = sup.ref("v")
        async with trio.open_nursery() as n:

            async def caller():
                t0 = trio.current_time()
                with pytest.raises(MessageReplaced):
                    await ref.call("first", timeout=10)
                assert trio.current_time() == t0

            n.start_soon(caller)
            await trio.testing.wait_all_tasks_blocked()
            ref.send_nowait("newer")
        go.set()
        await trio.testing.wait_all_tasks_blocked()
    assert got == ["newer"]


async def test_latest_mailbox_ends_on_stop_request(autojump_clock):
    stopped = trio.Event()

    async def actor(ctx, inbox, *, task_status):
        task_status.started()
        async for _ in inbox:
            pass
        assert ctx.stop_requested
        stopped.set()

    async with open_supervisor("root") as sup:
        await sup.start_child(ChildSpec("v", actor, mailbox=LATEST))
        t0 = trio.current_time()
        await sup.stop_child("v")
        assert stopped.is_set() and trio.current_time() == t0  # no grace needed


def test_bad_mailbox_size_is_rejected():
    async def nop(ctx, inbox, *, task_status):
        task_status.started()

    for bad in (-1, "huge", 1.5, True):
        with pytest.raises(ValueError):
            ChildSpec("x", nop, mailbox=bad)
