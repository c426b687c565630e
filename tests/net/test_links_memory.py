"""PeerLinks over the in-memory network, whole ensembles under MockClock (autojump)."""

from __future__ import annotations

import dataclasses
import logging
import random

import pytest
import trio

from trio_quorum.net import (
    Backoff,
    Batch,
    LinkDown,
    LinkInfo,
    LinkUp,
    MemoryNetwork,
    open_peer_links,
)
from trio_quorum.quorum import wire
from trio_quorum.quorum.wire import Channel, Hello, Reject

from .helpers import CAT, CONFIG, Packet, Vote, address, ensemble, wait_all_up

Q, E = Channel.QUORUM, Channel.ELECTION


async def test_three_peers_connect_once_each_pair_opened_by_the_larger_sid(autojump_clock):
    net = MemoryNetwork(seed=1)
    with trio.fail_after(10):
        async with ensemble(net, [1, 2, 3], Q) as (links, cols):
            await wait_all_up(links, cols)
            for sid, lk in links.items():
                lk.broadcast([Packet(sid, b"hi from %d" % sid)])
            for sid, col in cols.items():
                others = {s for s in links if s != sid}
                await col.wait_for(lambda _, col=col, others=others:
                                   {m.seq for m in col.messages()} == others)
            await trio.sleep(5)  # let mock time pass: nothing may flap
            assert net.links() == [
                LinkInfo("p2", "p1", address(1, Q)),
                LinkInfo("p3", "p1", address(1, Q)),
                LinkInfo("p3", "p2", address(2, Q)),
            ]
            for sid, col in cols.items():
                assert col.of(LinkDown) == []
                for other in links:
                    if other != sid:
                        assert [u.dialed for u in col.of(LinkUp, other)] == [other < sid]
                        assert links[sid].statistics().peers[other].links_opened == 1


@pytest.mark.parametrize("order", [[1, 2], [2, 1]])
async def test_duplicate_connections_resolved_by_the_larger_sid_rule(autojump_clock, order):
    net = MemoryNetwork(seed=2)
    with trio.fail_after(10):
        async with ensemble(net, [order[0]], Q, all_sids=[1, 2]):
            # the first one tries (dial or poke) and is refused before the other starts
            await net.wait_connect_log(lambda log: any(a.outcome == "refused" for a in log))
            async with ensemble(net, [order[1]], Q, all_sids=[1, 2]) as (links2, cols2):
                await wait_all_up(links2, cols2)
                await trio.sleep(5)
                assert net.links() == [LinkInfo("p2", "p1", address(1, Q))]
                sid = order[1]
                assert links2[sid].statistics().peers[3 - sid].links_opened == 1
                assert cols2[sid].of(LinkDown) == []


async def test_messages_sent_while_the_link_is_busy_are_batched(autojump_clock):
    net = MemoryNetwork(seed=3, capacity=1)
    net.faults("p2", "p1").delay = (0.05, 0.05)
    with trio.fail_after(30):
        async with ensemble(net, [1, 2], Q) as (links, cols):
            await wait_all_up(links, cols)
            before = links[1].statistics().peers[2].frames_received
            for i in range(200):
                links[2].send(1, [Packet(i, b"x")])
                await trio.lowlevel.checkpoint()
            await cols[1].wait_for(lambda _: len(cols[1].messages(2)) == 200)
            assert [m.seq for m in cols[1].messages(2)] == list(range(200))
            frames = links[1].statistics().peers[2].frames_received - before
            assert frames <= 5, frames  # heartbeats included
            assert links[2].statistics().peers[1].max_pending_messages >= 150


async def test_election_outbox_keeps_the_latest_value(autojump_clock):
    net = MemoryNetwork(seed=4)
    with trio.fail_after(10):
        async with ensemble(net, [1], E, all_sids=[1, 2]) as (links1, cols1):
            for n in range(5):  # no link yet: each replaces the previous one
                links1[1].send(2, [Vote(1, n)])
            assert links1[1].statistics().peers[2].replaced == 4
            async with ensemble(net, [2], E, all_sids=[1, 2]) as (links2, cols2):
                await cols2[2].wait_for(lambda _: cols2[2].messages(1))
                await trio.sleep(1)
                assert cols2[2].messages(1) == [Vote(1, 4)]


async def test_election_resends_the_last_vote_on_a_new_link(autojump_clock):
    net = MemoryNetwork(seed=5)
    with trio.fail_after(10):
        async with ensemble(net, [1, 2], E) as (links, cols):
            await wait_all_up(links, cols)
            links[1].send(2, [Vote(1, 7)])
            await cols[2].wait_for(lambda _: len(cols[2].messages(1)) == 1)
            net.disconnect("p1")
            await cols[2].wait_for(lambda _: len(cols[2].of(LinkUp, 1)) == 2)
            await cols[2].wait_for(lambda _: len(cols[2].messages(1)) == 2)
            assert cols[2].messages(1) == [Vote(1, 7), Vote(1, 7)]


async def test_partition_is_found_by_heartbeats_and_heals(autojump_clock):
    net = MemoryNetwork(seed=6)
    with trio.fail_after(30):
        async with ensemble(net, [1, 2, 3], Q) as (links, cols):
            await wait_all_up(links, cols)
            t0 = trio.current_time()
            net.partition(["p3"], ["p1", "p2"])
            for sid in (1, 2):
                await cols[sid].wait_for(lambda _, c=cols[sid]: c.of(LinkDown, 3))
                assert "heartbeat timeout" in cols[sid].of(LinkDown, 3)[0].reason
            assert trio.current_time() - t0 <= CONFIG.heartbeat_timeout + CONFIG.heartbeat_interval
            # the majority side still talks
            links[1].send(2, [Packet(1, b"during")])
            await cols[2].wait_for(lambda _: cols[2].messages(1) == [Packet(1, b"during")])
            assert cols[1].of(LinkDown, 2) == [] and cols[2].of(LinkDown, 1) == []
            assert not links[1].send(3, [Packet(1, b"lost")])  # quorum: no link, dropped
            net.heal()
            await wait_all_up(links, cols)
            links[1].send(3, [Packet(2, b"after")])
            await cols[3].wait_for(lambda _: Packet(2, b"after") in cols[3].messages(1))
            assert Packet(1, b"lost") not in cols[3].messages(1)


async def test_a_peer_that_never_answers_does_not_delay_the_others(autojump_clock):
    net = MemoryNetwork(seed=7, capacity=4)
    accepted = []

    async def black_hole(link):  # accepts, never reads, never answers
        accepted.append(link)
        await trio.sleep_forever()

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            # sid 0: the others dial it (the smaller sid), and it never says HELLO
            await nursery.start(net.endpoint("p0").serve, address(0, Q), black_hole)
            async with ensemble(net, [1, 2], Q, all_sids=[0, 1, 2]) as (links, cols):
                await cols[1].wait_for(lambda _: links[1].is_up(2))
                await cols[2].wait_for(lambda _: links[2].is_up(1))
                for i in range(50):
                    t0 = trio.current_time()
                    links[1].broadcast([Packet(i, b"y" * 100)])
                    await cols[2].wait_for(lambda _, i=i: len(cols[2].messages(1)) == i + 1)
                    assert trio.current_time() - t0 < 0.001  # no delay at all in mock time
                    await trio.sleep(0.1)  # spread the sends over handshake timeouts
                stats = links[1].statistics().peers[0]
                assert not stats.up and stats.connect_failures >= 1 and len(accepted) >= 2
                assert cols[1].of(LinkDown) == []
            nursery.cancel_scope.cancel()


async def test_a_peer_whose_owner_stops_reading_is_cut_by_the_send_timeout(autojump_clock):
    net = MemoryNetwork(seed=8, capacity=2)
    slow = dataclasses.replace(CONFIG, inbound_buffer=1)
    peers = {sid: address(sid, Q) for sid in (1, 2, 3)}
    with trio.fail_after(60):
        # 3's owner never reads its inbound: its receive loop blocks, 1's sends to it block
        async with open_peer_links(net.endpoint("p3"), 3, peers, Q, CAT, config=slow,
                                   parent="p3") as links3:
            async with ensemble(net, [1, 2], Q, all_sids=[1, 2, 3]) as (links, cols):
                await cols[1].wait_for(lambda _: links[1].is_up(2) and links[1].is_up(3))
                for i in range(20):
                    links[1].broadcast([Packet(i, b"z")])
                    await trio.sleep(0.01)
                await cols[1].wait_for(lambda _: cols[1].of(LinkDown, 3))
                reasons = [d.reason for d in cols[1].of(LinkDown, 3)]
                assert reasons[0].startswith("send timed out after 1.0 s"), reasons
                assert [m.seq for m in cols[2].messages(1)] == list(range(20))
                assert cols[1].of(LinkDown, 2) == []
                assert links3.statistics().inbound_backlog == 1


async def test_garbage_drops_only_that_link_and_it_comes_back(autojump_clock):
    net = MemoryNetwork(seed=9)
    shots = [b"\xa1\x01\x02"]  # a CBOR map: not a frame

    def corrupt(frame: bytes) -> bytes:
        return shots.pop() if shots else frame

    with trio.fail_after(20):
        async with ensemble(net, [1, 2, 3], Q) as (links, cols):
            await wait_all_up(links, cols)
            net.faults("p2", "p1").mutate = corrupt
            links[2].send(1, [Packet(1, b"eaten")])
            await cols[1].wait_for(lambda _: cols[1].of(LinkDown, 2))
            (down,) = cols[1].of(LinkDown, 2)
            assert down.reason.startswith("garbage frame: a frame must be a CBOR array")
            assert links[1].statistics().peers[2].garbage == 1
            await cols[1].wait_for(lambda _: len(cols[1].of(LinkUp, 2)) == 2)
            links[2].send(1, [Packet(2, b"ok")])
            await cols[1].wait_for(lambda _: Packet(2, b"ok") in cols[1].messages(2))
            assert cols[1].of(LinkDown, 3) == [] and cols[3].of(LinkDown) == []


async def test_reconnect_backoff_is_bounded_jittered_and_seeded(autojump_clock):
    net = MemoryNetwork(seed=10)
    with trio.fail_after(60):
        async with ensemble(net, [3], Q, all_sids=[1, 3]) as (links, cols):
            await net.wait_connect_log(lambda log: len([a for a in log if a.src == "p3"]) >= 12)
            times = [a.time for a in net.connect_log if a.src == "p3"][:12]
            assert all(a.outcome == "refused" for a in net.connect_log)
            expected = Backoff(CONFIG.min_backoff, CONFIG.max_backoff,
                               rng=random.Random(f"{CONFIG.seed}:QUORUM:3->1"))
            gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
            assert gaps == pytest.approx([expected.next() for _ in gaps], abs=0.011)
            assert max(gaps) <= CONFIG.max_backoff + 0.011
            # peer 1 comes up: its poke makes 3 dial at once, not after a backoff
            t0 = trio.current_time()
            async with ensemble(net, [1], Q, all_sids=[1, 3]) as (links1, cols1):
                await cols1[1].wait_for(lambda _: cols1[1].of(LinkUp, 3))
                assert trio.current_time() - t0 < 0.05
                assert links[3].statistics().peers[1].pokes_received >= 1


async def test_crash_of_a_peer_is_seen_at_once(autojump_clock):
    net = MemoryNetwork(seed=11)
    with trio.fail_after(10):
        async with ensemble(net, [1, 2, 3], Q) as (links, cols):
            await wait_all_up(links, cols)
            t0 = trio.current_time()
            net.disconnect("p3")
            await cols[1].wait_for(lambda _: cols[1].of(LinkDown, 3))
            await cols[2].wait_for(lambda _: cols[2].of(LinkDown, 3))
            assert trio.current_time() - t0 < 0.001
            await wait_all_up(links, cols)


async def test_stale_link_id_and_down_link_drop_quorum_messages(autojump_clock):
    net = MemoryNetwork(seed=12)
    with trio.fail_after(10):
        async with ensemble(net, [1, 2], Q) as (links, cols):
            await wait_all_up(links, cols)
            (up,) = cols[1].of(LinkUp, 2)
            assert links[1].send(2, [Packet(1, b"a")], link_id=up.link_id)
            assert not links[1].send(2, [Packet(2, b"b")], link_id=up.link_id + 100)
            await cols[2].wait_for(lambda _: cols[2].messages(1) == [Packet(1, b"a")])
            assert links[1].statistics().peers[2].dropped == 1


@pytest.mark.parametrize(
    "hello, reason",
    [
        (Hello(2, 99, Q), "framing version 99, expected 1"),
        (Hello(2, wire.PROTOCOL_VERSION, E), "channel ELECTION, this is the QUORUM port"),
        (Hello(9, wire.PROTOCOL_VERSION, Q), "unknown sid 9"),
        (Hello(1, wire.PROTOCOL_VERSION, Q), "sid 1 is our own"),
    ],
)
async def test_bad_hello_is_refused_with_a_reason(autojump_clock, hello, reason):
    net = MemoryNetwork(seed=13)
    with trio.fail_after(10):
        async with ensemble(net, [1], Q, all_sids=[1, 2]) as (links, cols):
            async with net.endpoint("intruder").connect(address(1, Q), connect_timeout=1) as link:
                await link.send(wire.encode_hello(hello))
                answer = wire.decode_handshake(await link.receive())
            assert isinstance(answer, Reject) and answer.reason.startswith(reason)
            assert links[1].statistics().handshakes_refused == 1


async def test_a_dialer_sees_the_reject_reason(autojump_clock, caplog):
    caplog.set_level(logging.INFO, logger="trio_quorum.net.links")
    net = MemoryNetwork(seed=14)
    other = wire.Catalogue("other")
    with trio.fail_after(10):
        # peer 2 believes peer 1 is on the quorum port, but 1 serves election there
        async with ensemble(net, [1], E, all_sids=[1, 2]):
            async with ensemble(net, [2], Q, all_sids=[1, 2], catalogue=other) as (links, _):
                peers = {1: address(1, E), 2: address(2, Q)}
                links[2].set_address(1, peers[1])
                # a second attempt comes after the first one's REJECT was handled
                await net.wait_connect_log(lambda log: len(
                    [a for a in log if a.src == "p2" and a.outcome == "connected"]) >= 2)
    assert any("refused the link: channel QUORUM, this is the ELECTION port" in r.getMessage()
               for r in caplog.records)


async def test_stopping_a_sender_takes_its_link_down_and_restarting_brings_it_back(autojump_clock):
    from actors import ChildSpec
    from trio_quorum.net.links import _bind

    net = MemoryNetwork(seed=15)
    with trio.fail_after(10):
        async with ensemble(net, [1, 2], Q) as (links, cols):
            await wait_all_up(links, cols)
            sup = links[2].supervisor
            await sup.stop_child("sender-1", reason="role change")
            await cols[1].wait_for(lambda _: cols[1].of(LinkDown, 2))
            peer = links[2]._peers[1]
            await sup.start_child(ChildSpec("sender-1", _bind(links[2], peer), shutdown=1.0))
            await cols[1].wait_for(lambda _: len(cols[1].of(LinkUp, 2)) == 2)


def test_catalogue_is_shared():
    assert CAT.tags() == {16: Vote, 17: Packet}
    assert Batch(1, 1, []).messages == []
