"""quorum/wire.py: round trips, strict validation, hostile input (only WireError)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_quorum.quorum import wire
from trio_quorum.quorum.wire import Catalogue, Channel, Hello, Limits, Reject, WireError


class State(enum.IntEnum):
    LOOKING = 0
    FOLLOWING = 1
    LEADING = 2


@dataclass(frozen=True, slots=True)
class Notification:
    leader: int
    zxid: int
    epoch: int
    state: State
    sid: int
    config: bytes


@dataclass(frozen=True, slots=True)
class Header:
    zxid: int
    kind: int


@dataclass(frozen=True, slots=True)
class Proposal:
    header: Header
    txn: bytes
    note: str | None
    acks: tuple[int, ...]
    flag: bool


@dataclass(frozen=True, slots=True)
class Small:
    n: int


def catalogue() -> Catalogue:
    cat = Catalogue("sample")
    cat.register(16, Notification, (("leader", int), ("zxid", int), ("epoch", int),
                                    ("state", State), ("sid", int), ("config", bytes)))
    cat.register(17, Header, (("zxid", int), ("kind", wire.Int(0, 255))))
    cat.register(18, Proposal, (("header", Header), ("txn", bytes), ("note", str | None),
                                ("acks", tuple[int, ...]), ("flag", bool)))
    cat.register(19, Small, (("n", wire.Int(0, 9)),))
    return cat


CAT = catalogue()
N = Notification(3, 0x1_0000_0005, 2, State.LOOKING, 1, b"cfg")
P = Proposal(Header(7, 2), b"\x00" * 10, None, (1, 2, 3), True)


def test_round_trip_of_a_batch():
    frame = CAT.encode_frame([N, P, Proposal(Header(-1, 0), b"", "hi", (), False)])
    out = CAT.decode_frame(frame)
    assert out == [N, P, Proposal(Header(-1, 0), b"", "hi", (), False)]
    assert type(out[0].state) is State
    assert out[1].acks == (1, 2, 3) and type(out[1].acks) is tuple


def test_compact_encoding_is_tag_then_fields():
    assert cbor2.loads(CAT.encode(N)) == [16, 3, 0x1_0000_0005, 2, 0, 1, b"cfg"]
    assert cbor2.loads(CAT.encode_frame([Small(1), Small(2)])) == [[19, 1], [19, 2]]


def test_heartbeat_is_an_empty_frame():
    assert wire.HEARTBEAT == b"\x80"
    assert CAT.decode_frame(wire.HEARTBEAT) == []


def test_pack_splits_by_size_and_count():
    limits = Limits(max_frame_bytes=64, max_messages=3)
    encoded = [CAT.encode(Small(i % 10), limits) for i in range(10)]
    frames = list(wire.pack(encoded, limits))
    assert [len(CAT.decode_frame(f, limits)) for f in frames] == [3, 3, 3, 1]
    big = [CAT.encode(Proposal(Header(1, 1), b"x" * 20, None, (), True), limits)] * 5
    frames = list(wire.pack(big, limits))
    assert all(len(f) <= 64 for f in frames) and len(frames) == 3  # 29-byte messages, 2 a frame
    assert sum(len(CAT.decode_frame(f, limits)) for f in frames) == 5


@pytest.mark.parametrize(
    "record, match",
    [
        (Notification(True, 0, 0, State.LOOKING, 1, b""), "leader: expected int, got bool"),
        (Notification(2**63, 0, 0, State.LOOKING, 1, b""), "out of range"),
        (Notification(1, 0, 0, 1, 1, b""), "state: expected State"),
        (Notification(1, 0, 0, State.LOOKING, 1, "str"), "config: expected bytes"),
        (Small(10), "out of range for int"),
        (Proposal(Small(1), b"", None, (), True), "header: expected Header"),
        (object(), "not in catalogue"),
    ],
)
def test_encode_validates(record, match):
    with pytest.raises(WireError, match=match):
        CAT.encode(record)


def test_encode_refuses_a_message_too_big_for_any_frame():
    with pytest.raises(WireError, match="cannot fit a frame"):
        CAT.encode(Proposal(Header(1, 1), b"x" * 100, None, (), True), Limits(max_frame_bytes=64))


def raw(obj) -> bytes:
    return cbor2.dumps(obj)


@pytest.mark.parametrize(
    "data, match",
    [
        (b"", "empty frame"),
        (b"\xa0", "must be a CBOR array"),  # a map
        (b"\x9f\xff", "must be a CBOR array"),  # indefinite array
        (b"\x80\x00", "1 bytes after"),
        (raw([[16, 3, 1, 2, 0, 1]]), "5 fields, expected 6"),  # missing a field
        (raw([[16, 3, 1, 2, 0, 1, b"", 9]]), "7 fields, expected 6"),  # an extra one
        (raw([[99, 1]]), "unknown message tag 99"),
        (raw([[0, 1, 1, 0]]), "unknown message tag 0"),  # HELLO is not a catalogue message
        (raw([["x", 1]]), "unknown message tag 'x'"),
        (raw([[19, 1.0]]), "expected int"),
        (raw([[19, True]]), "expected int"),
        (raw([[16, 3, 1, 2, 7, 1, b""]]), "7 is not a State"),
        (raw([[16, 3, 1, 2, 0, 1, "cfg"]]), "expected bytes"),
        (raw([[18, [19, 1], b"", None, [], True]]), "expected Header, got Small"),
        (raw([[18, [17, 1, 1], b"", 5, [], True]]), "note: expected str"),
        (raw([[18, [17, 1, 1], b"", None, [1, "a"], True]]), "acks: expected int"),
        (raw([[18, [17, 1, 1], b"", None, [], 1]]), "flag: expected bool"),
        (raw([{"tag": 19}]), "must be a non-empty array"),
        (raw([[]]), "must be a non-empty array"),
        (raw([[19, 2**63]]), "out of range"),
        (raw([[19, 2**64]]), "tag 2"),  # cbor2 writes it as a bignum
        (b"\x81\x82\x13\xc2\x41\x05", "tag 2"),  # [[19, bignum(5)]]
        (b"\x81\x82\x13\xc1\x01", "tag 1"),  # a datetime
        (b"\x81\xd8\x1c\x82\x13\x01", "tag 28"),  # a shared reference
        (b"\x81\x82\x13\xf7", "got UndefinedType"),
        (b"\x81\x82\x13\x7f\xff", "not CBOR"),  # indefinite string
        (b"\x81\x82\x13\x62\xff\xfe", "not CBOR"),  # bad UTF-8
        (b"\x9b\x10\x00\x00\x00\x00\x00\x00\x00", "not CBOR"),  # huge declared length
        (b"\x81" * 40 + b"\x01", "not CBOR"),  # nesting
    ],
)
def test_decode_rejects(data, match):
    with pytest.raises(WireError, match=match):
        CAT.decode_frame(data)


def test_limits_are_enforced_on_decode():
    limits = Limits(max_frame_bytes=100, max_messages=2, max_bytes=4, max_str=3, max_list=2)
    with pytest.raises(WireError, match="frame of 101 bytes > 100"):
        CAT.decode_frame(b"\x80" + b"\x00" * 100, limits)
    with pytest.raises(WireError, match="3 messages > 2"):
        CAT.decode_frame(raw([[19, 1]] * 3), limits)
    with pytest.raises(WireError, match="5 > 4 bytes"):
        CAT.decode_frame(raw([[16, 1, 1, 1, 0, 1, b"12345"]]), limits)
    with pytest.raises(WireError, match="4 > 3 characters"):
        CAT.decode_frame(raw([[18, [17, 1, 1], b"", "abcd", [], True]]), limits)
    with pytest.raises(WireError, match="3 > 2 items"):
        CAT.decode_frame(raw([[18, [17, 1, 1], b"", None, [1, 2, 3], True]]), limits)


def test_register_guards():
    cat = Catalogue("x")
    with pytest.raises(ValueError, match="lower ones are the link's"):
        cat.register(1, Small, (("n", int),))
    cat.register(20, Small, (("n", int),))
    with pytest.raises(ValueError, match="already registered"):
        cat.register(20, Header, (("zxid", int), ("kind", int)))
    with pytest.raises(ValueError, match="already registered"):
        cat.register(21, Small, (("n", int),))
    with pytest.raises(TypeError, match="unsupported field type"):
        cat.register(22, Header, (("zxid", float), ("kind", int)))


def test_handshake_round_trip_and_errors():
    hello = Hello(5, wire.PROTOCOL_VERSION, Channel.QUORUM)
    assert wire.decode_handshake(wire.encode_hello(hello)) == hello
    assert wire.decode_handshake(wire.encode_reject("unknown sid 9")) == Reject("unknown sid 9")
    assert wire.decode_handshake(raw([[0, 5, 77, 1]])).version == 77  # the caller judges it
    for bad, match in [
        (raw([[0, 5, 1, 9]]), "not a Channel"),
        (raw([[0, 5, 1]]), "expected 3"),
        (raw([[0, 5, 1, 0], [0, 5, 1, 0]]), "2 messages > 1"),
        (raw([[16, 1]]), "expected a HELLO or REJECT"),
        (raw([]), "exactly one HELLO"),
        (raw([[1, 5]]), "expected str"),
    ]:
        with pytest.raises(WireError, match=match):
            wire.decode_handshake(bad)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_wire_error(data):
    for decode in (CAT.decode_frame, wire.decode_handshake):
        try:
            decode(data)
        except WireError:
            pass


def _mutations(frame: bytes):
    return st.tuples(st.integers(0, max(0, len(frame) - 1)), st.integers(0, 255), st.booleans())


GOOD = CAT.encode_frame([N, P, Small(3)])


@settings(max_examples=400, deadline=None)
@given(_mutations(GOOD), st.integers(0, len(GOOD)))
def test_damaged_frames_raise_only_wire_error(mutation, cut):
    pos, byte, truncate = mutation
    data = bytearray(GOOD)
    data[pos] = byte
    data = bytes(data[:cut] if truncate else data)
    try:
        out = CAT.decode_frame(data)
    except WireError:
        return
    # anything that decodes is made of valid records only
    for record in out:
        CAT.encode(record)


cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.binary(max_size=8) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.lists(cbor_values, max_size=5))
def test_wellformed_cbor_of_any_shape_raises_only_wire_error(items):
    # messages with a valid tag but random fields
    for tag in (16, 17, 18, 19):
        try:
            CAT.decode_frame(raw([[tag, *items]]))
        except WireError:
            pass
