"""Server-level fuzz test: hostile bytes on fresh connections harm no one else.

A kazoo session is connected and working: it is authenticated (digest), owns
an ephemeral node and a guarded subtree whose ACL only it can write, and holds
a data watch.  Hypothesis generates byte streams, sent on fresh connections:

* arbitrary bytes;
* real request streams encoded with ``trio_quorum.protocol.records`` (a ConnectRequest,
  sometimes one naming the kazoo session with a wrong password, followed by
  real requests of many kinds, four-letter words) and then mutated: bytes
  flipped, truncated, garbage inserted or appended, a frame length replaced by
  a wrong, negative or huge one, an opcode replaced by an arbitrary int.

After each example: the server process is alive, the connection was closed or
answered (bounded wait), the kazoo session never changed state (no
SUSPENDED/LOST: its connection was not touched), the guarded subtree is
byte-for-byte and Stat-for-Stat what it was, the ephemeral node is still owned
by the kazoo session, and a write + read + watch notification on that session
succeed.

Also here: a frame larger than ``jute.maxbuffer`` drops that connection only
(first frame, or after the session is established; kazoo's own session
survives its oversize request and reconnects to the same session).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss
from kazoo.protocol.states import KazooState
from kazoo.security import OPEN_ACL_UNSAFE as KAZOO_OPEN_ACL
from kazoo.security import make_digest_acl

from tests.support.server import ServerProcess, four_letter_word, write_cfg
from trio_quorum.protocol import records as p
from trio_quorum.protocol.consts import OpCode
from trio_quorum.protocol.data import ACL, OPEN_ACL_UNSAFE, Id

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MAX_BUFFER = 64 * 1024
GUARD = "/guarded"
_OWNER_ACL = [make_digest_acl("fuzz", "secret", all=True)]


class Guarded:
    """The kazoo session under attack and what it expects the server to hold."""

    def __init__(self, srv: ServerProcess) -> None:
        self.srv = srv
        self.states: list[KazooState] = []
        self.zk = KazooClient(srv.hosts, timeout=10.0, auth_data=[("digest", "fuzz:secret")])
        self.zk.add_listener(self.states.append)
        self.zk.start(timeout=10)
        assert self.states == [KazooState.CONNECTED]
        self.states.clear()
        self.session_id = self.zk.client_id[0]
        self.counter = 0
        self.last_set_zxid = 0
        self.zk.create(GUARD, b"root", acl=_OWNER_ACL)
        for name in ("a", "b", "canary"):
            self.zk.create(f"{GUARD}/{name}", name.encode(), acl=_OWNER_ACL)
        self.zk.create(f"{GUARD}/eph", b"mine", acl=_OWNER_ACL, ephemeral=True)
        self.zk.create("/fuzzzone", b"", acl=KAZOO_OPEN_ACL)

    def snapshot(self) -> dict[str, tuple[bytes, Any]]:
        out: dict[str, tuple[bytes, Any]] = {}
        stack = [GUARD]
        while stack:
            path = stack.pop()
            data, stat = self.zk.get(path)
            out[path] = (data, stat)
            stack.extend(f"{path}/{c}" for c in self.zk.get_children(path))
        return out

    def unchanged_since(self, before: dict[str, tuple[bytes, Any]]) -> None:
        """The guarded subtree equals ``before``, except for the canary this session writes."""
        after = self.snapshot()
        canary = f"{GUARD}/canary"
        data, stat = after.pop(canary)
        assert (data, stat.version) == (str(self.counter).encode(), self.counter), (data, stat)
        assert stat.mzxid == self.last_set_zxid, "the canary was written by someone else"
        before = {k: v for k, v in before.items() if k != canary}
        assert after == before, {
            k: (before.get(k), after.get(k))
            for k in set(before) | set(after)
            if before.get(k) != after.get(k)
        }

    def still_works(self) -> None:
        """A watch, a write, its notification and a read on the guarded session."""
        fired = threading.Event()
        self.zk.get(f"{GUARD}/canary", watch=lambda ev: fired.set())
        self.counter += 1
        value = str(self.counter).encode()
        self.last_set_zxid = self.zk.set(f"{GUARD}/canary", value).mzxid
        assert self.zk.get(f"{GUARD}/canary")[0] == value
        assert fired.wait(10), "the data watch did not fire"
        eph = self.zk.exists(f"{GUARD}/eph")
        assert eph is not None and eph.ephemeralOwner == self.session_id
        assert self.zk.client_id[0] == self.session_id
        assert self.states == [], f"kazoo session changed state: {self.states}"

    def close(self) -> None:
        self.zk.stop()
        self.zk.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    d = tmp_path_factory.mktemp("fuzz")
    cfg = write_cfg(
        d,
        extra=f"4lw.commands.whitelist=*\nextendedTypesEnabled=true\njute.maxbuffer={MAX_BUFFER}\n"
        "maxClientCnxns=0\n",
    )
    with ServerProcess(cfg) as srv:
        yield srv


@pytest.fixture(scope="module")
def guarded(server: ServerProcess) -> Iterator[Guarded]:
    g = Guarded(server)
    yield g
    g.close()


def exchange(
    port: int,
    data: bytes,
    *,
    chunks: int = 1,
    while_open: Callable[[], None] | None = None,
    timeout: float = 10.0,
) -> bytes:
    """Send ``data`` on a fresh connection, then half-close and read until the server closes (bounded).

    ``while_open`` runs between the two, with the hostile connection still open: the
    server meanwhile gets to answer what it decoded (it drops pending replies once it
    reads EOF, as ZooKeeper does), and the guarded session is checked while the
    hostile one is live.
    """
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        step = max(1, len(data) // chunks)
        try:
            for i in range(0, len(data), step):
                s.sendall(data[i : i + step])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server already dropped us: an allowed answer
        if while_open is not None:
            while_open()
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            out.append(b)
        else:
            raise AssertionError("the server neither answered nor closed the connection")
    return b"".join(out)


# ------------------------------------------------------------------ strategies

_WORLD = (ACL(31, Id("world", "anyone")),)
_DIGEST_WRONG = (ACL(31, Id("digest", "fuzz:wrongwrongwrongwrongwrong=")),)


def _requests() -> list[tuple[int, object]]:
    g = GUARD
    return [
        (OpCode.create, p.CreateRequest("/fuzzzone/n", b"v", OPEN_ACL_UNSAFE, 0)),
        (OpCode.create, p.CreateRequest("/fuzzzone/s-", b"v", OPEN_ACL_UNSAFE, 3)),
        (OpCode.create2, p.CreateRequest("/fuzzzone/e", b"v", _WORLD, 1)),
        (OpCode.createContainer, p.CreateRequest("/fuzzzone/c", b"", OPEN_ACL_UNSAFE, 4)),
        (OpCode.createTTL, p.CreateTTLRequest("/fuzzzone/t", b"", OPEN_ACL_UNSAFE, 5, 1000)),
        (OpCode.create, p.CreateRequest(f"{g}/intruder", b"x", _DIGEST_WRONG, 0)),
        (OpCode.setData, p.SetDataRequest(f"{g}/canary", b"pwned", -1)),
        (OpCode.setData, p.SetDataRequest("/fuzzzone/n", b"w", -1)),
        (OpCode.delete, p.DeleteRequest(f"{g}/eph", -1)),
        (OpCode.delete, p.DeleteRequest(f"{g}/a", -1)),
        (OpCode.setACL, p.SetACLRequest(f"{g}/b", _WORLD, -1)),
        (OpCode.getData, p.GetDataRequest(f"{g}/canary", True)),
        (OpCode.exists, p.ExistsRequest(f"{g}/eph", True)),
        (OpCode.getChildren2, p.GetChildren2Request(g, True)),
        (OpCode.getACL, p.GetACLRequest(g)),
        (OpCode.sync, p.SyncRequest("/")),
        (OpCode.check, p.CheckVersionRequest(f"{g}/a", 0)),
        (
            OpCode.multi,
            p.MultiRequest(
                (
                    (OpCode.create, p.CreateRequest("/fuzzzone/m", b"", OPEN_ACL_UNSAFE, 0)),
                    (OpCode.setData, p.SetDataRequest(f"{g}/a", b"pwned", -1)),
                    (OpCode.delete, p.DeleteRequest(f"{g}/b", -1)),
                )
            ),
        ),
        (OpCode.multiRead, p.MultiRequest(((OpCode.getData, p.GetDataRequest(f"{g}/a", False)),))),
        (OpCode.addWatch, p.AddWatchRequest("/", 1)),
        (OpCode.removeWatches, p.RemoveWatchesRequest(f"{g}/canary", 1)),
        (OpCode.checkWatches, p.CheckWatchesRequest(f"{g}/canary", 1)),
        (OpCode.setWatches, p.SetWatches(0, (f"{g}/canary",), (g,), (g,))),
        (OpCode.getEphemerals, p.GetEphemeralsRequest("/")),
        (OpCode.getAllChildrenNumber, p.GetAllChildrenNumberRequest("/")),
        (OpCode.reconfig, p.ReconfigRequest("", "", "", -1)),
        (OpCode.sasl, p.GetSASLRequest(b"\x60\x00")),
        (OpCode.ping, None),
        (OpCode.whoAmI, None),
        (OpCode.closeSession, None),
    ]


_REQUESTS = _requests()


@st.composite
def valid_stream(draw: st.DrawFn, kazoo_session: int) -> tuple[bytes, list[int], list[int]]:
    """A real request stream; returns the bytes, the offsets of frame lengths and of opcodes."""
    first = draw(
        st.sampled_from(["new", "kazoo-wrong-password", "no-readonly-byte", "4lw", "huge-timeout"])
    )
    frames: list[bytes] = []
    if first == "4lw":
        word = draw(
            st.sampled_from(
                ["ruok", "srvr", "stat", "mntr", "cons", "dump", "wchc", "wchp", "envi", "conf"]
            )
        )
        frames.append(word.encode())
    elif first == "kazoo-wrong-password":
        pw = draw(st.binary(min_size=16, max_size=16))
        frames.append(p.encode_connect_request(0, 0, 10000, kazoo_session, pw, False))
    elif first == "no-readonly-byte":
        frames.append(p.encode_connect_request(0, 0, 5000, 0, b"\0" * 16, None))
    elif first == "huge-timeout":
        frames.append(p.encode_connect_request(0, 0, 0x7FFFFFFF, 0, b"\0" * 16, True))
    else:
        frames.append(p.encode_connect_request(0, 0, 4000, 0, b"\0" * 16, False))
    if draw(st.booleans()):
        frames.append(p.encode_request(-4, OpCode.auth, p.AuthPacket(0, "digest", b"fuzz:wrong")))
    picks = draw(st.lists(st.sampled_from(range(len(_REQUESTS))), min_size=1, max_size=8))
    for i, k in enumerate(picks, start=1):
        op, req = _REQUESTS[k]
        frames.append(p.encode_request(i, op, req))
    lengths, opcodes, off = [], [], 0
    for j, f in enumerate(frames):
        if j > 0 or first != "4lw":
            lengths.append(off)
        if j > 0:
            opcodes.append(off + 8)
        off += len(f)
    return b"".join(frames), lengths, opcodes


_INT32 = st.one_of(
    st.integers(-(2**31), 2**31 - 1),
    st.sampled_from(
        [0, 1, 3, 4, 7, 8, -1, -(2**31), 2**31 - 1, MAX_BUFFER, MAX_BUFFER + 1, 0xFFFFF + 1]
    ),
)


@st.composite
def mutated_stream(draw: st.DrawFn, kazoo_session: int) -> bytes:
    data, lengths, opcodes = draw(valid_stream(kazoo_session))
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(["flip", "truncate", "length", "opcode", "append", "insert", "none"])
        )
        if kind == "flip" and buf:
            i = draw(st.integers(0, len(buf) - 1))
            buf[i] ^= draw(st.integers(1, 255))
        elif kind == "truncate" and buf:
            del buf[draw(st.integers(0, len(buf) - 1)) :]
        elif kind == "length" and lengths:
            at = draw(st.sampled_from(lengths))
            if at + 4 <= len(buf):
                struct.pack_into(">i", buf, at, draw(_INT32))
        elif kind == "opcode" and opcodes:
            at = draw(st.sampled_from(opcodes))
            if at + 4 <= len(buf):
                struct.pack_into(">i", buf, at, draw(_INT32))
        elif kind == "append":
            buf += draw(st.binary(min_size=1, max_size=64))
        elif kind == "insert":
            i = draw(st.integers(0, len(buf)))
            buf[i:i] = draw(st.binary(min_size=1, max_size=16))
    return bytes(buf)


def _hostile(kazoo_session: int) -> st.SearchStrategy[tuple[bytes, int]]:
    stream = st.one_of(
        st.binary(max_size=512),
        st.binary(min_size=1, max_size=512).map(lambda b: struct.pack(">i", len(b)) + b),
        valid_stream(kazoo_session).map(lambda t: t[0]),
        mutated_stream(kazoo_session),
        mutated_stream(kazoo_session),
    )
    return st.tuples(stream, st.integers(1, 3))


def _fuzz_once(server: ServerProcess, guarded: Guarded, data: bytes, chunks: int) -> int:
    """One hostile connection; returns how many reply frames it got past the ConnectResponse."""
    before = guarded.snapshot()
    answer = exchange(server.port, data, chunks=chunks, while_open=guarded.still_works)
    assert server.proc is not None and server.proc.poll() is None, server.log_text()[-3000:]
    guarded.unchanged_since(before)
    guarded.still_works()
    return _count_frames(answer) - 1 if answer[:4] != b"Zook" else 0


def _count_frames(answer: bytes) -> int:
    n, off = 0, 0
    while off + 4 <= len(answer):
        (size,) = struct.unpack_from(">i", answer, off)
        if size < 0:
            break
        off += 4 + size
        n += 1
    return n


def _run_fuzz(
    server: ServerProcess, guarded: Guarded, examples: int, derandomize: bool
) -> tuple[int, int]:
    """Run the fuzz; returns (examples run, examples answered past their ConnectResponse)."""
    ran = answered = 0

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=derandomize,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(_hostile(guarded.session_id))
    def fuzz(case: tuple[bytes, int]) -> None:
        nonlocal ran, answered
        ran += 1
        answered += _fuzz_once(server, guarded, *case) > 0

    fuzz()
    return ran, answered


def test_hostile_connections_harm_no_other_session(server: ServerProcess, guarded: Guarded) -> None:
    ran, answered = _run_fuzz(server, guarded, 200, derandomize=True)
    assert ran >= 200
    # the examples reach past the handshake: many got replies to requests
    assert answered >= 20, answered
    # the server saw hostile input and said so, and kept serving
    assert server.wait_for_log("closing connection from")
    # ... and no actor crashed or logged an error on the way
    bad = [
        line
        for line in server.stderr_lines
        if " ERROR " in line or " CRITICAL " in line or "Traceback" in line
    ]
    assert not bad, "".join(bad[:20])


@pytest.mark.slow
def test_hostile_connections_long(server: ServerProcess, guarded: Guarded) -> None:
    _run_fuzz(server, guarded, 3000, derandomize=False)


# ------------------------------------------------------------------ oversize


def test_oversize_first_frame_drops_that_connection_only(
    server: ServerProcess, guarded: Guarded
) -> None:
    before = guarded.snapshot()
    body = b"\0" * (MAX_BUFFER + 1)
    assert exchange(server.port, struct.pack(">i", len(body)) + body) == b""
    assert server.wait_for_log("Len error")
    assert guarded.snapshot() == before
    guarded.still_works()


def test_oversize_request_in_session_drops_connection_not_session(
    server: ServerProcess, guarded: Guarded
) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(p.encode_connect_request(0, 0, 10000, 0, b"\0" * 16, False))
        rsp = _recv_frame(s)
        sid = p.decode_connect_response(rsp).session_id
        assert sid != 0
        # a frame of exactly jute.maxbuffer is accepted: its setData is answered
        fit = p.encode_request(
            1, OpCode.create, p.CreateRequest("/fuzzzone/big", b"", OPEN_ACL_UNSAFE, 0)
        )
        s.sendall(fit)
        assert p.decode_reply_header(_recv_frame(s)).err in (0, -110)
        head = p.encode_request(2, OpCode.setData, p.SetDataRequest("/fuzzzone/big", b"", -1))
        pad = MAX_BUFFER - (len(head) - 4)
        exact = p.encode_request(
            2, OpCode.setData, p.SetDataRequest("/fuzzzone/big", b"y" * pad, -1)
        )
        assert len(exact) - 4 == MAX_BUFFER
        s.sendall(exact)
        hdr = p.decode_reply_header(_recv_frame(s))
        assert hdr.xid == 2 and hdr.err == 0
        # one byte more: that connection is dropped, nothing applied
        over = p.encode_request(
            3, OpCode.setData, p.SetDataRequest("/fuzzzone/big", b"z" * (pad + 1), -1)
        )
        s.sendall(over)
        rest = b""
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            rest += b
        assert rest == b""
    data, stat = guarded.zk.get("/fuzzzone/big")
    assert data == b"y" * pad and stat.version == 1
    # the session outlived its connection (ZooKeeper's rule: only close or expiry end it)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"cons")
        cons = b""
        while b := s.recv(65536):
            cons += b
    assert f"0x{sid:x}".encode() not in cons  # its connection is gone ...
    assert f"0x{sid:x}" in four_letter_word(server.port, "dump")  # ... its session is not
    guarded.still_works()


def test_kazoo_oversize_set_loses_only_its_connection(
    server: ServerProcess, guarded: Guarded
) -> None:
    zk = KazooClient(server.hosts, timeout=10.0)
    states: list[KazooState] = []
    zk.add_listener(states.append)
    zk.start(timeout=10)
    try:
        zk.create("/fuzzzone/kz", b"small")
        sid = zk.client_id[0]
        with pytest.raises(ConnectionLoss):
            zk.set("/fuzzzone/kz", b"q" * (MAX_BUFFER + 10))
        # kazoo reconnects to the same session; the oversize write was not applied
        assert zk.get("/fuzzzone/kz")[0] == b"small"
        assert zk.client_id[0] == sid
        assert KazooState.SUSPENDED in states and KazooState.LOST not in states
    finally:
        zk.stop()
        zk.close()
    guarded.still_works()


def _recv_frame(s: socket.socket) -> bytes:
    head = b""
    while len(head) < 4:
        b = s.recv(4 - len(head))
        assert b, "connection closed"
        head += b
    (n,) = struct.unpack(">i", head)
    body = b""
    while len(body) < n:
        b = s.recv(n - len(body))
        assert b, "connection closed"
        body += b
    return body
