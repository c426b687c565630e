"""The standalone server end to end: a real subprocess, real sockets, real kazoo clients.

One server serves most tests (module fixture); tests that need their own
configuration or kill the server start their own.  Every wait is bounded by
kazoo's own timeouts or by threading events.
"""

from __future__ import annotations

import socket
import struct
import threading
import types
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    NoAuthError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
)
from kazoo.protocol.states import EventType, WatchedEvent
from kazoo.security import make_digest_acl

from tests.support.server import ServerProcess, four_letter_word, write_cfg

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("tq")
    cfg = write_cfg(d, extra="4lw.commands.whitelist=*\nextendedTypesEnabled=true\n"
                    "znode.container.checkIntervalMs=100\n"
                    "DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=\n")
    with ServerProcess(cfg) as srv:
        yield srv


def client(srv: ServerProcess, **kw) -> KazooClient:
    zk = KazooClient(srv.hosts, timeout=kw.pop("timeout", 5.0), **kw)
    zk.start(timeout=10)
    return zk


@pytest.fixture
def zk(server: ServerProcess):
    c = client(server)
    yield c
    c.stop()
    c.close()


def test_crud_and_stat(zk: KazooClient) -> None:
    assert zk.create("/crud", b"v1") == "/crud"
    data, st = zk.get("/crud")
    assert data == b"v1" and st.version == 0 and st.dataLength == 2 and st.czxid == st.mzxid
    st2 = zk.set("/crud", b"v22")
    assert st2.version == 1 and st2.mzxid > st.mzxid
    with pytest.raises(BadVersionError):
        zk.set("/crud", b"x", version=0)
    with pytest.raises(NodeExistsError):
        zk.create("/crud")
    zk.create("/crud/kid")
    with pytest.raises(NotEmptyError):
        zk.delete("/crud")
    assert zk.get_children("/crud") == ["kid"]
    kids, st3 = zk.get_children("/crud", include_data=True)
    assert kids == ["kid"] and st3.numChildren == 1
    zk.delete("/crud", recursive=True)
    assert zk.exists("/crud") is None
    with pytest.raises(NoNodeError):
        zk.get("/crud")


def test_sequential_and_ephemeral(server: ServerProcess, zk: KazooClient) -> None:
    zk.create("/seq")
    a = zk.create("/seq/n-", sequence=True)
    b = zk.create("/seq/n-", ephemeral=True, sequence=True)
    assert a == "/seq/n-0000000000" and b == "/seq/n-0000000001"
    assert zk.exists(b).ephemeralOwner == zk.client_id[0]
    other = client(server)
    try:
        assert sorted(other.get_children("/seq")) == ["n-0000000000", "n-0000000001"]
    finally:
        other.stop()
        other.close()


def test_close_removes_ephemerals(server: ServerProcess, zk: KazooClient) -> None:
    other = client(server)
    other.create("/eph-close", ephemeral=True)
    gone = threading.Event()
    assert zk.exists("/eph-close", watch=lambda e: gone.set()) is not None
    other.stop()
    other.close()
    assert gone.wait(10)
    assert zk.exists("/eph-close") is None


def test_multi_success_and_failure(zk: KazooClient) -> None:
    t = zk.transaction()
    t.create("/m1", b"a")
    t.create("/m1/c", b"b")
    t.set_data("/m1", b"c")
    res = t.commit()
    assert res[0] == "/m1" and res[1] == "/m1/c" and res[2].version == 1
    t = zk.transaction()
    t.create("/m2")
    t.delete("/missing")
    t.set_data("/m1", b"z")
    res = t.commit()
    assert isinstance(res[0], RolledBackError) and isinstance(res[1], NoNodeError)
    assert zk.exists("/m2") is None and zk.get("/m1")[0] == b"c"
    t = zk.transaction()
    t.check("/m1", 1)
    t.set_data("/m1", b"d")
    assert t.commit()[0] is True


def test_watches_one_shot(zk: KazooClient) -> None:
    zk.create("/w")
    events: list[WatchedEvent] = []
    got = threading.Event()

    def w(e: WatchedEvent) -> None:
        events.append(e)
        got.set()

    zk.get("/w", watch=w)
    zk.set("/w", b"1")
    assert got.wait(5)
    got.clear()
    zk.get_children("/w", watch=w)
    zk.create("/w/c")
    assert got.wait(5)
    got.clear()
    zk.exists("/w/none", watch=w)
    zk.create("/w/none")
    assert got.wait(5)
    assert [(e.type, e.path) for e in events] == [
        (EventType.CHANGED, "/w"), (EventType.CHILD, "/w"), (EventType.CREATED, "/w/none")]


class RawSession:
    """A bare client-port session over a socket (kazoo 2.11 has no addWatch)."""

    def __init__(self, port: int, timeout_ms: int = 4000) -> None:
        from trio_quorum.protocol.records import encode_connect_request

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(encode_connect_request(0, 0, timeout_ms, 0, b"\0" * 16, False))
        rsp = self.frame()
        _pv, self.timeout, self.session_id = struct.unpack(">iiq", rsp[:16])
        self.passwd = rsp[20:36]
        self.xid = 0

    def frame(self) -> bytes:
        def exact(n: int) -> bytes:
            buf = b""
            while len(buf) < n:
                d = self.sock.recv(n - len(buf))
                if not d:
                    raise ConnectionError("closed")
                buf += d
            return buf

        return exact(struct.unpack(">i", exact(4))[0])

    def call(self, opcode: int, request: object) -> tuple[int, list[tuple[int, str]]]:
        """Send one request; return (err, notifications that arrived before the reply)."""
        from trio_quorum.protocol.records import encode_request

        self.xid += 1
        self.sock.sendall(encode_request(self.xid, opcode, request))
        events = []
        while True:
            f = self.frame()
            xid, _zxid, err = struct.unpack(">iqi", f[:16])
            if xid == -1:
                etype, _state, n = struct.unpack(">iii", f[16:28])
                events.append((etype, f[28:28 + n].decode()))
            elif xid == self.xid:
                return err, events

    def close(self) -> None:
        self.sock.close()


def test_persistent_recursive_watch_and_remove(server: ServerProcess, zk: KazooClient) -> None:
    from trio_quorum.protocol.records import AddWatchRequest, ExistsRequest, RemoveWatchesRequest

    zk.create("/pw")
    raw = RawSession(server.port)
    try:
        assert raw.call(106, AddWatchRequest("/pw", 1))[0] == 0  # PERSISTENT_RECURSIVE
        zk.create("/pw/a")
        zk.create("/pw/a/b")
        zk.set("/pw/a/b", b"x")
        err, events = raw.call(3, ExistsRequest("/", False))
        assert err == 0
        assert events == [(1, "/pw/a"), (1, "/pw/a/b"), (3, "/pw/a/b")]  # never NodeChildrenChanged
        assert raw.call(18, RemoveWatchesRequest("/pw", 3))[0] == 0
        assert raw.call(18, RemoveWatchesRequest("/pw", 3))[0] == -121  # NOWATCHER
        zk.create("/pw/after")
        assert raw.call(3, ExistsRequest("/", False))[1] == []
    finally:
        raw.close()


def test_acls_digest_and_super(server: ServerProcess, zk: KazooClient) -> None:
    acl = make_digest_acl("alice", "secret", all=True)
    zk.add_auth("digest", "alice:secret")
    zk.create("/acl", b"private", acl=[acl])
    acls, _ = zk.get_acls("/acl")
    assert acls[0].id.scheme == "digest" and acls[0].id.id.startswith("alice:")
    anon = client(server)
    try:
        with pytest.raises(NoAuthError):
            anon.get("/acl")
        with pytest.raises(NoAuthError):
            anon.set("/acl", b"x")
    finally:
        anon.stop()
        anon.close()
    root = client(server, auth_data=[("digest", "super:test")])
    try:
        assert root.get("/acl")[0] == b"private"
        root.set_acls("/acl", [make_digest_acl("bob", "pw", read=True)])
    finally:
        root.stop()
        root.close()
    with pytest.raises(NoAuthError):
        zk.get("/acl")


def test_auth_failure_replies_authfailed_then_closes(server: ServerProcess, zk: KazooClient) -> None:
    from trio_quorum.protocol.records import AuthPacket, encode_request

    raw = RawSession(server.port)
    try:
        raw.sock.sendall(encode_request(-4, 100, AuthPacket(0, "nosuchscheme", b"x")))
        xid, _zxid, err = struct.unpack(">iqi", raw.frame()[:16])
        assert (xid, err) == (-4, -115)
        with pytest.raises(ConnectionError):
            raw.frame()
    finally:
        raw.close()
    assert zk.exists("/") is not None


def test_containers_and_ttl(server: ServerProcess, zk: KazooClient) -> None:
    from trio_quorum.protocol.data import OPEN_ACL_UNSAFE
    from trio_quorum.protocol.records import CreateRequest, CreateTTLRequest

    raw = RawSession(server.port)  # kazoo 2.11 cannot create containers or TTL nodes
    try:
        assert raw.call(19, CreateRequest("/ctr", b"", OPEN_ACL_UNSAFE, 4))[0] == 0
        zk.create("/ctr/kid")
        zk.delete("/ctr/kid")
        gone = threading.Event()
        assert zk.exists("/ctr", watch=lambda e: gone.set()) is not None
        assert gone.wait(10), "empty container not deleted by the container checker"
        assert raw.call(21, CreateTTLRequest("/ttl", b"x", OPEN_ACL_UNSAFE, 5, 200))[0] == 0
        assert zk.exists("/ttl").ephemeralOwner == 0  # TTL owners are hidden from clients
        ttl_gone = threading.Event()
        assert zk.exists("/ttl", watch=lambda e: ttl_gone.set()) is not None
        assert ttl_gone.wait(10), "expired TTL node not deleted"
        # A never-used container stays.
        assert raw.call(19, CreateRequest("/ctr2", b"", OPEN_ACL_UNSAFE, 4))[0] == 0
        assert zk.exists("/ctr2") is not None
    finally:
        raw.close()


def test_reconnect_same_session(server: ServerProcess, zk: KazooClient) -> None:
    zk.create("/reconn", ephemeral=True)
    sid, pw = zk.client_id
    other = KazooClient(server.hosts, timeout=5, client_id=(sid, pw))
    other.start(timeout=10)
    try:
        assert other.client_id[0] == sid
        assert other.exists("/reconn").ephemeralOwner == sid
    finally:
        other.stop()  # closes the session: the ephemeral goes
        other.close()


def test_session_expiry(server: ServerProcess, zk: KazooClient) -> None:
    from trio_quorum.protocol.data import OPEN_ACL_UNSAFE
    from trio_quorum.protocol.records import CreateRequest

    # A client that goes silent (no pings): its session must expire.
    raw = RawSession(server.port, timeout_ms=400)
    assert raw.timeout == 400
    assert raw.call(1, CreateRequest("/expiring", b"", OPEN_ACL_UNSAFE, 1))[0] == 0
    gone = threading.Event()
    assert zk.exists("/expiring", watch=lambda e: gone.set()) is not None
    assert gone.wait(15), "ephemeral of an expired session survived"
    assert zk.exists("/expiring") is None
    # The server closed the expired session's connection.
    with pytest.raises((ConnectionError, OSError)):
        raw.frame()
    raw.close()
    # Reconnecting with the expired (id, password): ConnectResponse(timeout 0, session 0) -> Expired.
    # On the wire: ZooKeeper's (timeout 0, session 0, zero password) answer, then close.
    from trio_quorum.protocol.records import decode_connect_response, encode_connect_request

    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(encode_connect_request(0, 0, 4000, raw.session_id, raw.passwd, False))
        rsp = decode_connect_response(RawSession.frame(types.SimpleNamespace(sock=s)))
        assert (rsp.timeout, rsp.session_id, rsp.passwd) == (0, 0, b"\0" * 16)
        assert s.recv(1) == b""
    # kazoo, handed the expired (id, password), is told Expired and carries on
    # with a brand-new session (kazoo starts in state LOST, so no listener fires).
    again = KazooClient(server.hosts, timeout=5, client_id=(raw.session_id, raw.passwd))
    try:
        again.start(timeout=10)
        assert again.client_id[0] not in (0, raw.session_id)
        assert again.exists("/") is not None
    finally:
        again.stop()
        again.close()
    assert server.wait_for_log(f"Expiring session 0x{raw.session_id:x}")


def test_four_letter_words(server: ServerProcess, zk: KazooClient) -> None:
    assert four_letter_word(server.port, "ruok") == "imok"
    srvr = four_letter_word(server.port, "srvr")
    assert srvr.startswith("Zookeeper version: 3.8.0-trio-quorum")
    assert "Mode: standalone\n" in srvr and "Node count: " in srvr and "Zxid: 0x" in srvr
    stat = four_letter_word(server.port, "stat")
    assert "Clients:\n /127.0.0.1:" in stat
    mntr = dict(line.split("\t", 1) for line in four_letter_word(server.port, "mntr").splitlines())
    assert mntr["zk_server_state"] == "standalone" and int(mntr["zk_znode_count"]) >= 5
    cons = four_letter_word(server.port, "cons")
    assert f"sid=0x{zk.client_id[0]:x}" in cons
    conf = four_letter_word(server.port, "conf")
    assert f"clientPort={server.port}\n" in conf and "tickTime=200\n" in conf
    assert four_letter_word(server.port, "isro") == "rw"
    zk.get("/zookeeper", watch=lambda e: None)
    assert "/zookeeper" in four_letter_word(server.port, "wchp")
    assert f"0x{zk.client_id[0]:x}" in four_letter_word(server.port, "wchc")
    assert four_letter_word(server.port, "envi").startswith("Environment:\nzookeeper.version=3.8.0")
    assert zk.server_version() == (3, 8, 0)
    assert four_letter_word(server.port, "srst") == "Server stats reset.\n"
    assert four_letter_word(server.port, "crst") == "Connection stats reset.\n"
    assert four_letter_word(server.port, "dump").startswith("SessionTracker dump:\n")
    assert four_letter_word(server.port, "dirs").startswith("datadir_size: ")


def test_malformed_frames_drop_only_that_connection(server: ServerProcess, zk: KazooClient) -> None:
    zk.create("/survivor", b"ok")
    for junk in (
        struct.pack(">i", 0x7FFFFFF0),                       # oversize length
        struct.pack(">i", -5),                               # negative length
        struct.pack(">i", 8) + b"\x00" * 8,                  # a ConnectRequest too short to decode
    ):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(junk)
            assert s.recv(100) == b""  # the server closed it
    assert zk.get("/survivor")[0] == b"ok"
    assert server.wait_for_log("Len error")


def test_bad_request_after_connect_drops_connection_not_session(server: ServerProcess, zk: KazooClient) -> None:
    from trio_quorum.protocol.records import encode_connect_request

    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(encode_connect_request(0, 0, 4000, 0, b"\0" * 16, False))
        hdr = s.recv(4)
        rsp = s.recv(struct.unpack(">i", hdr)[0])
        sid = struct.unpack(">iiq", rsp[:16])[2]
        assert sid != 0
        body = struct.pack(">ii", 5, 4) + struct.pack(">i", 1_000_000)  # getData with a lying path length
        s.sendall(struct.pack(">i", len(body)) + body)
        assert s.recv(100) == b""
    assert zk.exists("/") is not None
    assert f"0x{sid:x}" in four_letter_word(server.port, "dump")  # the session survived the dropped connection


def test_whitelist_and_max_client_cnxns(tmp_path: Path) -> None:
    cfg = write_cfg(tmp_path, extra="maxClientCnxns=2\n")
    with ServerProcess(cfg) as srv:
        assert four_letter_word(srv.port, "ruok") == "ruok is not executed because it is not in the whitelist.\n"
        assert four_letter_word(srv.port, "srvr").startswith("Zookeeper version:")
        a, b = client(srv), client(srv)
        try:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
                assert s.recv(10) == b""
            assert srv.wait_for_log(r"Too many connections from /127\.0\.0\.1 - max is 2")
            assert a.exists("/") is not None and b.exists("/") is not None
        finally:
            for c in (a, b):
                c.stop()
                c.close()


def test_sigterm_clean_and_sigkill_restart_keeps_data(tmp_path: Path) -> None:
    cfg = write_cfg(tmp_path)
    srv = ServerProcess(cfg).start()
    zk = client(srv)
    zk.create("/durable", b"kept")
    zk.stop()
    zk.close()
    port = srv.port
    srv.kill()
    cfg = write_cfg(tmp_path, port=port)
    srv2 = ServerProcess(cfg).start()  # same port, right after SIGKILL
    try:
        assert srv2.port == port
        zk = client(srv2)
        assert zk.get("/durable")[0] == b"kept"
        zk.stop()
        zk.close()
    finally:
        code = srv2.terminate()
    assert code == 0
    assert "storage closed" in srv2.log_text()
