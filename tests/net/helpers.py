"""A sample catalogue and an ensemble harness for the peer-link tests."""

from __future__ import annotations

from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import trio

from trio_quorum.net import LinksConfig, open_peer_links
from trio_quorum.quorum.wire import Catalogue, Channel


@dataclass(frozen=True, slots=True)
class Vote:
    sid: int
    n: int


@dataclass(frozen=True, slots=True)
class Packet:
    seq: int
    data: bytes


CAT = Catalogue("test")
CAT.register(16, Vote, (("sid", int), ("n", int)))
CAT.register(17, Packet, (("seq", int), ("data", bytes)))

CONFIG = LinksConfig(connect_timeout=1.0, handshake_timeout=1.0, send_timeout=1.0,
                     heartbeat_interval=0.2, heartbeat_timeout=1.0,
                     min_backoff=0.05, max_backoff=1.0)


def address(sid: int, channel: Channel) -> str:
    return f"p{sid}/{channel.name.lower()}"


class Collector:
    """Drains one PeerLinks' inbound; tests wait on conditions over what arrived."""

    def __init__(self, links) -> None:
        self.links = links
        self.items: list = []
        self._changed = trio.Event()

    async def run(self) -> None:
        async for item in self.links.inbound:
            self.items.append(item)
            self._changed.set()
            self._changed = trio.Event()

    async def wait_for(self, predicate) -> None:
        while not predicate(self.items):
            await self._changed.wait()

    def of(self, kind, sid=None):
        return [i for i in self.items if isinstance(i, kind) and (sid is None or i.sid == sid)]

    def messages(self, sid=None):
        from trio_quorum.net import Batch

        return [m for b in self.of(Batch, sid) for m in b.messages]


@asynccontextmanager
async def ensemble(net, sids, channel, *, all_sids=None, config=CONFIG, catalogue=CAT):
    """Open PeerLinks for ``sids`` (in that order) over MemoryNetwork ``net``; collectors run."""
    peers = {sid: address(sid, channel) for sid in (all_sids or sids)}
    async with trio.open_nursery() as nursery, AsyncExitStack() as stack:
        links, collectors = {}, {}
        for sid in sids:
            links[sid] = await stack.enter_async_context(open_peer_links(
                net.endpoint(f"p{sid}"), sid, peers, channel, catalogue, config=config,
                parent=f"p{sid}-{channel.name.lower()}",
            ))
            collectors[sid] = Collector(links[sid])
            nursery.start_soon(collectors[sid].run)
        yield links, collectors
        nursery.cancel_scope.cancel()


async def wait_all_up(links, collectors) -> None:
    """Until every link is up (a link is up before its LinkUp reaches the collector)."""
    for sid, collector in collectors.items():
        lk = links[sid]
        await collector.wait_for(lambda _, lk=lk: all(lk.is_up(o) for o in lk._peers))
