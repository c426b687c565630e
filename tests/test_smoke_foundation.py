"""Round-trips of the shared foundation: jute primitives and txn records."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_quorum.protocol.consts import OpCode
from trio_quorum.protocol.data import ACL, Id
from trio_quorum.protocol.jute import JuteError, Reader, Writer
from trio_quorum.protocol.txn import (
    CloseSessionTxn,
    CreateTxn,
    MultiTxn,
    SetDataTxn,
    TxnHeader,
    decode_txn,
    encode_txn,
)


@given(st.integers(-(2**31), 2**31 - 1), st.integers(-(2**63), 2**63 - 1), st.text(), st.binary())
def test_primitives_round_trip(i, q, s, b):
    w = Writer()
    w.write_int(i)
    w.write_long(q)
    w.write_ustring(s)
    w.write_buffer(b)
    r = Reader(w.getvalue())
    assert (r.read_int(), r.read_long(), r.read_ustring(), r.read_buffer()) == (i, q, s, b)
    assert r.at_end()


def test_null_reads_as_empty_and_lies_are_rejected():
    assert Reader(b"\xff\xff\xff\xff").read_buffer() == b""
    assert Reader(b"\xff\xff\xff\xff").read_ustring_nullable() is None
    with pytest.raises(JuteError):
        Reader(b"\x00\x00\x00\x10abc").read_buffer()
    with pytest.raises(JuteError):
        Reader(b"\xff\xff\xff\xfe").read_buffer()
    with pytest.raises(JuteError):
        Reader(b"\x7f\xff\xff\xff").read_vector(Reader.read_int)


def test_txn_round_trip():
    acl = (ACL(31, Id("world", "anyone")),)
    hdr = TxnHeader(0x100, 7, 0x200000001, 1700000000000, OpCode.multi)
    rec = MultiTxn(
        (
            (OpCode.create, CreateTxn("/a", b"x", acl, False, 3)),
            (OpCode.setData, SetDataTxn("/a", b"y", 1)),
        )
    )
    assert decode_txn(encode_txn(hdr, rec))[:2] == (hdr, rec)
    close = TxnHeader(1, 0, 2, 3, OpCode.closeSession)
    assert decode_txn(encode_txn(close, CloseSessionTxn(("/e1", "/e2"))))[1] == CloseSessionTxn(("/e1", "/e2"))
    assert decode_txn(encode_txn(close, CloseSessionTxn(None)))[1] == CloseSessionTxn(None)
