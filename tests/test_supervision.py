"""The standalone server's supervision tree, in process: real sockets on 127.0.0.1.

What is checked (docs/server.md, "Supervision tree"):

* the actor paths are the documented ones;
* a graceful shutdown stops every actor exactly once, children before
  parents, each with a reason, in reverse start order, storage closed last;
* a connection actor's crash closes that connection only;
* a chain stage crash (injected, or a real fsync failure) is not restarted:
  the stage is significant, so the role shuts down, the role is significant,
  so the peer shuts down, and ``run`` raises ``ServerFailed`` naming the stage;
* a stateless actor's crash is restarted by its supervisor and the server
  keeps serving.

No sleeps: every wait is on an event or a socket read, bounded by
``trio.fail_after``.  The real clock is used (MockClock's autojump would fire
the bounds while a task waits for the kernel to deliver bytes).
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

import actors
from actors import ActorCrashed, ActorGaveUp, ActorStarting, ActorStopped, ActorStopping
from actors.testing import EventRecorder, inject_crash
from trio_quorum.config import parse_config
from trio_quorum.persistence.memstore import MemStore
from trio_quorum.protocol.data import OPEN_ACL_UNSAFE
from trio_quorum.protocol.records import (
    CreateRequest,
    GetDataRequest,
    encode_connect_request,
    encode_request,
)
from trio_quorum.server.connection import ClientConnection
from trio_quorum.server.peer import Peer, ServerFailed

BOUND = 10  # seconds: generous bound on any single wait on this shared machine
ROOT = "peer-0"


class RecordingStore(MemStore):
    """A MemStore that records which actors were still running when it was closed."""

    def __init__(self) -> None:
        super().__init__()
        self.server: Peer | None = None
        self.alive_at_close: list[str] | None = None

    async def aclose(self) -> None:
        assert self.server is not None
        self.alive_at_close = self.server.tree.paths()
        await super().aclose()


class Session:
    """A bare ZooKeeper session on a trio socket."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buf = b""
        self.xid = 0
        self.session_id = 0

    @classmethod
    async def open(cls, port: int) -> Session:
        s = cls(await trio.open_tcp_stream("127.0.0.1", port))
        await s.stream.send_all(encode_connect_request(0, 0, 30000, 0, bytes(16), False))
        rsp = await s.frame()
        _pv, _timeout, s.session_id = struct.unpack(">iiq", rsp[:16])
        assert s.session_id != 0
        return s

    async def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            data = await self.stream.receive_some(65536)
            if not data:
                raise EOFError("server closed the connection")
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    async def frame(self) -> bytes:
        (n,) = struct.unpack(">i", await self._exact(4))
        return await self._exact(n)

    async def call(self, opcode: int, request: object) -> int:
        """One request; the reply's error code."""
        self.xid += 1
        await self.stream.send_all(encode_request(self.xid, opcode, request))
        while True:
            f = await self.frame()
            xid, _zxid, err = struct.unpack(">iqi", f[:16])
            if xid == self.xid:
                return int(err)

    async def create(self, path: str) -> int:
        return await self.call(1, CreateRequest(path, b"v", OPEN_ACL_UNSAFE, 0))

    async def get(self, path: str) -> int:
        return await self.call(4, GetDataRequest(path, False))

    async def wait_closed(self) -> None:
        """Read until the server closes the connection (replies still owed are discarded)."""
        while True:
            try:
                data = await self.stream.receive_some(65536)
            except trio.BrokenResourceError:
                return
            if not data:
                return

    async def aclose(self) -> None:
        await self.stream.aclose()


class Running:
    """A server running in a nursery; remembers how ``run`` ended."""

    def __init__(self, server: Peer, recorder: EventRecorder) -> None:
        self.server = server
        self.rec = recorder
        self.port = 0
        self.error: Exception | None = None
        self.done = trio.Event()
        self.sessions: list[Session] = []

    async def session(self) -> Session:
        with trio.fail_after(BOUND):
            s = await Session.open(self.port)
        self.sessions.append(s)
        return s

    async def _run(self, *, task_status: trio.TaskStatus[int]) -> None:
        try:
            await self.server.run(task_status=task_status)
        except Exception as exc:  # noqa: BLE001 - the tests assert on it
            self.error = exc
        finally:
            self.done.set()

    async def wait_done(self) -> None:
        with trio.fail_after(BOUND):
            await self.done.wait()

    def conn_path(self, session_id: int) -> str:
        """The actor path of the connection serving ``session_id``."""
        for path in self.server.tree.paths():
            if path.startswith(f"{ROOT}/client-port/conn-"):
                conn = self.server.tree.lookup(path).value
                if isinstance(conn, ClientConnection) and conn.session_id == session_id:
                    return path
        raise AssertionError(f"no connection actor for session 0x{session_id:x}")


@asynccontextmanager
async def running(tmp_path: Path, storage: MemStore | None = None, extra: str = "") -> AsyncIterator[Running]:
    cfg, _ = parse_config(
        f"tickTime=2000\ndataDir={tmp_path / 'data'}\nclientPort=0\nclientPortAddress=127.0.0.1\n{extra}",
        cwd=str(tmp_path),
    )
    store = storage if storage is not None else MemStore()
    server = Peer(cfg, store)
    if isinstance(store, RecordingStore):
        store.server = server
    with EventRecorder(server.tree) as rec:
        r = Running(server, rec)
        async with trio.open_nursery() as nursery:
            with trio.fail_after(BOUND):
                r.port = await nursery.start(r._run)
            try:
                yield r
                server.shutdown("test finished")
                await r.wait_done()
            finally:
                for s in r.sessions:
                    await s.aclose()


ROLE = f"{ROOT}/standalone"


def _static_paths() -> set[str]:
    return {
        f"{ROOT}/storage",
        f"{ROOT}/client-port",
        ROLE,
        f"{ROLE}/final",
        f"{ROLE}/sync",
        f"{ROLE}/prep",
        f"{ROLE}/session-expirer",
        f"{ROLE}/container-checker",
    }


async def test_actor_paths_are_the_documented_tree(tmp_path: Path) -> None:
    async with running(tmp_path) as r:
        assert set(r.server.tree.paths()) == _static_paths()
        a = await r.session()
        b = await r.session()
        conns = {p for p in r.server.tree.paths() if p.startswith(f"{ROOT}/client-port/conn-")}
        assert conns == {r.conn_path(a.session_id), r.conn_path(b.session_id)}
        assert set(r.server.tree.paths()) == _static_paths() | conns
        # Start order of the root's children, and the stages' start order (final first).
        starts = [e.path for e in r.rec.of_type(ActorStarting)]
        root_children = [p for p in starts if p.count("/") == 1]
        assert root_children == [f"{ROOT}/storage", f"{ROOT}/client-port", ROLE]
        assert [p for p in starts if p.startswith(f"{ROLE}/")] == [
            f"{ROLE}/final", f"{ROLE}/sync", f"{ROLE}/prep", f"{ROLE}/session-expirer",
            f"{ROLE}/container-checker",
        ]
    assert r.error is None


async def test_purge_timer_only_with_a_purge_interval(tmp_path: Path) -> None:
    from trio_quorum.persistence.filestore import FileStore

    cfg_extra = "autopurge.purgeInterval=1\nautopurge.snapRetainCount=3\n"
    store: Any = FileStore(str(tmp_path / "data"), str(tmp_path / "data"))
    cfg, _ = parse_config(
        f"tickTime=2000\ndataDir={tmp_path / 'data'}\nclientPort=0\nclientPortAddress=127.0.0.1\n{cfg_extra}",
        cwd=str(tmp_path),
    )
    server = Peer(cfg, store)
    async with trio.open_nursery() as nursery:
        with trio.fail_after(BOUND):
            await nursery.start(server.run)
        assert f"{ROOT}/purge-timer" in server.tree.paths()
        server.shutdown("test finished")
    assert server.failure is None


async def test_clean_shutdown_trace(tmp_path: Path) -> None:
    store = RecordingStore()
    async with running(tmp_path, store) as r:
        a = await r.session()
        assert await a.create("/kept") == 0
        r.server.shutdown("SIGTERM received")
        await r.wait_done()
        with trio.fail_after(BOUND):
            await a.wait_closed()
    assert r.error is None and r.server.failure is None
    events = r.rec.events
    started = [e.path for e in events if isinstance(e, ActorStarting)]
    stopped = [e for e in events if isinstance(e, ActorStopped)]
    # Every actor (and the root) stopped exactly once, each with a reason.
    assert sorted(e.path for e in stopped) == sorted(started)
    assert all(e.reason for e in stopped)
    # Children before parents.
    order = {e.path: i for i, e in enumerate(stopped)}
    for path in order:
        parent = path.rpartition("/")[0]
        if parent:
            assert order[path] < order[parent], f"{path} stopped after its parent {parent}"
    # The root's children were asked to stop with the reason, in reverse start order.
    asked = [e for e in events if isinstance(e, ActorStopping) and e.path.count("/") == 1]
    assert [e.path for e in asked] == [ROLE, f"{ROOT}/client-port", f"{ROOT}/storage"]
    assert all(e.reason == "SIGTERM received" for e in asked)
    # The role stops its timers, then drains the chain upstream first.
    role_children = [e.path for e in stopped if e.path.startswith(f"{ROLE}/")]
    assert role_children == [f"{ROLE}/container-checker", f"{ROLE}/session-expirer",
                             f"{ROLE}/prep", f"{ROLE}/sync", f"{ROLE}/final"]
    assert all(e.reason == "SIGTERM received" for e in r.rec.of_type(ActorStopping)
               if e.path.startswith(f"{ROLE}/"))
    # Storage is the last actor to stop (only the root after it), and it was
    # closed when nothing else was running any more.
    assert [e.path for e in stopped[-2:]] == [f"{ROOT}/storage", ROOT]
    assert store.alive_at_close == [f"{ROOT}/storage"]
    # The acknowledged write is durable.
    assert any(getattr(rec, "path", None) == "/kept" for _hdr, rec in store.durable)
    # Nothing crashed on the way.
    assert not r.rec.of_type(ActorCrashed)


async def test_connection_crash_closes_only_that_connection(tmp_path: Path) -> None:
    async with running(tmp_path) as r:
        a = await r.session()
        b = await r.session()
        assert await a.create("/a") == 0
        victim = r.conn_path(a.session_id)
        before = set(r.server.tree.paths())
        inject_crash(r.server.tree, victim, RuntimeError("injected connection crash"))
        with trio.fail_after(BOUND):
            await a.wait_closed()
            crash = await r.rec.wait_for(lambda e: isinstance(e, ActorCrashed) and e.path == victim)
        assert isinstance(crash, ActorCrashed) and "injected connection crash" in repr(crash.exc)
        # Only that actor stopped; nothing restarted; the other session works.
        assert set(r.server.tree.paths()) == before - {victim}
        assert [e.path for e in r.rec.of_type(ActorStopped)] == [victim]
        assert not r.rec.of_type(actors.ActorRestarted)
        with trio.fail_after(BOUND):
            assert await b.create("/b") == 0
            assert await b.get("/a") == 0
        # A closed connection does not close its session: it is still tracked.
        assert a.session_id in r.server.tracker
    assert r.error is None


@pytest.mark.parametrize("stage", ["prep", "sync", "final"])
async def test_stage_crash_escalates(tmp_path: Path, stage: str) -> None:
    store = RecordingStore()
    async with running(tmp_path, store) as r:
        a = await r.session()
        assert await a.create("/before") == 0
        inject_crash(r.server.tree, f"{ROLE}/{stage}", RuntimeError(f"injected {stage} crash"))
        await r.wait_done()
        with trio.fail_after(BOUND):
            await a.wait_closed()
    assert isinstance(r.error, ServerFailed)
    assert f"standalone/{stage}" in str(r.error) and f"injected {stage} crash" in str(r.error)
    # No stage was restarted in-process: the stage is significant, so the role
    # shut itself down, and the role is significant, so the peer did.
    assert not r.rec.of_type(actors.ActorRestarted)
    assert not r.rec.of_type(ActorGaveUp)
    assert [e.path for e in r.rec.of_type(actors.SupervisorAutoShutdown)] == [ROLE, ROOT]
    # Everything stopped, storage last, and what was acknowledged is durable.
    stopped = r.rec.paths(ActorStopped)
    assert sorted(stopped) == sorted(r.rec.paths(ActorStarting))
    assert stopped[-2:] == [f"{ROOT}/storage", ROOT]
    assert store.alive_at_close == [f"{ROOT}/storage"]
    assert any(getattr(rec, "path", None) == "/before" for _hdr, rec in store.durable)


async def test_storage_actor_crash_is_fatal(tmp_path: Path) -> None:
    store = RecordingStore()
    async with running(tmp_path, store) as r:
        a = await r.session()
        inject_crash(r.server.tree, f"{ROOT}/storage", RuntimeError("injected storage crash"))
        await r.wait_done()
        with trio.fail_after(BOUND):
            await a.wait_closed()
    assert isinstance(r.error, ServerFailed)
    assert f"{ROOT}/storage" in str(r.error) and "injected storage crash" in str(r.error)
    assert not r.rec.of_type(actors.ActorRestarted)
    assert store.closed and store.alive_at_close is not None
    assert sorted(r.rec.paths(ActorStopped)) == sorted(r.rec.paths(ActorStarting))


async def test_fsync_failure_is_fatal_and_the_write_is_not_acknowledged(tmp_path: Path) -> None:
    store = RecordingStore()
    async with running(tmp_path, store) as r:
        a = await r.session()
        store.fail_syncs(1)
        # The reply must never be success: the connection closes instead.
        with trio.fail_after(BOUND):
            with pytest.raises(EOFError):
                await a.create("/lost")
        await r.wait_done()
    assert isinstance(r.error, ServerFailed) and "StorageFailed" in str(r.error)
    crashed = r.rec.of_type(ActorCrashed)
    assert crashed[0].path == f"{ROLE}/sync"


async def test_stateless_actor_crash_is_restarted(tmp_path: Path) -> None:
    async with running(tmp_path) as r:
        a = await r.session()
        assert await a.create("/before") == 0
        inject_crash(r.server.tree, f"{ROLE}/session-expirer", RuntimeError("injected expirer crash"))
        with trio.fail_after(BOUND):
            await r.rec.wait_for(
                lambda e: isinstance(e, actors.ActorRestarted) and e.path == f"{ROLE}/session-expirer"
            )
        # one_for_one inside the role: only the expirer was restarted; the chain,
        # the client port and the open connection kept going.
        restarted = [e.path for e in r.rec.of_type(actors.ActorRestarted)]
        assert restarted == [f"{ROLE}/session-expirer"]
        with trio.fail_after(BOUND):
            assert await a.create("/after-restart") == 0
            assert await a.get("/before") == 0
        port = r.server.root.started_value("client-port") if r.server.root else 0
        assert port == r.port
    assert r.error is None


def test_sigterm_trace_in_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real CLI: SIGTERM stops every actor with the reason, storage last, exit 0."""
    from kazoo.client import KazooClient

    from tests.support.server import ServerProcess, write_cfg

    monkeypatch.setenv("TRIO_QUORUM_LOG_LEVEL", "DEBUG")
    with ServerProcess(write_cfg(tmp_path)) as server:
        zk = KazooClient(hosts=server.hosts, timeout=5)
        zk.start(timeout=10)
        try:
            zk.create("/x", b"1")
        finally:
            zk.stop()
            zk.close()
        assert server.terminate() == 0
    log = server.log_text()
    asked = [line for line in log.splitlines() if "ActorStopping(path='peer-0/" in line]
    assert len(asked) >= 8  # 3 children of the root, 5 of the role, the kazoo connection (if still open)
    assert all("SIGTERM received" in line for line in asked if "/conn-" not in line)
    stopped = [line.split("ActorStopped(path='")[1].split("'")[0]
               for line in log.splitlines() if "ActorStopped(path='" in line]
    assert stopped[-2:] == ["peer-0/storage", "peer-0"]
    assert "storage closed" in log and "server stopped" in log


def test_cli_exits_1_when_the_port_is_taken(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    from tests.support.server import REPO, write_cfg

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        cfg = write_cfg(tmp_path, port=s.getsockname()[1])
        r = subprocess.run(
            [sys.executable, "-m", "trio_quorum", "serve", str(cfg)], cwd=tmp_path, capture_output=True,
            text=True, timeout=60, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        )
    assert r.returncode == 1
    assert "cannot serve" in r.stderr and "ddress already in use" in r.stderr


async def test_client_reset_is_a_clean_stop_not_a_crash(tmp_path: Path) -> None:
    import socket

    async with running(tmp_path) as r:
        a = await r.session()
        path = r.conn_path(a.session_id)
        # Unread replies + SO_LINGER 0: the server's socket sees ECONNRESET.
        await a.stream.send_all(encode_request(1, 4, GetDataRequest("/", False)) * 50)
        a.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        r.sessions.remove(a)
        await a.aclose()
        with trio.fail_after(BOUND):
            stopped = await r.rec.wait_for(lambda e: isinstance(e, ActorStopped) and e.path == path)
        assert isinstance(stopped, ActorStopped) and stopped.reason == "returned"
        assert not r.rec.of_type(ActorCrashed)
