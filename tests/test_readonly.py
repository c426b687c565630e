"""Read-only mode's parts without processes: the chain's stages, the 4lw of a read-only / quorum server, the CLI switch.

The real-process behaviour (against ZooKeeper 3.8) is in ``test_readonly_ensemble.py``.
"""

from __future__ import annotations

import argparse

import pytest

from tests.test_fourlw import View
from trio_quorum import cli
from trio_quorum.config import parse_config
from trio_quorum.persistence.memstore import MemStore
from trio_quorum.protocol import records as p
from trio_quorum.protocol.consts import Err, OpCode
from trio_quorum.protocol.data import OPEN_ACL_UNSAFE
from trio_quorum.server.chain import Chain
from trio_quorum.server.clientport import ClientPort
from trio_quorum.server.fourlw import NOT_SERVING, run_command
from trio_quorum.server.readonly import (
    WRITE_OPS,
    LocalSessionFinalStage,
    ReadOnlyStage,
    grace_period,
    local_session_tracker,
)
from trio_quorum.server.request import Request
from trio_quorum.server.state import PeerState
from trio_quorum.server.stats import ConnStats, QuorumStats, leader_stats


class FakeConn:
    """A client connection as the chain sees it: records what it is sent."""

    def __init__(self) -> None:
        self.session_id = 0
        self.outstanding = 0
        self.closed = False
        self.closing = False
        self.auth_ids: list = []
        self.stats = ConnStats()
        self.frames: list[bytes] = []
        self.session: tuple[int, int, bool] | None = None

    def deliver(self, frames: list[bytes]) -> None:
        self.frames += frames

    def deliver_one(self, frame: bytes) -> None:
        self.frames.append(frame)

    def finish_session_init(self, session_id: int, timeout: int, valid: bool) -> None:
        self.session = (session_id, timeout, valid)
        self.session_id = session_id if valid else 0

    def close_after_flush(self) -> None:
        self.closing = True

    def abort(self, reason: str) -> None:
        self.closed = True


def _setup() -> tuple[PeerState, ClientPort, LocalSessionFinalStage, Chain]:
    cfg, _ = parse_config("tickTime=500\ndataDir=/tmp/x\nclientPort=2181\n", cwd="/")
    state = PeerState(cfg, MemStore())
    state.tracker.create_session(10000, state.now_ms())  # a global session, from before LOOKING
    clients = ClientPort(state, mode=lambda: "read-only", four_letter_word=lambda w: "")
    sessions = local_session_tracker(state)
    final = LocalSessionFinalStage(state, sessions, clients)
    chain = Chain([ReadOnlyStage(), final], read_check=final.check)
    chain.running = True  # the direct path, as once attached
    return state, clients, final, chain


def _submit(clients: ClientPort, chain: Chain, conn: FakeConn, batch: list[Request]) -> None:
    conn.outstanding += len(batch)
    clients.stats.outstanding += len(batch)
    chain.submit(batch)


async def test_local_sessions_reads_writes_close_and_expiry() -> None:
    state, clients, final, chain = _setup()
    sessions = final.sessions
    clients.attach_local_sessions(sessions)
    assert clients.tracker is sessions
    (global_sid,) = state.tracker.session_timeouts()
    assert clients.validate_session(global_sid) is not None  # a global session: refused while read-only
    conn = FakeConn()
    now = state.now_ms()
    sid = clients.tracker.create_session(1000, now)
    _submit(clients, chain, conn, [Request(conn, sid, 0, OpCode.createSession, 1000, now)])
    assert conn.session == (sid, 1000, True)
    assert sid not in state.tracker and sid >> 56 == state.config.my_id
    assert clients.validate_session(sid) is None
    zxid = state.last_zxid
    script = [
        (OpCode.exists, p.ExistsRequest("/", False)),
        (OpCode.create, p.CreateRequest("/n", b"", OPEN_ACL_UNSAFE, 0)),
        (OpCode.getData, p.GetDataRequest("/nope", False)),
        (OpCode.setData, p.SetDataRequest("/", b"", -1)),
        (OpCode.sync, p.SyncRequest("/")),
    ]
    batch = [Request(conn, sid, i + 1, int(op), rec, now) for i, (op, rec) in enumerate(script)]
    _submit(clients, chain, conn, batch)
    got = [(h.xid, h.err) for h in (p.decode_reply_header(f, 4) for f in conn.frames)]
    assert got == [(1, 0), (2, Err.NOTREADONLY), (3, Err.NONODE), (4, Err.NOTREADONLY), (5, Err.NOTREADONLY)]
    assert conn.outstanding == 0 and clients.stats.outstanding == 0
    assert state.last_zxid == zxid and "/n" not in state.tree.nodes  # nothing written, no zxid
    # closeSession: answered, the session forgotten, the connection closed after the reply.
    conn.frames.clear()
    _submit(clients, chain, conn, [Request(conn, sid, 6, OpCode.closeSession, None, now)])
    assert [(h.xid, h.err) for h in (p.decode_reply_header(f, 4) for f in conn.frames)] == [(6, 0)]
    assert conn.closing and sid not in sessions
    # A read of a session that is gone: SESSIONEXPIRED from the check, not an answer.
    req = Request(conn, sid, 7, OpCode.exists, p.ExistsRequest("/", False), now)
    chain.check_read(req)
    assert req.err in (Err.SESSIONEXPIRED, Err.UNKNOWNSESSION)
    # Expiry of a local session (the expirer's closeSession has no connection).
    other = FakeConn()
    sid2 = sessions.create_session(1000, now)
    clients.bind_session(sid2, other)  # type: ignore[arg-type]
    expired = sessions.expire(now + 5000)
    assert expired == [sid2]
    clients.stats.outstanding += 1
    chain.submit([Request(None, sid2, 0, OpCode.closeSession, None, now + 5000)])
    assert other.closing and sid2 not in sessions and other.frames == []
    clients.detach_local_sessions(sessions)
    assert clients.tracker is state.tracker and clients.validate_session(global_sid) is None


def test_write_ops_are_zookeepers() -> None:
    names = {OpCode(o).name for o in WRITE_OPS}
    assert names == {"sync", "create", "create2", "createTTL", "createContainer", "delete", "deleteContainer",
                     "setData", "reconfig", "setACL", "multi", "check"}
    assert grace_period(500) == 2.0 and grace_period(3000) == 3.0


class QuorumView(View):
    def __init__(self, mode: str, quorum: QuorumStats | None, serving: bool = True) -> None:
        super().__init__()
        self.config, _ = parse_config(
            "tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir=/tmp/refzk/data\n4lw.commands.whitelist=*\n"
            "server.1=127.0.0.1:2888:3888;2181\nserver.2=127.0.0.1:2889:3889;2182\n"
            "server.3=127.0.0.1:2890:3890:observer;2183\n",
            cwd="/", myid_text="1\n")
        self.mode = mode
        self.serving = serving
        self.quorum = quorum

    def quorum_stats(self) -> QuorumStats | None:
        return self.quorum

    def session_timeouts(self) -> dict[int, int]:
        return {0x100000A38C20000: 10000}

    def local_session_buckets(self) -> dict[int, list[int]] | None:
        return {4000: [0x1AAA], 4500: [0x1BBB]} if self.mode == "read-only" else None


class Handler:
    def __init__(self, observer: bool, voter: bool, forwarding: bool) -> None:
        self.observer, self.voter, self.forwarding = observer, voter, forwarding


def test_quorum_words() -> None:
    lead = leader_stats([Handler(False, True, True), Handler(False, True, False), Handler(True, False, True),
                         Handler(False, False, True)], pending_syncs=2, uptime_ms=70)
    v = QuorumView("leader", QuorumStats("leading - broadcast", 2, lead))
    mntr = dict(line.split("\t") for line in run_command("mntr", v).splitlines())
    assert (mntr["zk_learners"], mntr["zk_synced_followers"], mntr["zk_synced_non_voting_followers"],
            mntr["zk_synced_observers"], mntr["zk_pending_syncs"], mntr["zk_leader_uptime"]) == (
        "4", "2", "1", "1", "2", "70")
    assert mntr["zk_peer_state"] == "leading - broadcast" and mntr["zk_quorum_size"] == "2"
    assert run_command("srvr", v).endswith("Mode: leader\nNode count: 7\nProposal sizes last/min/max: -1/-1/-1\n")
    conf = run_command("conf", v)
    assert conf.endswith("peerType=0\nmembership: \nserver.1=127.0.0.1:2888:3888:participant;0.0.0.0:2181\n"
                         "server.2=127.0.0.1:2889:3889:participant;0.0.0.0:2182\n"
                         "server.3=127.0.0.1:2890:3890:observer;0.0.0.0:2183\nversion=0")
    follower = QuorumView("follower", QuorumStats("following - broadcast", 2))
    mntr = dict(line.split("\t") for line in run_command("mntr", follower).splitlines())
    assert "zk_learners" not in mntr and mntr["zk_peer_state"] == "following - broadcast"
    assert run_command("dump", follower).startswith(
        "SessionTracker dump:\nGlobal Sessions(1):\n0x100000a38c20000\t10000ms\nephemeral nodes dump:\n")
    ro = QuorumView("read-only", None)
    mntr = dict(line.split("\t") for line in run_command("mntr", ro).splitlines())
    assert mntr["zk_local_sessions"] == "2" and "zk_peer_state" not in mntr
    assert run_command("conf", ro).endswith("electionPort=3888\nquorumPort=2888\npeerType=0\n")
    assert run_command("isro", ro) == "ro"
    assert run_command("dump", ro).startswith(
        "SessionTracker dump:\nLocal Session Sets (2)/(2):\n1 expire at Thu Jan 01 00:00:04 UTC 1970:\n\t0x1aaa\n"
        "1 expire at Thu Jan 01 00:00:04 UTC 1970:\n\t0x1bbb\nGlobal Sessions(1):\n0x100000a38c20000\t10000ms\n")
    looking = QuorumView("looking", None, serving=False)
    assert run_command("isro", looking) == "null"
    assert run_command("srvr", looking) == run_command("mntr", looking) == NOT_SERVING


def test_cli_switch_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    def fake_serve(args: argparse.Namespace) -> int:
        seen["readonlymode"] = args.readonlymode
        return 0

    import trio_quorum.ops.serve as ops_serve

    monkeypatch.setattr(ops_serve, "run_serve", fake_serve)
    monkeypatch.delenv("TRIO_QUORUM_READONLYMODE", raising=False)
    cli.main(["serve"])
    assert seen["readonlymode"] is False
    cli.main(["serve", "--readonlymode"])
    assert seen["readonlymode"] is True
    monkeypatch.setenv("TRIO_QUORUM_READONLYMODE", "true")
    cli.main(["serve"])
    assert seen["readonlymode"] is True
