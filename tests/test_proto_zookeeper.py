"""The client side of our codec against Apache ZooKeeper 3.8: every record it
sends is accepted and every reply decodes to what ZooKeeper means.

This checks our encoders/decoders against the reference server's bytes, not
against our own reading of the jute file.  Blocking sockets with timeouts on
127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from tests.support.apache_zk import apache_zookeeper
from tests.support.wire import WireClient
from trio_quorum.protocol import records as p
from trio_quorum.protocol.consts import Err, EventType, KeeperState, OpCode
from trio_quorum.protocol.data import OPEN_ACL_UNSAFE, ttl_owner
from trio_quorum.protocol.framing import FourLetterWord, FrameDecoder

pytestmark = pytest.mark.zookeeper


@pytest.fixture(scope="module")
def zk(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with apache_zookeeper(
        tmp_path_factory.mktemp("zk") / "data",
        java_opts=("-Dzookeeper.extendedTypesEnabled=true", "-Dzookeeper.forceSync=no"),
    ) as server:
        yield server


@pytest.mark.parametrize("read_only", [False, True, None])
def test_connect_read_only_byte_follows_the_client(zk: Any, read_only: bool | None) -> None:
    c = WireClient(zk.port)
    try:
        rsp = c.connect(read_only)
        assert rsp.session_id != 0 and rsp.timeout == 30000 and len(rsp.passwd) == 16
        # An old client (no byte) gets no byte back; otherwise the byte is there.
        assert rsp.read_only is (None if read_only is None else False)
        hdr, body = c.call(OpCode.ping, xid=-2)
        assert (hdr.xid, hdr.err, body) == (-2, 0, None)
    finally:
        c.close()


def test_records_against_apache_zookeeper(zk: Any) -> None:
    c = WireClient(zk.port)
    other = WireClient(zk.port)
    try:
        c.connect(False)
        other.connect(False)
        acl = OPEN_ACL_UNSAFE
        hdr, rsp = c.call(OpCode.create2, p.CreateRequest("/p", b"v", acl, 0))
        assert rsp.path == "/p" and rsp.stat.czxid == hdr.zxid and rsp.stat.dataLength == 1
        created = rsp.stat
        hdr, rsp = c.call(OpCode.getData, p.GetDataRequest("/p", True))
        assert rsp == p.GetDataResponse(b"v", created)
        hdr, rsp = c.call(OpCode.exists, p.ExistsRequest("/nope", False))
        assert hdr.err == Err.NONODE and rsp is None
        hdr, rsp = c.call(OpCode.create, p.CreateRequest("/p/c", b"", acl, 0))
        assert rsp == p.CreateResponse("/p/c")
        # a change by another session fires our data watch (3.8: zxid -1)
        hdr, rsp = other.call(OpCode.setData, p.SetDataRequest("/p", b"w2", 0))
        assert rsp.stat.version == 1 and rsp.stat.mzxid == hdr.zxid
        hdr, rsp = c.call(OpCode.sync, p.SyncRequest("/p"))
        assert rsp == p.SyncResponse("/p")
        assert (-1, p.WatcherEvent(EventType.NodeDataChanged, KeeperState.SyncConnected, "/p")) in (
            c.events
        )

        # multi: a failing op rolls back the ones before it
        hdr, rsp = c.call(
            OpCode.multi,
            p.MultiRequest(
                (
                    (OpCode.create, p.CreateRequest("/p/a", b"", acl, 0)),
                    (OpCode.setData, p.SetDataRequest("/p", b"x", 99)),
                    (OpCode.delete, p.DeleteRequest("/p/c", -1)),
                )
            ),
        )
        assert hdr.err == 0
        assert rsp.results == ((-1, 0), (-1, Err.BADVERSION), (-1, Err.RUNTIMEINCONSISTENCY))
        hdr, rsp = c.call(
            OpCode.multi,
            p.MultiRequest(
                (
                    (OpCode.create2, p.CreateRequest("/p/b", b"bb", acl, 2)),
                    (OpCode.check, p.CheckVersionRequest("/p", 1)),
                    (OpCode.setData, p.SetDataRequest("/p/c", b"cc", 0)),
                    (OpCode.delete, p.DeleteRequest("/p/c", 1)),
                )
            ),
        )
        (t0, r0), (t1, r1), (t2, r2), (t3, r3) = rsp.results
        # ZooKeeper 3.8 answers a create2 op inside a multi as a plain create
        # result (type 1, path only, no Stat): the sub-txn is a CreateTxn.
        assert (t0, r0) == (OpCode.create, p.CreateResponse("/p/b0000000001"))
        assert (t1, r1, t3, r3) == (OpCode.check, None, OpCode.delete, None)
        assert t2 == OpCode.setData and r2.stat.version == 1 and r2.stat.mzxid == hdr.zxid
        hdr, rsp = c.call(
            OpCode.multiRead,
            p.MultiRequest(
                (
                    (OpCode.getData, p.GetDataRequest("/p", False)),
                    (OpCode.getChildren, p.GetChildrenRequest("/nope", False)),
                    (OpCode.getChildren, p.GetChildrenRequest("/p", False)),
                )
            ),
        )
        (t0, r0), e1, (t2, r2) = rsp.results
        assert t0 == OpCode.getData and r0.data == b"w2" and e1 == (-1, Err.NONODE)
        assert r2 == p.GetChildrenResponse(("b0000000001",))

        hdr, rsp = c.call(OpCode.getChildren2, p.GetChildren2Request("/p", False))
        assert rsp.children == ("b0000000001",) and rsp.stat.numChildren == 1
        hdr, rsp = c.call(OpCode.getACL, p.GetACLRequest("/p"))
        assert rsp.acl == acl and rsp.stat.aversion == 0
        hdr, rsp = c.call(OpCode.setACL, p.SetACLRequest("/p", acl, 0))
        assert rsp.stat.aversion == 1
        hdr, rsp = c.call(OpCode.create2, p.CreateRequest("/p/e", b"", acl, 1))
        assert rsp.stat.ephemeralOwner != 0
        hdr, rsp = c.call(OpCode.getEphemerals, p.GetEphemeralsRequest("/p"))
        assert rsp == p.GetEphemeralsResponse(("/p/e",))
        hdr, rsp = c.call(OpCode.getAllChildrenNumber, p.GetAllChildrenNumberRequest("/p"))
        assert rsp == p.GetAllChildrenNumberResponse(2)
        hdr, rsp = c.call(OpCode.createTTL, p.CreateTTLRequest("/ttl", b"", acl, 5, 60000))
        # Clients never see the TTL/container marker in ephemeralOwner
        # (DataNode.copyStat -> getClientEphemeralOwner): it reads 0.
        assert rsp.path == "/ttl" and rsp.stat.ephemeralOwner == 0 != ttl_owner(60000)
        hdr, rsp = c.call(OpCode.exists, p.ExistsRequest("/ttl", False))
        assert rsp.stat.ephemeralOwner == 0
        hdr, rsp = c.call(OpCode.createContainer, p.CreateRequest("/box", b"", acl, 4))
        assert rsp.path == "/box" and rsp.stat.ephemeralOwner == 0

        hdr, rsp = c.call(OpCode.addWatch, p.AddWatchRequest("/p", 1))
        assert rsp == p.ErrorResponse(0)
        hdr, rsp = c.call(OpCode.checkWatches, p.CheckWatchesRequest("/p", 3))
        assert hdr.err == 0 and rsp is None
        hdr, rsp = c.call(OpCode.removeWatches, p.RemoveWatchesRequest("/p", 3))
        assert hdr.err == 0
        hdr, rsp = c.call(OpCode.removeWatches, p.RemoveWatchesRequest("/p", 3))
        assert hdr.err == Err.NOWATCHER

        hdr, _ = c.call(OpCode.auth, p.AuthPacket(0, "digest", b"u:pw"), xid=-4)
        assert (hdr.xid, hdr.err) == (-4, 0)
        hdr, rsp = c.call(OpCode.whoAmI)
        assert ("digest", "u") in rsp.client_info and ("ip", "127.0.0.1") in rsp.client_info

        hdr, rsp = c.call(OpCode.delete, p.DeleteRequest("/p/b0000000001", -1))
        assert hdr.err == 0 and rsp is None
        hdr, rsp = c.call(OpCode.closeSession)
        assert hdr.err == 0
    finally:
        c.close()
        other.close()


def test_set_watches_replay(zk: Any) -> None:
    c = WireClient(zk.port)
    try:
        c.connect(False)
        hdr, rsp = c.call(OpCode.create, p.CreateRequest("/sw", b"", OPEN_ACL_UNSAFE, 0))
        for op, sw in (
            (OpCode.setWatches, p.SetWatches(hdr.zxid, ("/sw",), ("/gone",), ())),
            (OpCode.setWatches2, p.SetWatches(hdr.zxid, (), (), (), ("/sw",), ())),
        ):
            h, body = c.call(op, sw, xid=-8)
            assert (h.xid, h.err, body) == (-8, 0, None)
        c.call(OpCode.create, p.CreateRequest("/gone", b"", OPEN_ACL_UNSAFE, 0))
        c.call(OpCode.sync, p.SyncRequest("/"))
        events = {(e.type, e.path) for _, e in c.events}
        assert (EventType.NodeCreated, "/gone") in events
    finally:
        c.close()


def test_java_client_reads_our_server_side_encoding(tmp_path: Any) -> None:
    """zkCli (ZooKeeperMain) against a one-connection fake server built from
    our server-side codec: the Java client must accept our ConnectResponse,
    GetChildrenResponse, GetDataResponse, and its requests must decode."""
    import threading

    from tests.support.apache_zk import run_zk_tool
    from trio_quorum.protocol.data import STAT_STRUCT, Stat

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(60)
    port = listener.getsockname()[1]
    seen: list[Any] = []
    packed = STAT_STRUCT.pack(*Stat(5, 6, 1700000000000, 1700000000001, 2, 0, 0, 0, 5, 0, 5))

    def serve() -> None:
        for _ in range(2):
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            serve_one(conn)

    def serve_one(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            dec = FrameDecoder()
            first = True
            for _ in range(1000):
                data = conn.recv(65536)
                if not data:
                    return
                dec.feed(data)
                for payload in dec.frames():
                    assert not isinstance(payload, FourLetterWord)
                    if first:
                        first = False
                        req = p.decode_connect_request(payload)
                        seen.append(req)
                        conn.sendall(
                            p.encode_connect_response(
                                0, req.timeout, 0x1234, b"s" * 16, req.read_only
                            )
                        )
                        continue
                    xid, op, rec = p.decode_request_frame(payload)
                    seen.append((op, rec))
                    if op == OpCode.getChildren:
                        body: Any = p.GetChildrenResponse(("alpha", "beta"))
                    elif op == OpCode.getChildren2:
                        body = p.GetChildren2Response(("alpha", "beta"), packed)
                    elif op == OpCode.getData:
                        body = p.GetDataResponse(b"hello", packed)
                    else:
                        body = None
                    conn.sendall(p.encode_reply(xid, 9, 0, body))
                    if op == OpCode.closeSession:
                        return

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        main = ("org.apache.zookeeper.ZooKeeperMain", "-server", f"127.0.0.1:{port}")
        ls = run_zk_tool(*main, "ls", "/")
        get = run_zk_tool(*main, "get", "-s", "/x")
    finally:
        listener.close()
        t.join(30)
    assert "[alpha, beta]" in ls.stdout, ls.stdout + ls.stderr
    connect = seen[0]
    assert isinstance(connect, p.ConnectRequest) and connect.read_only is False
    assert (OpCode.getChildren2, p.GetChildren2Request("/", False)) in seen
    assert (OpCode.getData, p.GetDataRequest("/x", False)) in seen
    out = get.stdout
    assert "hello" in out and "mZxid = 0x6" in out and "dataVersion = 2" in out, out + get.stderr
