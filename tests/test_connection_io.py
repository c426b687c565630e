"""Client connection IO (connection.py): direct sends, the writer, back-pressure, cancellation.

In process, real sockets on 127.0.0.1 (``running`` from test_supervision):

* replies far larger than the socket buffers reach a slowly reading client
  completely and in request order (the direct send's remainder is queued;
  later replies, from the fast path and from the final stage, queue behind it);
* a client that never reads is no longer read once its queue passes the
  high-water mark, and other sessions are served meanwhile;
* a peer that reset its connection while the final stage sends to it directly
  breaks only that connection (the stage serves on, the server does not fail);
* ``abort()`` ends a connection that is always readable (the reader yields
  every few reads).

No sleeps to wait for things: events, bounded polling of a condition, reading
until the server closes the socket.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path

import trio

from actors import ActorCrashed, ActorStopped
from trio_quorum.persistence.memstore import MemStore
from trio_quorum.protocol.data import OPEN_ACL_UNSAFE
from trio_quorum.protocol.records import (
    CreateRequest,
    GetDataRequest,
    SetDataRequest,
    encode_connect_request,
    encode_request,
)
from trio_quorum.server.connection import _OUT_HIGH_WATER, ClientConnection

from .test_supervision import BOUND, Running, running

_PING = encode_request(-2, 11)


def _hdr(frame: bytes) -> tuple[int, int, int]:
    xid, zxid, err = struct.unpack(">iqi", frame[:16])
    return int(xid), int(zxid), int(err)


def _get_data_value(frame: bytes) -> bytes:
    (n,) = struct.unpack(">i", frame[16:20])
    return bytes(frame[20:20 + n])


async def _until(cond: Callable[[], bool], what: str) -> None:
    """Poll ``cond()`` until it holds (a condition, not a duration), at most BOUND seconds."""
    with trio.move_on_after(BOUND):
        while True:
            if cond():
                return
            await trio.sleep(0.002)
    raise AssertionError(f"timed out waiting for: {what}")


def _conn_of(r: Running, session_id: int) -> ClientConnection:
    for c in r.server.connections():
        if c.session_id == session_id:
            return c
    raise AssertionError(f"no connection for session 0x{session_id:x}")


class RawClient:
    """A ZooKeeper client on a non-blocking stdlib socket (buffer sizes under the test's control)."""

    def __init__(self, port: int, *, rcvbuf: int = 0, sndbuf: int = 0) -> None:
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if sndbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        self.sock.connect(("127.0.0.1", port))  # loopback: completes in the kernel's backlog
        self.sock.setblocking(False)
        self.buf = b""
        self.session_id = 0

    async def send_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self.sock.send(view):]
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self.sock)

    async def recv_some(self, n: int = 65536) -> bytes:
        while True:
            try:
                return self.sock.recv(n)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self.sock)

    async def frame(self, chunk: int = 65536) -> bytes:
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack(">i", self.buf[:4])
                if len(self.buf) >= 4 + n:
                    out, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    return out
            data = await self.recv_some(chunk)
            if not data:
                raise EOFError("server closed the connection")
            self.buf += data

    async def handshake(self) -> None:
        await self.send_all(encode_connect_request(0, 0, 30000, 0, bytes(16), False))
        rsp = await self.frame()
        _pv, _timeout, self.session_id = struct.unpack(">iiq", rsp[:16])
        assert self.session_id != 0

    def close(self) -> None:
        trio.lowlevel.notify_closing(self.sock)
        self.sock.close()


class GatedStore(MemStore):
    """A MemStore whose ``sync`` waits for ``gate`` when one is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate: trio.Event | None = None

    async def sync(self) -> None:
        if self.gate is not None:
            await self.gate.wait()
        await super().sync()


def _stages_only(r: Running) -> None:
    """Make every batch travel the pipeline's stages (no synchronous answer inside ``submit``)."""
    if r.server.chain is not None:
        r.server.chain.direct_enabled = False


async def test_large_replies_reach_a_slow_reader_completely_and_in_order(tmp_path: Path) -> None:
    big = bytes(range(256)) * 3500  # 896000 bytes: each reply is far larger than the socket buffers
    async with running(tmp_path) as r:
        a = await r.session()
        with trio.fail_after(BOUND):
            assert await a.call(1, CreateRequest("/big", big, OPEN_ACL_UNSAFE, 0)) == 0
            assert await a.create("/small") == 0
        slow = RawClient(r.port, rcvbuf=16384)
        try:
            with trio.fail_after(BOUND):
                await slow.handshake()
            conn = _conn_of(r, slow.session_id)
            # One send: the first getData is answered by the fast path (a direct send
            # the kernel takes only part of); the setData switches the fast path off,
            # so the rest of the read goes through the pipeline and its replies queue
            # behind the unsent bytes.
            reqs = []
            for i in range(8):
                reqs.append(encode_request(3 * i + 1, 4, GetDataRequest("/big", False)))
                reqs.append(encode_request(3 * i + 2, 5, SetDataRequest("/small", b"%d" % i, -1)))
                reqs.append(encode_request(3 * i + 3, 4, GetDataRequest("/small", False)))
            with trio.fail_after(BOUND):
                await slow.send_all(b"".join(reqs))
            await _until(lambda: conn._out_bytes > 0, "replies queued behind the socket buffer")
            with trio.fail_after(BOUND * 3):
                for i in range(8):
                    f = await slow.frame(chunk=4096)  # small reads: the writer refills as we go
                    assert _hdr(f)[0] == 3 * i + 1 and _hdr(f)[2] == 0
                    assert _get_data_value(f) == big
                    f = await slow.frame(chunk=4096)
                    assert _hdr(f)[0] == 3 * i + 2 and _hdr(f)[2] == 0
                    f = await slow.frame(chunk=4096)
                    assert _hdr(f)[0] == 3 * i + 3 and _hdr(f)[2] == 0
                    assert _get_data_value(f) == b"%d" % i
            assert conn._out_bytes == 0 and not conn._out
            assert r.server.stats.max_client_response_size >= len(big)
            # The connection still works: a fast-path read after all of that.
            with trio.fail_after(BOUND):
                await slow.send_all(encode_request(100, 4, GetDataRequest("/small", False)))
                f = await slow.frame()
            assert _hdr(f)[0] == 100 and _get_data_value(f) == b"7"
        finally:
            slow.close()
    assert r.error is None


async def test_replies_delivered_while_the_writer_drains_keep_their_order(tmp_path: Path) -> None:
    med = bytes(range(256)) * 256  # 64 KiB: larger than what the slow client's socket takes
    async with running(tmp_path) as r:
        a = await r.session()
        with trio.fail_after(BOUND):
            assert await a.call(1, CreateRequest("/med", med, OPEN_ACL_UNSAFE, 0)) == 0
            assert await a.create("/small") == 0
        slow = RawClient(r.port, rcvbuf=16384)
        try:
            with trio.fail_after(BOUND):
                await slow.handshake()
            # A small, fixed server-side send buffer: the writer's queue forms often.
            _conn_of(r, slow.session_id).sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
            # Requests keep arriving while the writer is draining earlier replies:
            # a reply delivered now must queue behind them even when the kernel
            # has room at that moment (never a direct send past queued bytes).
            expected: list[tuple[int, bytes | None]] = []
            xid = 0
            with trio.fail_after(BOUND * 3):
                for i in range(150):
                    reqs = [encode_request(xid + 1, 4, GetDataRequest("/med", False)),
                            encode_request(xid + 2, 4, GetDataRequest("/small", False))]
                    expected += [(xid + 1, med), (xid + 2, b"v")]
                    xid += 2
                    if i % 10 == 5:  # a write: its reply comes from the final stage
                        xid += 1
                        reqs.append(encode_request(xid, 5, SetDataRequest("/small", b"v", -1)))
                        expected.append((xid, None))
                    await slow.send_all(b"".join(reqs))
                    data = await slow.recv_some(4096)
                    assert data
                    slow.buf += data
                for want_xid, value in expected:
                    f = await slow.frame(chunk=4096)
                    assert _hdr(f)[0] == want_xid and _hdr(f)[2] == 0
                    if value is not None:
                        assert _get_data_value(f) == value
        finally:
            slow.close()
    assert r.error is None


async def test_client_that_never_reads_stops_being_read_and_others_are_served(tmp_path: Path) -> None:
    async with running(tmp_path) as r:
        a = await r.session()
        with trio.fail_after(BOUND):
            assert await a.call(1, CreateRequest("/mid", b"m" * 1024, OPEN_ACL_UNSAFE, 0)) == 0
        hog = RawClient(r.port, rcvbuf=8192, sndbuf=8192)
        try:
            with trio.fail_after(BOUND):
                await hog.handshake()
            conn = _conn_of(r, hog.session_id)
            n_max = 200_000
            frame_len = len(encode_request(1, 4, GetDataRequest("/mid", False)))
            blob = b"".join(encode_request(x, 4, GetDataRequest("/mid", False)) for x in range(1, n_max + 1))
            assert len(blob) == frame_len * n_max
            # Send without ever reading, until the kernel refuses more AND the server
            # holds more than the high-water mark for us: it has stopped reading.
            sent = 0
            with trio.fail_after(BOUND * 3):
                while True:
                    try:
                        sent += hog.sock.send(memoryview(blob)[sent:sent + 65536])
                    except BlockingIOError:
                        if conn._out_bytes > _OUT_HIGH_WATER:
                            break
                        await trio.sleep(0.002)  # poll: the server is still reading
                    else:
                        await trio.lowlevel.checkpoint()
                    assert sent < len(blob), "the server never stopped reading"
            read_so_far = conn.stats.packets_received
            # Another session is served normally: many rounds in which the hog's
            # reader could read, while the hog keeps trying to send (it must not be read).
            with trio.fail_after(BOUND):
                for _ in range(30):
                    assert await a.call(5, SetDataRequest("/mid", b"m" * 1024, -1)) == 0
                    assert await a.get("/mid") == 0
                    with contextlib.suppress(BlockingIOError):
                        sent += hog.sock.send(memoryview(blob)[sent:sent + 65536])
                    assert sent < len(blob), "the server never stopped reading"
                b = await r.session()
                assert await b.create("/b") == 0
            assert conn.stats.packets_received == read_so_far, "the hog was read past the high-water mark"
            assert conn._out_bytes > _OUT_HIGH_WATER
            assert len(conn._drained) == 1, "the hog's reader is not parked by back-pressure"
            # Now the hog reads: everything it sent is answered, in order.
            expected = -(-sent // frame_len)  # the partly sent last frame is completed below
            rest = blob[sent:expected * frame_len]
            got = 0
            with trio.fail_after(BOUND * 3):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(hog.send_all, rest)
                    while got < expected:
                        f = await hog.frame()
                        got += 1
                        assert _hdr(f)[0] == got and _hdr(f)[2] == 0
            assert conn.stats.packets_received == 1 + expected  # the ConnectRequest + every request
        finally:
            hog.close()
    assert r.error is None


async def test_reset_during_a_direct_send_from_the_final_stage_harms_no_other_connection(tmp_path: Path) -> None:
    store = GatedStore()
    # globalOutstandingLimit=1: a connection with 2 requests in flight is not
    # read, so nothing but the final stage's send can notice the reset.
    async with running(tmp_path, storage=store, extra="globalOutstandingLimit=1\n") as r:
        _stages_only(r)
        a = await r.session()
        b = await r.session()
        with trio.fail_after(BOUND):
            assert await a.create("/w") == 0
            assert await a.call(4, GetDataRequest("/w", True)) == 0
            assert await b.call(4, GetDataRequest("/w", True)) == 0
        ca = _conn_of(r, a.session_id)
        path = r.conn_path(a.session_id)
        store.gate = trio.Event()
        # Two writes in one read: they wait for the (gated) sync; a's reader parks.
        await a.stream.send_all(
            encode_request(100, 5, SetDataRequest("/w", b"1", -1))
            + encode_request(101, 5, SetDataRequest("/w", b"2", -1))
        )
        await _until(lambda: ca.outstanding == 2, "a's writes in the pipeline")
        # The client resets its connection (SO_LINGER 0): the server's socket has the RST.
        a.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        r.sessions.remove(a)
        await a.aclose()
        store.gate.set()
        store.gate = None
        # The final stage applies both writes and sends to a (reset: the send fails)
        # and to b (the watch event) in the same batch.
        with trio.fail_after(BOUND):
            event = await b.frame()
        xid, _zxid, err = _hdr(event)
        assert (xid, err) == (-1, 0)
        with trio.fail_after(BOUND):
            stopped = await r.rec.wait_for(lambda e: isinstance(e, ActorStopped) and e.path == path)
        assert isinstance(stopped, ActorStopped) and stopped.reason == "returned"
        assert isinstance(ca._broken, ConnectionError), "the final stage's send did not see the reset"
        assert ca.closed
        # Everything else serves on.
        with trio.fail_after(BOUND):
            assert await b.get("/w") == 0
            assert await b.call(5, SetDataRequest("/w", b"3", -1)) == 0
            c = await r.session()
            assert await c.create("/c") == 0
        assert not r.rec.of_type(ActorCrashed)
        assert r.server.failure is None
    assert r.error is None


async def test_abort_ends_an_always_readable_connection(tmp_path: Path) -> None:
    async with running(tmp_path) as r:
        sock = socket.create_connection(("127.0.0.1", r.port), timeout=BOUND)
        stop = threading.Event()
        ended_by_server = threading.Event()
        done = threading.Event()

        def handshake() -> int:
            sock.sendall(encode_connect_request(0, 0, 30000, 0, bytes(16), False))
            buf = b""
            while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
                buf += sock.recv(65536)
            return int(struct.unpack(">q", buf[12:20])[0])

        def send_pings() -> None:
            blob = _PING * 80_000  # ~1 MB per sendall: the server always has more to read
            try:
                while not stop.is_set():
                    sock.sendall(blob)
            except ConnectionError:  # reset / broken pipe: the server closed it
                ended_by_server.set()
            except OSError:
                pass
            finally:
                done.set()

        def read_replies() -> None:
            try:
                while not stop.is_set() and sock.recv(1 << 20):
                    pass
            except OSError:
                pass

        session_id = await trio.to_thread.run_sync(handshake)
        conn = _conn_of(r, session_id)
        sender = threading.Thread(target=send_pings, daemon=True)
        reader = threading.Thread(target=read_replies, daemon=True)
        # If the connection never yielded, this task would not run again until the
        # sender stops on its own: after 3 * BOUND s, and then the test fails.
        watchdog = threading.Timer(3 * BOUND, stop.set)
        sender.start()
        reader.start()
        watchdog.start()
        try:
            await _until(lambda: conn.stats.packets_received > 1000, "pings being answered")
            conn.abort("test: abort an always-readable connection")
            await _until(lambda: conn.closed, "the aborted connection closed")
            await _until(done.is_set, "the sender saw the connection closed")
            assert ended_by_server.is_set() and not stop.is_set()
        finally:
            stop.set()
            watchdog.cancel()
            if not done.is_set():  # the test failed early: unblock the threads
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            await trio.to_thread.run_sync(sender.join, BOUND)
            await trio.to_thread.run_sync(reader.join, BOUND)
            sock.close()
        # The server serves on.
        s = await r.session()
        with trio.fail_after(BOUND):
            assert await s.create("/after") == 0
    assert r.error is None
