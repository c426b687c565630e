"""The jute record tables, their generated codecs and the table interpreter agree.

Every record declared with :func:`trio_quorum.protocol.schema.record` is
checked from its table alone (values drawn per jute type):

* the generated ``write`` writes what the interpreter (``write_fields``)
  writes, and the generated ``read``, the interpreter (``read_fields``) and the
  byte-level ``_jute_decode`` all read it back to the same record, from
  ``bytes``, ``bytearray`` and ``memoryview`` payloads, at an offset;
* on hostile input (truncations, flipped bytes, random bytes, small
  ``max_len``) the three readers agree: the same record, or the interpreter
  raises :class:`JuteError` and the generated readers raise ``JuteError``
  (``_jute_decode`` may raise ``UnicodeDecodeError`` where the interpreter
  reports invalid UTF-8), never anything else; ``decode_request`` and
  ``decode_txn`` raise only ``ProtocolError`` / ``JuteError``;
* the generated frame encoders (``encode_reply``, ``encode_request``,
  ``encode_notification``, ``encode_txn``) equal the generic ``write`` framing
  byte for byte, and ``decode_txn``'s generated fast path equals its general
  path.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_quorum.protocol import records as p
from trio_quorum.protocol import txn
from trio_quorum.protocol.__main__ import main, show
from trio_quorum.protocol.consts import OpCode
from trio_quorum.protocol.data import ACL, OPEN_ACL_UNSAFE, STAT_STRUCT, Id, Stat
from trio_quorum.protocol.jute import JuteError, Reader, Writer
from trio_quorum.protocol.schema import (
    RECORDS,
    AclVector,
    Struct,
    Vector,
    jute_fields,
    read_fields,
    write_fields,
)

_i32 = st.integers(-(2**31), 2**31 - 1)
_i64 = st.integers(-(2**63), 2**63 - 1)
_text = st.text(alphabet=st.sampled_from("/ab.\x00é😀"), max_size=8)
_binary = st.binary(max_size=12)
_stats = st.builds(Stat, _i64, _i64, _i64, _i64, _i32, _i32, _i32, _i64, _i32, _i32, _i64)


def strategy(t: Any) -> st.SearchStrategy[Any]:
    """Values of jute type ``t`` that survive a write/read round trip."""
    if t.kind == "fixed":
        return {"i": _i32, "q": _i64, "?": st.booleans()}[t.fmt]
    if t.kind == "ustring":
        return st.one_of(st.none(), _text) if t.nullable else _text
    if t.kind == "buffer":
        return st.one_of(st.none(), _binary) if t.nullable else _binary
    if t.kind == "trailing":
        inner = strategy(t.inner)
        return st.one_of(st.none(), inner) if t.absent is None else inner
    if isinstance(t, AclVector):
        acl = st.builds(ACL, st.integers(0, 31), st.builds(Id, st.sampled_from(["world", "ip", "digest"]), _text))
        return st.one_of(st.just(OPEN_ACL_UNSAFE), st.lists(acl, max_size=3).map(tuple))
    if isinstance(t, Vector):
        return st.lists(strategy(t.item), max_size=3).map(tuple)
    if isinstance(t, Struct):
        return st.tuples(*[strategy(i) for i in t.items]).map(lambda v: t.make(*v))
    if t.name == "Stat":
        return _stats
    raise AssertionError(f"no strategy for {t.name}")


#: Records whose every field is a jute type (the multi records are custom).
PLAIN = sorted(
    (cls for cls in RECORDS.values() if all(t.kind != "custom" for _, t in jute_fields(cls))),
    key=lambda c: c.__name__,
)


def records_of(cls: type) -> st.SearchStrategy[Any]:
    return st.tuples(*[strategy(t) for _, t in jute_fields(cls)]).map(lambda v: cls(*v))


_any_record = st.sampled_from(PLAIN).flatmap(records_of)


def interp_bytes(rec: Any) -> bytes:
    w = Writer()
    write_fields(rec, w)
    return bytes(w.buf)


def generated_write(rec: Any) -> bytes | None:
    """``rec.write`` when it is the generated one (SetWatches writes by opcode)."""
    if getattr(type(rec).write, "__jute_source__", None) is None:
        return None
    w = Writer()
    rec.write(w)
    return bytes(w.buf)


def _views(b: bytes, off: int) -> list[Any]:
    pad = b"\xee" * off
    return [pad + b, bytearray(pad + b), memoryview(pad + b), memoryview(b"\0" * 9 + pad + b)[9:]]


def test_every_record_is_declared() -> None:
    assert len(RECORDS) >= 57  # 45 client-port records, 13 txn records (MultiHeader counted once)
    assert {"SetDataRequest", "CreateRequest", "GetDataResponse", "TxnHeader", "CreateTxn", "MultiTxn"} <= set(RECORDS)
    assert [n for n, _ in jute_fields(p.SetDataRequest)] == ["path", "data", "version"]
    assert [t.name for _, t in jute_fields(txn.CreateTxn)] == ["ustring", "buffer", "vector<ACL>", "boolean", "[int]"]


@settings(deadline=None, max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(_any_record, st.integers(0, 3))
def test_round_trip_through_every_reader(rec: Any, off: int) -> None:
    cls = type(rec)
    data = interp_bytes(rec)
    gen = generated_write(rec)
    assert gen is None or gen == data
    assert read_fields(cls, Reader(data)) == rec
    assert cls.read(Reader(data)) == rec
    for view in _views(data, off):
        got = cls._jute_decode(view, off, 1 << 20)
        assert got == rec and type(got) is cls
        for name, _ in jute_fields(cls):  # no memoryview leaks out of a decoder
            assert not isinstance(getattr(got, name), memoryview | bytearray)


def _outcome(read: Any) -> Any:
    try:
        return read()
    except JuteError:
        return JuteError
    except UnicodeDecodeError:
        return UnicodeDecodeError


def _hostile(data: bytes, data2: st.DataObject) -> bytes:
    how = data2.draw(st.sampled_from(["cut", "flip", "random", "length"]))
    if how == "cut" and data:
        return data[: data2.draw(st.integers(0, len(data) - 1))]
    if how == "flip" and data:
        at = data2.draw(st.integers(0, len(data) - 1))
        return data[:at] + bytes([data2.draw(st.integers(0, 255))]) + data[at + 1 :]
    if how == "length" and len(data) >= 4:
        at = data2.draw(st.integers(0, len(data) - 4))
        n = data2.draw(st.sampled_from([-2, -1, 0, 1, 2**31 - 1, -(2**31), 1000]))
        return data[:at] + struct.pack(">i", n) + data[at + 4 :]
    return data2.draw(st.binary(max_size=40))


@settings(deadline=None, max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(_any_record, st.data(), st.sampled_from([0, 1, 3, 6, 100, 1 << 20]))
def test_hostile_input_every_reader_agrees(rec: Any, data2: st.DataObject, max_len: int) -> None:
    cls = type(rec)
    blob = _hostile(interp_bytes(rec), data2)
    want = _outcome(lambda: read_fields(cls, Reader(blob, max_len=max_len)))
    assert want is not UnicodeDecodeError
    assert _outcome(lambda: cls.read(Reader(blob, max_len=max_len))) == want
    for view in _views(blob, 2):
        got = _outcome(lambda v=view: cls._jute_decode(v, 2, max_len))  # type: ignore[misc]
        if want is JuteError:
            assert got in (JuteError, UnicodeDecodeError)
        else:
            assert got == want


_REQUEST_OPS = sorted(int(op) for op in p._REQUEST_DECODERS)


@settings(deadline=None, max_examples=400)
@given(st.sampled_from(_REQUEST_OPS), st.binary(max_size=60), st.sampled_from([0, 5, 100, 1 << 20]))
def test_decode_request_raises_only_protocol_error(op: int, blob: bytes, max_len: int) -> None:
    for payload in (blob, memoryview(b"12345678" + blob)):
        try:
            p.decode_request(op, payload, max_len=max_len, offset=0 if payload is blob else 8)
        except p.ProtocolError:
            pass


# ------------------------------------------------------------ generated frame encoders


def _generic_frame(head: bytes, rec: Any, opcode: int | None = None) -> bytes:
    w = Writer()
    w.buf += head
    if opcode is not None and type(rec) is p.SetWatches:
        rec.write(w, opcode)
    else:
        rec.write(w)
    return struct.pack(">i", len(w.buf)) + bytes(w.buf)


_responses = st.sampled_from([c for c in PLAIN if c.__module__.endswith("responses")]).flatmap(records_of)
_stat_bytes = _stats.map(lambda s: STAT_STRUCT.pack(*s))


@settings(deadline=None, max_examples=400)
@given(_i32, _i64, _i32, _responses, _stat_bytes)
def test_encode_reply_is_the_generic_frame(xid: int, zxid: int, err: int, body: Any, packed: bytes) -> None:
    assert p.encode_reply(xid, zxid, err, body) == _generic_frame(struct.pack(">iqi", xid, zxid, err), body)
    if hasattr(body, "stat"):  # the server's form: DataNode.stat_bytes()
        fields = {n: getattr(body, n) for n, _ in jute_fields(type(body))}
        fields["stat"] = packed
        body2 = type(body)(**fields)
        assert p.encode_reply(xid, zxid, err, body2) == _generic_frame(struct.pack(">iqi", xid, zxid, err), body2)
        assert p.decode_response(_op_of(body2), p.encode_reply(xid, zxid, err, body2)[20:]) in (
            None, body2.__class__(**{**fields, "stat": Stat(*STAT_STRUCT.unpack(packed))}))


def _op_of(body: Any) -> int:
    return {
        p.Create2Response: OpCode.create2, p.ExistsResponse: OpCode.exists, p.GetDataResponse: OpCode.getData,
        p.SetDataResponse: OpCode.setData, p.GetACLResponse: OpCode.getACL, p.SetACLResponse: OpCode.setACL,
        p.GetChildren2Response: OpCode.getChildren2,
    }[type(body)]


@settings(deadline=None, max_examples=300)
@given(_i32, _i32, st.sampled_from([c for c in PLAIN if c.__module__.endswith("requests")]).flatmap(records_of))
def test_encode_request_is_the_generic_frame(xid: int, opcode: int, req: Any) -> None:
    for op in (opcode, 101, 105):
        try:
            want = _generic_frame(struct.pack(">ii", xid, op), req, op)
        except ValueError:  # SetWatches with persistent watches as opcode 101
            continue
        assert p.encode_request(xid, op, req) == want


@settings(deadline=None, max_examples=200)
@given(_i32, _i32, _text, _i64)
def test_encode_notification_is_the_generic_frame(t: int, state: int, path: str, zxid: int) -> None:
    want = _generic_frame(struct.pack(">iqi", -1, zxid, 0), p.WatcherEvent(t, state, path))
    assert p.encode_notification(t, state, path, zxid) == want
    assert p.decode_notification(want[4:]) == p.WatcherEvent(t, state, path)


_txn_classes = [c for c in PLAIN if c.__module__.endswith(".txn") and c not in (txn.TxnHeader, txn.TxnDigest)]
_headers = st.builds(txn.TxnHeader, _i64, _i32, _i64, _i64, _i32)


@settings(deadline=None, max_examples=500)
@given(_headers, st.sampled_from(_txn_classes).flatmap(records_of),
       st.one_of(st.none(), st.builds(txn.TxnDigest, _i32, _i64)))
def test_txn_fast_paths_are_the_generic_ones(hdr: txn.TxnHeader, rec: Any, digest: Any) -> None:
    if type(rec) is txn.CloseSessionTxn and rec.paths is None:
        digest = None  # an old-format close has no body: a digest would read as its paths
    w = Writer()
    hdr.write(w)
    rec.write(w)
    if digest is not None:
        digest.write(w)
    assert txn.encode_txn(hdr, rec, digest) == bytes(w.buf)
    typ = {v: k for k, v in txn._RECORD_OF_TYPE.items()}[type(rec)]
    hdr = txn.TxnHeader(hdr.client_id, hdr.cxid, hdr.zxid, hdr.time, typ)
    payload = txn.encode_txn(hdr, rec, digest)
    slow = _slow_decode_txn(payload)
    assert txn.decode_txn(payload) == slow
    assert txn.decode_txn(bytearray(payload)) == slow
    assert slow == (hdr, rec, digest)


def _slow_decode_txn(payload: Any) -> Any:
    return txn.decode_txn(bytearray(payload))  # not bytes: the general path


@settings(deadline=None, max_examples=800, suppress_health_check=[HealthCheck.too_slow])
@given(_headers, st.sampled_from([txn.SetDataTxn, txn.CreateTxn]).flatmap(records_of), st.data())
def test_decode_txn_hostile(hdr: txn.TxnHeader, rec: Any, data2: st.DataObject) -> None:
    typ = 5 if type(rec) is txn.SetDataTxn else data2.draw(st.sampled_from([1, 15]))
    payload = _hostile(txn.encode_txn(txn.TxnHeader(hdr.client_id, hdr.cxid, hdr.zxid, hdr.time, typ), rec), data2)
    want = _outcome(lambda: _slow_decode_txn(payload))
    assert want is not UnicodeDecodeError
    assert _outcome(lambda: txn.decode_txn(payload)) == want


# ------------------------------------------------------------ the generated source


def test_show_prints_the_table_and_the_generated_code(capsys: pytest.CaptureFixture[str]) -> None:
    out = show("SetDataRequest")
    assert out.startswith("SetDataRequest {\n    ustring")
    for fn in ("def __init__(self, path, data, version)", "def read(r)", "def write(self, w)", "def _jute_decode("):
        assert fn in out
    assert "def encode_reply(" in show("encode_reply")
    assert "def _decode_txn_fast(" in show("_decode_txn_fast")
    assert main(["--show", "CreateTxn"]) == 0
    assert "[int]              parent_cversion" in capsys.readouterr().out
    assert main(["--show", "NoSuchRecord"]) == 2
    assert main([]) == 0 and "TxnDigest {" in capsys.readouterr().out
