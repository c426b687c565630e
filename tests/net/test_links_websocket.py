"""PeerLinks over real WebSockets on 127.0.0.1: three peers exchange batches."""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest
import trio

from trio_quorum.net import LinkError, WebSocketNetwork, open_peer_links
from trio_quorum.quorum.wire import Channel

from .helpers import CAT, CONFIG, Collector, Packet, wait_all_up


async def test_three_peers_exchange_batches_over_websockets():
    net = WebSocketNetwork()
    sids = [1, 2, 3]
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery, AsyncExitStack() as stack:
            links, cols = {}, {}
            for sid in sids:
                # port 0: the others learn the bound address below
                peers = {s: ("127.0.0.1:0" if s == sid else None) for s in sids}
                links[sid] = await stack.enter_async_context(open_peer_links(
                    net, sid, peers, Channel.QUORUM, CAT, config=CONFIG, parent=f"ws-p{sid}"))
                cols[sid] = Collector(links[sid])
                nursery.start_soon(cols[sid].run)
            for sid in sids:
                for other in sids:
                    if other != sid:
                        links[sid].set_address(other, links[other].address)
            await wait_all_up(links, cols)
            for sid in sids:
                for other in sids:
                    if other != sid:
                        links[sid].send(other, [Packet(sid * 1000 + i, b"w" * i) for i in range(300)])
            for sid in sids:
                for other in sids:
                    if other != sid:
                        await cols[sid].wait_for(
                            lambda _, c=cols[sid], o=other: len(c.messages(o)) == 300)
                        got = [m.seq for m in cols[sid].messages(other)]
                        assert got == [other * 1000 + i for i in range(300)]
                        st = links[sid].statistics().peers[other]
                        assert st.frames_received < 300  # batched
            nursery.cancel_scope.cancel()


async def test_connect_failures_are_one_link_error():
    net = WebSocketNetwork()
    with trio.fail_after(10):
        # nothing listens there (bind, learn the port, close)
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        await listeners[0].aclose()
        with pytest.raises(LinkError, match=f"127.0.0.1:{port}: OSError"):
            async with net.connect(f"127.0.0.1:{port}", connect_timeout=5):
                pass  # pragma: no cover
        # a WebSocket server on another resource rejects the handshake (raised in
        # trio-websocket's reader task: an exception group before we unwrap it)
        other = WebSocketNetwork(resource="/elsewhere")
        async with trio.open_nursery() as nursery:
            address = await nursery.start(other.serve, "127.0.0.1:0", _never)
            with pytest.raises(LinkError, match="ConnectionRejected"):
                async with net.connect(address, connect_timeout=5):
                    pass  # pragma: no cover
            nursery.cancel_scope.cancel()


async def test_body_errors_come_out_unchanged():
    net = WebSocketNetwork()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(net.serve, "127.0.0.1:0", _echo)
            with pytest.raises(KeyError, match="mine"):
                async with net.connect(address, connect_timeout=5) as link:
                    await link.send(b"\x80")
                    assert await link.receive() == b"\x80"
                    raise KeyError("mine")
            nursery.cancel_scope.cancel()


async def _never(link):  # pragma: no cover - the handshake is rejected before
    await trio.sleep_forever()


async def _echo(link):
    while True:
        await link.send(await link.receive())
