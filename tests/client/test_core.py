"""The sans-IO client core and the connect-string parser, without a server."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_quorum.client.core import (
    ClientCore,
    ClientProtocolError,
    Notification,
    Pending,
    SessionState,
    WatchKind,
)
from trio_quorum.client.hosts import parse_connect_string
from trio_quorum.protocol import records as p
from trio_quorum.protocol.consts import Err, EventType, OpCode
from trio_quorum.protocol.data import Stat

STAT = Stat(1, 2, 3, 4, 0, 0, 0, 0, 1, 0, 5)


def connected(watches: dict[WatchKind, list[str]] | None = None) -> ClientCore:
    core = ClientCore(10_000)
    for kind, paths in (watches or {}).items():
        for path in paths:
            core.add_local_watch(kind, path, object())
    core.connected(p.encode_connect_response(0, 6000, 0x1234, b"p" * 16)[4:])
    return core


def reply(xid: int, zxid: int, err: int, body: object = None) -> bytes:
    return p.encode_reply(xid, zxid, err, body)[4:]


def test_connect_then_setwatches_with_last_zxid_first() -> None:
    core = connected({WatchKind.DATA: ["/a"], WatchKind.PERSISTENT_RECURSIVE: ["/r"]})
    assert core.state is SessionState.CONNECTED and core.session_id == 0x1234
    frame = core.take_outbox()
    hdr = p.decode_request_header(frame[4:])
    assert (hdr.xid, hdr.type) == (-8, OpCode.setWatches2)
    sw = p.decode_request(OpCode.setWatches2, frame[4:], offset=8)
    assert sw.data_watches == ("/a",) and sw.persistent_recursive_watches == ("/r",)
    # its reply is matched in order, and completes nobody
    assert core.receive([reply(-8, 0, 0)]) == []


def test_replies_match_in_order_and_last_zxid_grows() -> None:
    core = connected()
    a = core.submit(OpCode.getData, p.GetDataRequest("/x", False), path="/x")
    b = core.submit(OpCode.exists, p.ExistsRequest("/y", False), path="/y")
    out = core.receive([reply(a.xid, 7, 0, p.GetDataResponse(b"d", STAT)), reply(b.xid, 5, Err.NONODE)])
    assert out == [a, b] and a.result.data == b"d" and b.err == Err.NONODE
    assert core.last_zxid == 7
    assert core.connect_frame() == p.encode_connect_request(0, 7, 10_000, 0x1234, b"p" * 16, False)


def test_out_of_order_xid_is_a_protocol_error() -> None:
    core = connected()
    core.submit(OpCode.sync, p.SyncRequest("/"), path="/")
    second = core.submit(OpCode.sync, p.SyncRequest("/"), path="/")
    with pytest.raises(ClientProtocolError):
        core.receive([reply(second.xid, 1, 0, p.SyncResponse("/"))])


def test_connection_lost_fails_pending_and_expiry_is_final() -> None:
    core = connected()
    a = core.submit(OpCode.sync, p.SyncRequest("/"), path="/")
    assert core.connection_lost() == [a] and a.err == Err.CONNECTIONLOSS
    assert core.state is SessionState.SUSPENDED
    from trio_quorum.client.errors import SessionExpiredError

    with pytest.raises(SessionExpiredError):
        core.connected(p.encode_connect_response(0, 0, 0, b"\0" * 16)[4:])
    assert core.state is SessionState.EXPIRED


def test_watch_registration_and_routing() -> None:
    core = connected()
    w_exist, w_data, w_child, w_rec = object(), object(), object(), object()
    e = core.submit(OpCode.exists, p.ExistsRequest("/n", True), path="/n", watch=(WatchKind.EXIST, w_exist))
    d = core.submit(OpCode.getData, p.GetDataRequest("/m", True), path="/m", watch=(WatchKind.DATA, w_data))
    c = core.submit(OpCode.getChildren, p.GetChildrenRequest("/", True), path="/", watch=(WatchKind.CHILD, w_child))
    core.add_local_watch(WatchKind.PERSISTENT_RECURSIVE, "/", w_rec)
    core.receive([reply(e.xid, 1, Err.NONODE), reply(d.xid, 1, Err.NONODE),
                  reply(c.xid, 1, 0, p.GetChildrenResponse(()))])
    assert not core.has_watches(WatchKind.DATA, "/m")  # a failed getData registers nothing
    assert core.has_watches(WatchKind.EXIST, "/n")

    def event(t: EventType, path: str) -> list[Notification | Pending | object]:
        return list(core.receive([p.encode_notification(t, 3, path)[4:]]))

    (n1,) = event(EventType.NodeCreated, "/n")
    assert isinstance(n1, Notification) and set(n1.watchers) == {w_exist, w_rec}
    (n2,) = event(EventType.NodeChildrenChanged, "/")
    assert isinstance(n2, Notification) and n2.watchers == (w_child,)  # not to recursive watches
    (n3,) = event(EventType.NodeCreated, "/n")
    assert isinstance(n3, Notification) and n3.watchers == (w_rec,)  # the one-shot was consumed
    assert core.remove_watcher(w_rec) == [(WatchKind.PERSISTENT_RECURSIVE, "/", True)]
    assert event(EventType.NodeDeleted, "/n") == []


@given(st.integers(min_value=1, max_value=2**31 - 1))
def test_xids_stay_positive_and_wrap(start: int) -> None:
    core = ClientCore(1000)
    core._xid = start
    for _ in range(3):
        x = core.next_xid()
        assert 1 <= x <= 2**31 - 1


def test_connect_strings() -> None:
    cs = parse_connect_string("a:1,b,[::1]:3/app/x")
    assert cs.hosts == (("a", 1), ("b", 2181), ("::1", 3)) and cs.chroot == "/app/x"
    assert parse_connect_string("h/").chroot == ""
    for bad in ("", "h:x", "h/a/", "h/a//b", "h/../a"):
        with pytest.raises(ValueError):
            parse_connect_string(bad)
