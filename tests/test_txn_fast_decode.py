"""decode_txn's fast path (creates with OPEN_ACL_UNSAFE and setData, as a log
replay is made of) gives exactly what the general jute decoder gives, and
leaves everything unusual (null/negative lengths, truncation, bad UTF-8, other
ACLs, pre-3.3 creates, other types) to it, errors included."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trio_quorum.protocol.consts import OpCode
from trio_quorum.protocol.data import ACL, OPEN_ACL_UNSAFE, Id
from trio_quorum.protocol.jute import JuteError, Reader
from trio_quorum.protocol.txn import (
    CreateTxn,
    DeleteTxn,
    SetDataTxn,
    TxnDigest,
    TxnHeader,
    _decode_txn_fast,
    decode_record,
    decode_txn,
    encode_txn,
)

ints = st.integers(-(2**31), 2**31 - 1)
longs = st.integers(-(2**63), 2**63 - 1)
paths = st.text(min_size=0, max_size=30)
values = st.binary(max_size=64)
acls = st.sampled_from([OPEN_ACL_UNSAFE, (ACL(1, Id("world", "anyone")),), (ACL(31, Id("digest", "u:x")),)])


@st.composite
def txns(draw: st.DrawFn) -> tuple[TxnHeader, object, TxnDigest | None]:
    kind = draw(st.sampled_from(["create", "create2", "set", "delete"]))
    typ = {"create": OpCode.create, "create2": OpCode.create2, "set": OpCode.setData, "delete": OpCode.delete}[kind]
    hdr = TxnHeader(draw(longs), draw(ints), draw(longs), draw(longs), int(typ))
    rec: object
    if kind.startswith("create"):
        rec = CreateTxn(draw(paths), draw(values), draw(acls), draw(st.booleans()), draw(ints))
    elif kind == "set":
        rec = SetDataTxn(draw(paths), draw(values), draw(ints))
    else:
        rec = DeleteTxn(draw(paths))
    digest = draw(st.none() | st.builds(TxnDigest, ints, longs))
    return hdr, rec, digest


def _general(data: bytes) -> object:
    r = Reader(data, max_len=len(data))
    hdr = TxnHeader.read(r)
    rec = decode_record(hdr.type, r)
    digest = TxnDigest(r.read_int(), r.read_long()) if r.remaining() >= 12 else None
    return hdr, rec, digest


def _outcome(f: object, data: bytes) -> object:
    try:
        return ("ok", f(data))  # type: ignore[operator]
    except JuteError as exc:
        return ("error", str(exc))


@settings(max_examples=400, deadline=None)
@given(txns())
def test_fast_decode_equals_the_general_decoder(t: tuple[TxnHeader, object, TxnDigest | None]) -> None:
    hdr, rec, digest = t
    data = encode_txn(hdr, rec, digest)  # type: ignore[arg-type]
    assert decode_txn(data) == _general(data) == (hdr, rec, digest)
    fast = _decode_txn_fast(data)
    if isinstance(rec, (CreateTxn, SetDataTxn)) and getattr(rec, "acl", OPEN_ACL_UNSAFE) == OPEN_ACL_UNSAFE:
        assert fast == (hdr, rec, digest)  # the common case really takes the fast path
    elif fast is not None:
        assert fast == (hdr, rec, digest)


@settings(max_examples=400, deadline=None)
@given(txns(), st.data())
def test_damaged_records_decode_or_fail_like_the_general_decoder(
    t: tuple[TxnHeader, object, TxnDigest | None], data: st.DataObject
) -> None:
    hdr, rec, digest = t
    raw = bytearray(encode_txn(hdr, rec, digest))  # type: ignore[arg-type]
    how = data.draw(st.sampled_from(["truncate", "flip", "minus_one", "bad_utf8"]))
    if how == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    elif how == "flip":
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= data.draw(st.integers(1, 255))
    elif how == "minus_one" and len(raw) >= 36:
        raw[32:36] = b"\xff\xff\xff\xff"  # a null path length
    elif how == "bad_utf8" and len(raw) >= 38 and raw[32:36] != b"\0\0\0\0":
        raw[36] = 0xFF
    blob = bytes(raw)
    assert _outcome(decode_txn, blob) == _outcome(_general, blob)
