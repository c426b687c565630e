"""Client-port codec: round trips, kazoo byte compatibility, hostile input."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kazoo.protocol import serialization as ks
from kazoo.security import ACL as KACL
from kazoo.security import Id as KId

from trio_quorum.protocol import records as p
from trio_quorum.protocol.consts import Err, OpCode
from trio_quorum.protocol.data import ACL, STAT_STRUCT, Id, Stat
from trio_quorum.protocol.framing import FrameDecoder
from trio_quorum.protocol.jute import JuteError

I32 = st.integers(-(2**31), 2**31 - 1)
I64 = st.integers(-(2**63), 2**63 - 1)
TEXT = st.text(max_size=20)
NONEMPTY = st.text(min_size=1, max_size=20)
DATA = st.binary(max_size=40)
ACLS = st.lists(st.builds(ACL, I32, st.builds(Id, TEXT, TEXT)), max_size=3).map(tuple)
STRS = st.lists(TEXT, max_size=4).map(tuple)
STATS = st.builds(Stat, I64, I64, I64, I64, I32, I32, I32, I64, I32, I32, I64)

WRITE_OPS: dict[int, Any] = {
    OpCode.create: st.builds(p.CreateRequest, TEXT, DATA, ACLS, I32),
    OpCode.create2: st.builds(p.CreateRequest, TEXT, DATA, ACLS, I32),
    OpCode.createContainer: st.builds(p.CreateRequest, TEXT, DATA, ACLS, I32),
    OpCode.createTTL: st.builds(p.CreateTTLRequest, TEXT, DATA, ACLS, I32, I64),
    OpCode.delete: st.builds(p.DeleteRequest, TEXT, I32),
    OpCode.setData: st.builds(p.SetDataRequest, TEXT, DATA, I32),
    OpCode.check: st.builds(p.CheckVersionRequest, TEXT, I32),
}
READ_OPS: dict[int, Any] = {
    OpCode.getData: st.builds(p.GetDataRequest, TEXT, st.booleans()),
    OpCode.getChildren: st.builds(p.GetChildrenRequest, TEXT, st.booleans()),
}


def _ops(table: dict[int, Any]) -> Any:
    return st.lists(
        st.sampled_from(sorted(table)).flatmap(lambda op: table[op].map(lambda r: (op, r))),
        max_size=4,
    ).map(lambda ops: p.MultiRequest(tuple(ops)))


REQUESTS: dict[int, Any] = {
    **WRITE_OPS,
    OpCode.exists: st.builds(p.ExistsRequest, TEXT, st.booleans()),
    **READ_OPS,
    OpCode.getACL: st.builds(p.GetACLRequest, TEXT),
    OpCode.setACL: st.builds(p.SetACLRequest, TEXT, ACLS, I32),
    OpCode.getChildren2: st.builds(p.GetChildren2Request, TEXT, st.booleans()),
    OpCode.sync: st.builds(p.SyncRequest, TEXT),
    OpCode.multi: _ops(WRITE_OPS),
    OpCode.multiRead: _ops(READ_OPS),
    OpCode.reconfig: st.builds(
        p.ReconfigRequest, st.none() | NONEMPTY, st.none() | NONEMPTY, st.none() | NONEMPTY, I64
    ),
    OpCode.checkWatches: st.builds(p.CheckWatchesRequest, TEXT, I32),
    OpCode.removeWatches: st.builds(p.RemoveWatchesRequest, TEXT, I32),
    OpCode.auth: st.builds(p.AuthPacket, I32, TEXT, DATA),
    OpCode.setWatches: st.builds(p.SetWatches, I64, STRS, STRS, STRS),
    OpCode.setWatches2: st.builds(p.SetWatches, I64, STRS, STRS, STRS, STRS, STRS),
    OpCode.sasl: st.builds(p.GetSASLRequest, DATA),
    OpCode.getEphemerals: st.builds(p.GetEphemeralsRequest, TEXT),
    OpCode.getAllChildrenNumber: st.builds(p.GetAllChildrenNumberRequest, TEXT),
    OpCode.addWatch: st.builds(p.AddWatchRequest, TEXT, I32),
    OpCode.ping: st.none(),
    OpCode.closeSession: st.none(),
    OpCode.whoAmI: st.none(),
}
ANY_REQUEST = st.sampled_from(sorted(REQUESTS)).flatmap(
    lambda op: REQUESTS[op].map(lambda r: (op, r))
)

GET_DATA_RSP = st.builds(p.GetDataResponse, st.none() | DATA, STATS)
SET_DATA_RSP = st.builds(p.SetDataResponse, STATS)
CREATE_RSP = st.builds(p.CreateResponse, TEXT)
CREATE2_RSP = st.builds(p.Create2Response, TEXT, STATS)
CHILDREN_RSP = st.builds(p.GetChildrenResponse, STRS)
RESULTS: dict[int, Any] = {
    OpCode.create: CREATE_RSP,
    OpCode.create2: CREATE2_RSP,
    OpCode.createTTL: CREATE2_RSP,
    OpCode.createContainer: CREATE2_RSP,
    OpCode.delete: st.none(),
    OpCode.check: st.none(),
    OpCode.setData: SET_DATA_RSP,
    OpCode.getData: GET_DATA_RSP,
    OpCode.getChildren: CHILDREN_RSP,
    OpCode.error: st.sampled_from([0, -2, -101, -103, -110]),
}
MULTI_RSP = st.lists(
    st.sampled_from(sorted(RESULTS)).flatmap(lambda op: RESULTS[op].map(lambda r: (op, r))),
    max_size=4,
).map(lambda rs: p.MultiResponse(tuple(rs)))
RESPONSES: dict[int, Any] = {
    **{k: v for k, v in RESULTS.items() if k != OpCode.error},
    OpCode.exists: st.builds(p.ExistsResponse, STATS),
    OpCode.getACL: st.builds(p.GetACLResponse, ACLS, STATS),
    OpCode.setACL: st.builds(p.SetACLResponse, STATS),
    OpCode.getChildren2: st.builds(p.GetChildren2Response, STRS, STATS),
    OpCode.sync: st.builds(p.SyncResponse, TEXT),
    OpCode.multi: MULTI_RSP,
    OpCode.multiRead: MULTI_RSP,
    OpCode.reconfig: GET_DATA_RSP,
    OpCode.sasl: st.builds(p.SetSASLResponse, DATA),
    OpCode.getEphemerals: st.builds(p.GetEphemeralsResponse, STRS),
    OpCode.getAllChildrenNumber: st.builds(p.GetAllChildrenNumberResponse, I32),
    OpCode.addWatch: st.builds(p.ErrorResponse, I32),
    OpCode.whoAmI: st.builds(
        p.WhoAmIResponse, st.lists(st.tuples(TEXT, TEXT), max_size=3).map(tuple)
    ),
    OpCode.ping: st.none(),
    OpCode.auth: st.none(),
    OpCode.setWatches: st.none(),
    OpCode.removeWatches: st.none(),
}
ANY_RESPONSE = st.sampled_from(sorted(RESPONSES)).flatmap(
    lambda op: RESPONSES[op].map(lambda r: (op, r))
)


def one_frame(frame: bytes) -> bytes:
    dec = FrameDecoder(four_letter_words=False)
    dec.feed(frame)
    (payload,) = dec.frames()
    assert dec.buffered() == 0
    assert isinstance(payload, memoryview)
    return bytes(payload)


# ------------------------------------------------------------ round trips


@settings(max_examples=300, deadline=None)
@given(ANY_REQUEST, I32)
def test_request_round_trip(op_req: tuple[int, Any], xid: int) -> None:
    op, req = op_req
    payload = one_frame(p.encode_request(xid, op, req))
    assert p.decode_request_header(payload) == p.RequestHeader(xid, op)
    assert p.decode_request(op, payload, offset=8) == req
    # the same from a memoryview of the body alone
    assert p.decode_request(op, memoryview(payload)[8:]) == req


@settings(max_examples=300, deadline=None)
@given(ANY_RESPONSE, I32, I64)
def test_response_round_trip(op_rsp: tuple[int, Any], xid: int, zxid: int) -> None:
    op, rsp = op_rsp
    payload = one_frame(p.encode_reply(xid, zxid, 0, rsp))
    assert p.decode_reply_header(payload) == p.ReplyHeader(xid, zxid, 0)
    assert p.decode_response(op, payload, offset=16) == rsp


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([p.ExistsResponse, p.SetDataResponse, p.SetACLResponse]), STATS, DATA, TEXT)
def test_stat_may_be_prepacked_bytes(cls: Any, stat: Stat, data: bytes, path: str) -> None:
    packed = STAT_STRUCT.pack(*stat)
    pairs = [
        (cls(stat), cls(packed)),
        (p.GetDataResponse(data, stat), p.GetDataResponse(data, packed)),
        (p.Create2Response(path, stat), p.Create2Response(path, packed)),
        (p.GetChildren2Response((path,), stat), p.GetChildren2Response((path,), packed)),
        (p.GetACLResponse((), stat), p.GetACLResponse((), packed)),
    ]
    for a, b in pairs:
        fa, fb = p.encode_reply(7, 9, 0, a), p.encode_reply(7, 9, 0, b)
        assert fa == fb
        # and the fast path agrees with the generic record writer
        w = p.Writer()
        a.write(w)
        assert fa[20:] == w.getvalue()


def test_bad_packed_stat_is_refused() -> None:
    with pytest.raises(ValueError, match="68 bytes"):
        p.encode_reply(1, 1, 0, p.ExistsResponse(b"short"))


def test_reply_without_body_and_with_raw_body() -> None:
    assert p.encode_reply(-2, 5, 0) == struct.pack(">iiqi", 16, -2, 5, 0)
    assert p.encode_reply(3, 5, -101) == struct.pack(">iiqi", 16, 3, 5, -101)
    assert p.encode_reply(3, 5, 0, b"xyz") == struct.pack(">iiqi", 19, 3, 5, 0) + b"xyz"


@settings(max_examples=100, deadline=None)
@given(I32, I32, TEXT, I64)
def test_notification_round_trip(t: int, state: int, path: str, zxid: int) -> None:
    payload = one_frame(p.encode_notification(t, state, path, zxid))
    assert p.decode_reply_header(payload) == p.ReplyHeader(-1, zxid, 0)
    assert p.decode_notification(payload) == p.WatcherEvent(t, state, path)
    w = p.Writer()
    p.WatcherEvent(t, state, path).write(w)
    assert payload[16:] == w.getvalue()


@settings(max_examples=100, deadline=None)
@given(I32, I64, I32, I64, DATA, st.none() | st.booleans())
def test_connect_request_round_trip(
    pv: int, zxid: int, to: int, sid: int, pw: bytes, ro: bool | None
) -> None:
    req = p.ConnectRequest(pv, zxid, to, sid, pw, ro)
    frame = p.encode_connect_request(req)
    assert frame == p.encode_connect_request(pv, zxid, to, sid, pw, ro)
    payload = one_frame(frame)
    # the readOnly byte is optional: present iff not None
    assert len(payload) == 28 + len(pw) + (ro is not None)
    assert p.decode_connect_request(payload) == req


@settings(max_examples=100, deadline=None)
@given(I32, I32, I64, DATA, st.none() | st.booleans())
def test_connect_response_round_trip(
    pv: int, to: int, sid: int, pw: bytes, ro: bool | None
) -> None:
    rsp = p.ConnectResponse(pv, to, sid, pw, ro)
    frame = p.encode_connect_response(rsp)
    assert frame == p.encode_connect_response(pv, to, sid, pw, ro)
    payload = one_frame(frame)
    assert len(payload) == 20 + len(pw) + (ro is not None)
    assert p.decode_connect_response(payload) == rsp


def test_set_watches_opcode_follows_persistent_lists() -> None:
    plain = p.SetWatches(5, ("/a",), (), ("/c",))
    v2 = p.SetWatches(5, ("/a",), (), (), ("/p",), ())
    assert plain.opcode == OpCode.setWatches and v2.opcode == OpCode.setWatches2
    # 105 with empty persistent lists still carries the two (empty) vectors
    f = p.encode_request(-8, OpCode.setWatches2, plain)
    assert len(f) == len(p.encode_request(-8, OpCode.setWatches, plain)) + 8
    assert p.decode_request(OpCode.setWatches2, one_frame(f), offset=8) == plain
    with pytest.raises(ValueError, match="setWatches2"):
        p.encode_request(-8, OpCode.setWatches, v2)


# ------------------------------------------------------------ kazoo byte compatibility

KAZOO_ACL = [KACL(31, KId("world", "anyone")), KACL(1, KId("digest", "u:h"))]
OUR_ACL = (ACL(31, Id("world", "anyone")), ACL(1, Id("digest", "u:h")))


@pytest.mark.parametrize(
    ("op", "kazoo_req", "ours"),
    [
        (1, ks.Create("/a/b", b"v", KAZOO_ACL, 3), p.CreateRequest("/a/b", b"v", OUR_ACL, 3)),
        (15, ks.Create2("/ä", b"", KAZOO_ACL, 0), p.CreateRequest("/ä", b"", OUR_ACL, 0)),
        (2, ks.Delete("/x", -1), p.DeleteRequest("/x", -1)),
        (3, ks.Exists("/x", True), p.ExistsRequest("/x", True)),
        (4, ks.GetData("/x", False), p.GetDataRequest("/x", False)),
        (5, ks.SetData("/x", b"\0\1", 7), p.SetDataRequest("/x", b"\0\1", 7)),
        (6, ks.GetACL("/x"), p.GetACLRequest("/x")),
        (7, ks.SetACL("/x", KAZOO_ACL, 2), p.SetACLRequest("/x", OUR_ACL, 2)),
        (8, ks.GetChildren("/x", True), p.GetChildrenRequest("/x", True)),
        (12, ks.GetChildren2("/x", True), p.GetChildren2Request("/x", True)),
        (9, ks.Sync("/x"), p.SyncRequest("/x")),
        (13, ks.CheckVersion("/x", 4), p.CheckVersionRequest("/x", 4)),
        (
            16,
            ks.Reconfig("server.4=h:1:2", "3", None, 17),
            p.ReconfigRequest("server.4=h:1:2", "3", None, 17),
        ),
        (100, ks.Auth(0, "digest", "user:pw"), p.AuthPacket(0, "digest", b"user:pw")),
        (102, ks.SASL(b"tok"), p.GetSASLRequest(b"tok")),
        (
            14,
            ks.Transaction(
                [
                    ks.Create("/t", b"1", KAZOO_ACL, 1),
                    ks.Delete("/u", 2),
                    ks.SetData("/v", b"2", -1),
                    ks.CheckVersion("/w", 0),
                ]
            ),
            p.MultiRequest(
                (
                    (1, p.CreateRequest("/t", b"1", OUR_ACL, 1)),
                    (2, p.DeleteRequest("/u", 2)),
                    (5, p.SetDataRequest("/v", b"2", -1)),
                    (13, p.CheckVersionRequest("/w", 0)),
                )
            ),
        ),
        (11, ks.PingInstance, None),
        (-11, ks.CloseInstance, None),
    ],
)
def test_requests_match_kazoo_bytes(op: int, kazoo_req: Any, ours: Any) -> None:
    kb = bytes(kazoo_req.serialize())
    assert kazoo_req.type == op
    frame = p.encode_request(5, op, ours)
    assert frame == struct.pack(">iii", 8 + len(kb), 5, op) + kb
    assert p.decode_request(op, kb) == ours


def test_kazoo_connect_bytes_both_ways() -> None:
    kb = bytes(ks.Connect(0, 0x1234, 30000, 0x55, b"\0" * 16, True).serialize())
    assert p.encode_connect_request(0, 0x1234, 30000, 0x55, b"\0" * 16, True)[4:] == kb
    assert p.decode_connect_request(kb) == p.ConnectRequest(
        0, 0x1234, 30000, 0x55, b"\0" * 16, True
    )
    # kazoo reads our ConnectResponse with and without the readOnly byte
    for ro in (True, False, None):
        payload = p.encode_connect_response(0, 4000, 77, b"p" * 16, ro)[4:]
        rsp, off = ks.Connect.deserialize(payload, 0)
        assert (rsp.time_out, rsp.session_id, rsp.passwd, rsp.read_only) == (
            4000,
            77,
            b"p" * 16,
            bool(ro),
        )
        assert off == len(payload)


def test_kazoo_null_for_empty_strings_and_buffers() -> None:
    # kazoo writes -1 for "" strings and None buffers; we read them as empty.
    kb = bytes(ks.Create("/n", None, [KACL(31, KId("auth", ""))], 0).serialize())
    assert b"\xff\xff\xff\xff" in kb
    assert p.decode_request(1, kb) == p.CreateRequest("/n", b"", (ACL(31, Id("auth", "")),), 0)
    kb = bytes(ks.Auth(0, "digest", "").serialize())
    assert p.decode_request(100, kb) == p.AuthPacket(0, "digest", b"")
    kb = bytes(ks.Reconfig("", "", "a", -1).serialize())
    assert p.decode_request(16, kb) == p.ReconfigRequest(None, None, "a", -1)


STAT = Stat(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)


def _kstat(st_: Any) -> tuple[int, ...]:
    return tuple(st_)


def test_kazoo_reads_our_responses() -> None:
    def body(rsp: Any) -> bytes:
        frame = p.encode_reply(9, 3, 0, rsp)
        hdr, off = ks.ReplyHeader.deserialize(frame[4:], 0)
        assert (hdr.xid, hdr.zxid, hdr.err) == (9, 3, 0)
        assert off == 16
        return frame[20:]

    data, kst = ks.GetData.deserialize(body(p.GetDataResponse(b"val", STAT)), 0)
    assert data == b"val" and _kstat(kst) == tuple(STAT)
    assert _kstat(ks.Exists.deserialize(body(p.ExistsResponse(STAT)), 0)) == tuple(STAT)
    assert _kstat(ks.SetData.deserialize(body(p.SetDataResponse(STAT)), 0)) == tuple(STAT)
    assert _kstat(ks.SetACL.deserialize(body(p.SetACLResponse(STAT)), 0)) == tuple(STAT)
    acls, kst = ks.GetACL.deserialize(body(p.GetACLResponse(OUR_ACL, STAT)), 0)
    assert acls == KAZOO_ACL and _kstat(kst) == tuple(STAT)
    assert ks.GetChildren.deserialize(body(p.GetChildrenResponse(("a", "ß"))), 0) == ["a", "ß"]
    kids, kst = ks.GetChildren2.deserialize(body(p.GetChildren2Response(("a",), STAT)), 0)
    assert kids == ["a"] and _kstat(kst) == tuple(STAT)
    assert ks.Create.deserialize(body(p.CreateResponse("/a0001")), 0) == "/a0001"
    path, kst = ks.Create2.deserialize(body(p.Create2Response("/b", STAT)), 0)
    assert path == "/b" and _kstat(kst) == tuple(STAT)
    assert ks.Sync.deserialize(body(p.SyncResponse("/s")), 0) == "/s"
    cfg, kst = ks.Reconfig.deserialize(body(p.GetDataResponse(b"server.1=x", STAT)), 0)
    assert cfg == b"server.1=x"
    assert ks.SASL.deserialize(body(p.SetSASLResponse(b"c")), 0)[0] == b"c"
    results = ks.Transaction.deserialize(
        body(
            p.MultiResponse(
                (
                    (1, p.CreateResponse("/t")),
                    (2, None),
                    (5, p.SetDataResponse(STAT)),
                    (13, None),
                )
            )
        ),
        0,
    )
    assert results[0] == "/t" and results[1] is True and _kstat(results[2]) == tuple(STAT)
    assert results[3] is True
    failed = ks.Transaction.deserialize(
        body(p.MultiResponse(((-1, 0), (-1, int(Err.NONODE)), (-1, -2)))), 0
    )
    assert [type(e).__name__ for e in failed] == [
        "RolledBackError",
        "NoNodeError",
        "RuntimeInconsistency",
    ]
    frame = p.encode_notification(3, 3, "/w", -1)
    hdr, off = ks.ReplyHeader.deserialize(frame[4:], 0)
    ev, _ = ks.Watch.deserialize(frame[4:], off)
    assert (hdr.xid, ev.type, ev.state, ev.path) == (-1, 3, 3, "/w")


def test_multi_wire_layout_matches_reference() -> None:
    # MultiHeader(type, done=false, err=-1) + op, terminator (-1, true, -1)
    kb = p.encode_request(1, 14, p.MultiRequest(((2, p.DeleteRequest("/d", 1)),)))[12:]
    assert kb == struct.pack(">i?i", 2, False, -1) + b"\0\0\0\x02/d\0\0\0\x01" + (
        struct.pack(">i?i", -1, True, -1)
    )
    rb = p.encode_reply(1, 2, 0, p.MultiResponse(((-1, -101), (2, None))))[20:]
    assert rb == (
        struct.pack(">i?i", -1, False, -101)
        + struct.pack(">i", -101)
        + struct.pack(">i?i", 2, False, 0)
        + struct.pack(">i?i", -1, True, -1)
    )


# ------------------------------------------------------------ errors and hostile input


def test_unknown_opcode_is_unimplemented() -> None:
    for op in (0, 10, 20, -10, 999, -1):
        with pytest.raises(p.ProtocolError, match="opcode") as ei:
            p.decode_request(op, b"\0\0\0\0")
        assert ei.value.err == Err.UNIMPLEMENTED
    assert issubclass(p.ProtocolError, JuteError)


def test_multi_kind_rules() -> None:
    def multi(op: int, ops: tuple[tuple[int, Any], ...]) -> bytes:
        return p.encode_request(1, op, p.MultiRequest(ops))[12:]

    read = (4, p.GetDataRequest("/a", False))
    write = (2, p.DeleteRequest("/a", -1))
    with pytest.raises(p.ProtocolError, match="mixing"):
        p.decode_request(14, multi(14, (write, read)))
    with pytest.raises(p.ProtocolError, match="mixing"):
        p.decode_request(22, multi(22, (read, write)))
    with pytest.raises(p.ProtocolError, match="invalid type of op 6"):
        p.decode_request(14, multi(14, ((6, p.GetACLRequest("/a")),)))
    assert p.decode_request(22, multi(22, (read,))) == p.MultiRequest((read,))
    assert p.decode_request(14, multi(14, ())) == p.MultiRequest(())


def test_lengths_are_bounded() -> None:
    body = p.encode_request(1, 5, p.SetDataRequest("/x", b"z" * 100, 0))[12:]
    assert p.decode_request(5, body, max_len=100).data == b"z" * 100
    with pytest.raises(p.ProtocolError, match="exceeds the limit of 99"):
        p.decode_request(5, body, max_len=99)
    with pytest.raises(p.ProtocolError, match="exceeds the limit"):
        p.decode_request(4, struct.pack(">i", 2**31 - 1) + b"/")
    with pytest.raises(p.ProtocolError, match="negative length"):
        p.decode_request(4, struct.pack(">i", -2) + b"\0")
    # a vector count larger than the input must not loop or allocate
    with pytest.raises(p.ProtocolError):
        p.decode_request(8 + 93, struct.pack(">qi", 0, 10**6))  # setWatches
    with pytest.raises(p.ProtocolError, match="UTF-8"):
        p.decode_request(9, b"\0\0\0\x02\xff\xfe")


@settings(max_examples=60, deadline=None)
@given(ANY_REQUEST)
def test_every_truncation_is_a_protocol_error(op_req: tuple[int, Any]) -> None:
    op, req = op_req
    body = p.encode_request(1, op, req)[12:]
    for cut in range(len(body)):
        if req is None:
            break
        with pytest.raises(p.ProtocolError):
            p.decode_request(op, body[:cut])


@settings(max_examples=60, deadline=None)
@given(ANY_RESPONSE)
def test_every_response_truncation_is_a_protocol_error(op_rsp: tuple[int, Any]) -> None:
    op, rsp = op_rsp
    body = p.encode_reply(1, 1, 0, rsp)[20:]
    for cut in range(len(body)):
        with pytest.raises(p.ProtocolError):
            p.decode_response(op, body[:cut])


OPCODES = st.sampled_from([int(o) for o in OpCode] + [10, 23, 99, 108, -12]) | I32


@settings(max_examples=400, deadline=None)
@given(OPCODES, st.binary(max_size=80), st.integers(0, 200))
def test_fuzz_decoders_raise_only_protocol_error(op: int, blob: bytes, max_len: int) -> None:
    for call in (
        lambda: p.decode_request(op, blob, max_len=max_len),
        lambda: p.decode_request(op, memoryview(blob)),
        lambda: p.decode_response(op, blob, max_len=max_len),
        lambda: p.decode_connect_request(blob, max_len=max_len),
        lambda: p.decode_connect_response(blob),
        lambda: p.decode_notification(blob, 0),
        lambda: p.decode_reply_header(blob),
        lambda: p.decode_request_header(blob),
    ):
        try:
            call()
        except p.ProtocolError:
            pass


@settings(max_examples=200, deadline=None)
@given(ANY_REQUEST, st.data())
def test_fuzz_mutated_valid_requests(op_req: tuple[int, Any], data: st.DataObject) -> None:
    op, req = op_req
    body = bytearray(p.encode_request(1, op, req)[12:])
    if not body:
        return
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(body) - 1))
        body[i] = data.draw(st.integers(0, 255))
    try:
        p.decode_request(op, bytes(body))
    except p.ProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(ANY_REQUEST, I32)
def test_decode_request_frame_matches_two_step_decode(op_req: tuple[int, Any], xid: int) -> None:
    op, req = op_req
    payload = one_frame(p.encode_request(xid, op, req))
    assert p.decode_request_frame(payload) == (xid, op, req)
    assert p.decode_request_frame(memoryview(payload)) == (xid, op, req)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60), st.integers(0, 100))
def test_fuzz_decode_request_frame(blob: bytes, max_len: int) -> None:
    for op in (4, 5, 3, 12, 14):
        payload = struct.pack(">ii", 1, op) + blob
        try:
            p.decode_request_frame(payload, max_len=max_len)
        except p.ProtocolError:
            pass
    with pytest.raises(p.ProtocolError, match="truncated"):
        p.decode_request_frame(blob[:7])


def test_records_are_frozen_with_keywords_and_defaults() -> None:
    import dataclasses

    r = p.GetDataRequest(path="/a", watch=True)
    assert r == p.GetDataRequest("/a", True) and hash(r) == hash(p.GetDataRequest("/a", True))
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.path = "/b"  # type: ignore[misc]
    assert p.ConnectRequest(0, 0, 0, 0, b"").read_only is False
    assert p.SetWatches(1, (), (), ()).persistent_recursive_watches == ()
    with pytest.raises(TypeError):
        p.GetDataRequest("/a")  # type: ignore[call-arg]
