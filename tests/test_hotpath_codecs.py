"""The write path's codec fast paths (generated from the record tables, see
``protocol/codegen.py``) give exactly what the general code gives.

* ``proto.decode_request`` for setData and create (``_jute_decode``) against
  the checked ``Reader`` decoders, for ``bytes``, ``bytearray`` and
  ``memoryview`` payloads (small ones are copied to bytes once, big ones are
  read by the checked reader from the view).
* ``proto.encode_reply`` for ``SetDataResponse`` / ``CreateResponse``
  (inlined in the generated ``encode_reply``) against the generic ``Writer``
  encoding.
* ``txn.encode_txn`` for ``SetDataTxn`` / ``CreateTxn`` (inlined) against
  the generic encoding; ``txnlog.append_entry`` against ``encode_entry``.
* ``paths.plain_path`` (inlined in prep's create) implies ``path_error`` is None.
"""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from trio_quorum.core.paths import path_error, plain_path
from trio_quorum.persistence.txnlog import append_entry, encode_entry
from trio_quorum.protocol import records as proto
from trio_quorum.protocol.data import CREATOR_ALL_ACL, OPEN_ACL_UNSAFE, STAT_STRUCT, Stat
from trio_quorum.protocol.jute import JuteError, Reader, Writer
from trio_quorum.protocol.txn import CreateTxn, SetDataTxn, TxnHeader, TxnRecord, encode_txn

_i32 = st.integers(-(2**31), 2**31 - 1)
_i64 = st.integers(-(2**63), 2**63 - 1)
_paths = st.text(alphabet=st.sampled_from("/ab.\x00\x7fé😀"), max_size=12)


def _checked(read: Any, payload: bytes, max_len: int) -> Any:
    try:
        return read(Reader(payload, 8, max_len=max_len))
    except JuteError:
        return JuteError


def _fast(op: int, payload: Any, max_len: int) -> Any:
    try:
        return proto.decode_request(op, payload, max_len=max_len, offset=8)
    except proto.ProtocolError:
        return JuteError


def _views(payload: bytes) -> list[Any]:
    """The payload as bytes, bytearray, and memoryview slices of a bigger read
    (as ``FrameDecoder`` yields them)."""
    return [payload, bytearray(payload), memoryview(payload), memoryview(b"\0" * 5000 + payload)[5000:]]


def _set_data_payload(path: bytes, data: bytes | None, version: int) -> bytes:
    d = b"\xff\xff\xff\xff" if data is None else struct.pack(">i", len(data)) + data
    return struct.pack(">ii", 1, 5) + struct.pack(">i", len(path)) + path + d + struct.pack(">i", version)


@settings(deadline=None, max_examples=300)
@given(
    st.one_of(st.binary(max_size=20), _paths.map(str.encode)),
    st.one_of(st.none(), st.binary(max_size=40)),
    _i32,
    st.integers(0, 64),
    st.integers(0, 6),
)
def test_set_data_decode_is_the_checked_decode(path: bytes, data: bytes | None, version: int,
                                               max_len: int, cut: int) -> None:
    payload = _set_data_payload(path, data, version)
    if cut:
        payload = payload[:-cut]  # truncated records too
    want = _checked(proto._r_set_data, payload, max_len)
    for view in _views(payload):
        got = _fast(5, view, max_len)
        if want is JuteError:
            assert got is JuteError
        else:
            assert got == want and type(got.data) is bytes and type(got.path) is str


@settings(deadline=None, max_examples=50)
@given(st.integers(proto._COPY_LIMIT - 40, proto._COPY_LIMIT + 40), st.integers(0, 6), st.booleans())
def test_big_payloads_decode_without_the_copy(size: int, cut: int, create: bool) -> None:
    # Payloads over _COPY_LIMIT are decoded from the view itself (by the checked reader).
    data = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    if create:
        w = Writer()
        w.buf += struct.pack(">ii", 1, 1)
        w.write_ustring("/big")
        w.write_buffer(data)
        proto._write_acls(w, OPEN_ACL_UNSAFE)
        w.write_int(0)
        payload = bytes(w.buf)
    else:
        payload = _set_data_payload(b"/big", data, 7)
    if cut:
        payload = payload[:-cut]
    read = proto._r_create if create else proto._r_set_data
    want = _checked(read, payload, 1 << 20)
    for view in _views(payload):
        got = _fast(1 if create else 5, view, 1 << 20)
        if want is JuteError:
            assert got is JuteError
        else:
            assert got == want and type(got.data) is bytes


@settings(deadline=None, max_examples=300)
@given(
    st.one_of(st.binary(max_size=20), _paths.map(str.encode)),
    st.one_of(st.none(), st.binary(max_size=40)),
    st.sampled_from([OPEN_ACL_UNSAFE, CREATOR_ALL_ACL, ()]),
    st.integers(-1, 8),
    st.integers(0, 64),
    st.integers(0, 6),
)
def test_create_decode_is_the_checked_decode(path: bytes, data: bytes | None, acl: Any, flags: int,
                                             max_len: int, cut: int) -> None:
    w = Writer()
    w.buf += struct.pack(">ii", 1, 1) + struct.pack(">i", len(path)) + path
    w.write_buffer(data)
    proto._write_acls(w, acl)
    w.write_int(flags)
    payload = bytes(w.buf)
    if cut:
        payload = payload[:-cut]
    want = _checked(proto._r_create, payload, max_len)
    for view in _views(payload):
        got = _fast(1, view, max_len)
        if want is JuteError:
            assert got is JuteError
        else:
            assert got == want and type(got.data) is bytes


def _generic_reply(xid: int, zxid: int, err: int, body: Any) -> bytes:
    w = Writer()
    w.buf += b"\0" * 20
    body.write(w)
    struct.pack_into(">iiqi", w.buf, 0, len(w.buf) - 4, xid, zxid, err)
    return bytes(w.buf)


_stats = st.builds(Stat, _i64, _i64, _i64, _i64, _i32, _i32, _i32, _i64, _i32, _i32, _i64)


@settings(deadline=None, max_examples=200)
@given(_i32, _i64, _i32, _stats, _paths)
def test_hot_replies_are_the_generic_encoding(xid: int, zxid: int, err: int, stat: Stat, path: str) -> None:
    packed = STAT_STRUCT.pack(*stat)
    for body in (proto.SetDataResponse(packed), proto.SetDataResponse(stat), proto.CreateResponse(path)):
        assert proto.encode_reply(xid, zxid, err, body) == _generic_reply(xid, zxid, err, body)


def _generic_txn(hdr: TxnHeader, rec: TxnRecord) -> bytes:
    w = Writer()
    hdr.write(w)
    rec.write(w)
    return bytes(w.buf)


_hdrs = st.builds(TxnHeader, _i64, _i32, _i64, _i64, _i32)


@settings(deadline=None, max_examples=300)
@given(
    _hdrs,
    st.one_of(
        st.builds(SetDataTxn, _paths, st.one_of(st.none(), st.binary(max_size=50)), _i32),
        st.builds(CreateTxn, _paths, st.one_of(st.none(), st.binary(max_size=50)),
                  st.sampled_from([OPEN_ACL_UNSAFE, CREATOR_ALL_ACL, tuple(OPEN_ACL_UNSAFE)]),
                  st.one_of(st.booleans(), st.integers(0, 2)), _i32),
    ),
)
def test_hot_txn_encodings_are_the_generic_encoding(hdr: TxnHeader, rec: TxnRecord) -> None:
    payload = encode_txn(hdr, rec)
    assert payload == _generic_txn(hdr, rec)
    buf = bytearray(b"x")
    append_entry(buf, hdr, rec)
    assert bytes(buf) == b"x" + encode_entry(hdr, rec)


def test_append_entry_with_digest() -> None:
    from trio_quorum.protocol.txn import TxnDigest

    hdr, rec, dig = TxnHeader(1, 2, 3, 4, 5), SetDataTxn("/a", b"x", 1), TxnDigest(2, 77)
    buf = bytearray()
    append_entry(buf, hdr, rec, dig)
    assert bytes(buf) == encode_entry(hdr, rec, dig)


@settings(deadline=None, max_examples=500)
@given(st.text(alphabet=st.sampled_from("/ab.\x00\x1f\x7f \u0085\ud800é"), max_size=10))
def test_plain_path_implies_valid(path: str) -> None:
    if plain_path(path):
        assert path_error(path) is None


def test_plain_path_examples() -> None:
    for p in ("/a", "/a/b", "/bench/c/w1-99", "/a b", "/a.b", "/a/b."):
        assert plain_path(p), p
    for p in ("/", "/a/", "//a", "/a//b", "/.", "/a/..", "/.x", "a/b", "/\x00", "/é", "/a\x7f"):
        assert not plain_path(p), p
