"""Sessions across an ensemble, in process: 3 peers on an in-memory network, real client sockets.

* A session that moves to another server is revalidated by the leader
  (REVALIDATE); the old server's connection then gets SESSIONMOVED for a
  write, as with ZooKeeper, and the session goes on on the new server.
* A reconnect with a wrong password is refused on a follower too.
* A new leader gives every session a full timeout (sessions of clients on
  other servers are not expired at once by the peer that takes over).

Real clock (client sockets are real); every wait bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from trio_quorum.config import parse_config
from trio_quorum.net import MemoryNetwork
from trio_quorum.persistence.memstore import MemStore
from trio_quorum.protocol.consts import Err
from trio_quorum.protocol.data import OPEN_ACL_UNSAFE
from trio_quorum.protocol.records import (
    CreateRequest,
    SetDataRequest,
    encode_connect_request,
)
from trio_quorum.server.peer import Peer

from .test_supervision import Session

BOUND = 20


class RawSession(Session):
    """test_supervision's bare session, connecting with an existing session id and password too."""

    passwd = b""
    timeout = 0

    @classmethod
    async def connect(cls, port: int, session_id: int = 0, passwd: bytes = bytes(16)) -> RawSession:
        s = cls(await trio.open_tcp_stream("127.0.0.1", port))
        await s.stream.send_all(encode_connect_request(0, 0, 30000, session_id, passwd, False))
        rsp = await s.frame()
        _pv, s.timeout, s.session_id = struct.unpack(">iiq", rsp[:16])
        (n,) = struct.unpack(">i", rsp[16:20])
        s.passwd = rsp[20:20 + n]
        return s

    async def aclose(self) -> None:
        await self.stream.aclose()


@asynccontextmanager
async def ensemble(tmp_path: Path, size: int = 3) -> AsyncIterator[dict[int, Peer]]:
    net = MemoryNetwork(seed=7)
    servers = "".join(f"server.{i}=127.0.0.1:{13000 + i}:{14000 + i}\n" for i in range(1, size + 1))
    peers: dict[int, Peer] = {}
    async with trio.open_nursery() as nursery:
        for sid in range(1, size + 1):
            d = tmp_path / f"p{sid}"
            d.mkdir()
            cfg, _ = parse_config(
                f"tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir={d}\nclientPort=0\n"
                f"clientPortAddress=127.0.0.1\n{servers}",
                cwd=str(tmp_path), myid_text=str(sid),
            )
            peer = Peer(cfg, MemStore(), network=net.endpoint(f"peer-{sid}"))
            peers[sid] = peer
            await nursery.start(peer.run)
        with trio.fail_after(BOUND):
            for p in peers.values():
                await p.wait_until(lambda p=p: p.serving)
        try:
            yield peers
        finally:
            for p in peers.values():
                p.shutdown("test finished")


async def test_a_moved_session_is_revalidated_and_its_old_server_answers_sessionmoved(tmp_path: Path) -> None:
    async with ensemble(tmp_path) as peers:
        followers = [sid for sid, p in peers.items() if p.mode == "follower"]
        a, b = (peers[s] for s in followers)
        with trio.fail_after(BOUND):
            old = await RawSession.connect(a.port)
            assert await old.call(1, CreateRequest("/moved", b"0", OPEN_ACL_UNSAFE, 0)) == 0
            # The same session, reconnected on the other follower: the leader revalidates it.
            new = await RawSession.connect(b.port, old.session_id, old.passwd)
            assert new.session_id == old.session_id and new.timeout > 0
            assert await new.call(5, SetDataRequest("/moved", b"1", -1)) == 0
            # The old server's connection is still open; its write is refused by the leader.
            assert await old.call(5, SetDataRequest("/moved", b"2", -1)) == Err.SESSIONMOVED
            assert await new.call(5, SetDataRequest("/moved", b"3", 1)) == 0
            await old.aclose()
            await new.aclose()
        leader = next(p for p in peers.values() if p.mode == "leader")
        assert leader.state.tree.nodes["/moved"].data == b"3"


async def test_a_wrong_password_is_refused_on_a_follower(tmp_path: Path) -> None:
    async with ensemble(tmp_path) as peers:
        follower = next(p for p in peers.values() if p.mode == "follower")
        with trio.fail_after(BOUND):
            s = await RawSession.connect(follower.port)
            bad = await RawSession.connect(follower.port, s.session_id, bytes(16))
            assert bad.session_id == 0 and bad.timeout == 0  # ZooKeeper's answer to an invalid session
            await bad.aclose()
            await s.aclose()


async def test_a_new_leader_gives_every_session_a_full_timeout(tmp_path: Path) -> None:
    async with ensemble(tmp_path) as peers:
        old_leader = next(sid for sid, p in peers.items() if p.mode == "leader")
        follower = next(p for sid, p in peers.items() if p.mode == "follower")
        with trio.fail_after(BOUND):
            s = await RawSession.connect(follower.port)
            assert await s.call(1, CreateRequest("/e", b"", OPEN_ACL_UNSAFE, 1)) == 0  # ephemeral
        sid = s.session_id
        peers[old_leader].shutdown("test: the leader goes away")
        survivor = next(p for i, p in peers.items() if i != old_leader)
        with trio.fail_after(BOUND):
            # the survivor serves again once a new leader is established (leading or following it)
            await survivor.wait_until(lambda: survivor.quorum is not None and survivor.quorum.leader not in
                                      (None, old_leader) and survivor.serving)
        new_leader = next(p for i, p in peers.items() if i != old_leader and p.mode == "leader")
        # The session is known to the new leader with a full timeout from the take-over on.
        assert sid in new_leader.tracker
        nxt = new_leader.tracker.next_expiration_time()
        assert nxt is not None and nxt > new_leader.state.now_ms()
        assert "/e" in new_leader.state.tree.nodes
        await s.aclose()
