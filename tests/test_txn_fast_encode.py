"""The generated txn encoders (``encode_txn``, ``txn._FAST_ENCODERS``) write exactly the generic jute bytes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trio_quorum.persistence.txnlog import encode_entry, entry_head
from trio_quorum.protocol.data import ACL, CREATOR_ALL_ACL, OPEN_ACL_UNSAFE, Id
from trio_quorum.protocol.jute import Writer
from trio_quorum.protocol.txn import (
    CheckVersionTxn,
    CreateContainerTxn,
    CreateSessionTxn,
    CreateTxn,
    DeleteTxn,
    ErrorTxn,
    SetDataTxn,
    TxnHeader,
    TxnRecord,
    decode_txn,
    encode_txn,
)

_i32 = st.integers(-(2**31), 2**31 - 1)
_i64 = st.integers(-(2**63), 2**63 - 1)
_paths = st.text(min_size=0, max_size=30)
_data = st.one_of(st.none(), st.binary(max_size=200))
_acls = st.one_of(
    st.just(OPEN_ACL_UNSAFE),
    st.just(CREATOR_ALL_ACL),
    st.lists(
        st.builds(ACL, st.integers(0, 31), st.builds(Id, st.sampled_from(["digest", "ip", "world"]), _paths)),
        max_size=3,
    ).map(tuple),
)
_records = st.one_of(
    st.builds(SetDataTxn, _paths, _data, _i32),
    st.builds(CreateTxn, _paths, _data, _acls, st.booleans(), _i32),
    st.builds(CreateContainerTxn, _paths, _data, _acls, _i32),
    st.builds(DeleteTxn, _paths),
    st.builds(CheckVersionTxn, _paths, _i32),
    st.builds(ErrorTxn, _i32),
    st.builds(CreateSessionTxn, _i32),
)


def _generic(hdr: TxnHeader, rec: TxnRecord) -> bytes:
    w = Writer()
    hdr.write(w)
    rec.write(w)
    return bytes(w.buf)


@settings(deadline=None, max_examples=300)
@given(st.builds(TxnHeader, _i64, _i32, _i64, _i64, _i32), _records)
def test_fast_encoding_is_the_generic_encoding(hdr: TxnHeader, rec: TxnRecord) -> None:
    payload = encode_txn(hdr, rec)
    assert payload == _generic(hdr, rec)
    assert encode_entry(hdr, rec) == entry_head(payload) + payload + b"B"


def test_fast_encoding_round_trips() -> None:
    hdr = TxnHeader(0x1234, 7, 0x100000002, 1_700_000_000_000, 5)
    rec = SetDataTxn("/a/ü", b"x" * 100, 3)
    h, r, d = decode_txn(encode_txn(hdr, rec))
    assert (h, r, d) == (hdr, rec, None)
    hdr = TxnHeader(0x1234, 8, 0x100000003, 1_700_000_000_000, 1)
    rec2 = CreateTxn("/a/b", b"d", OPEN_ACL_UNSAFE, True, 4)
    assert decode_txn(encode_txn(hdr, rec2))[:2] == (hdr, rec2)


def test_records_keep_value_equality_and_hash() -> None:
    a, b = SetDataTxn("/a", b"1", 2), SetDataTxn("/a", b"1", 2)
    assert a == b and hash(a) == hash(b)
    assert TxnHeader(1, 2, 3, 4, 5) == TxnHeader(1, 2, 3, 4, 5)
    assert len({TxnHeader(1, 2, 3, 4, 5), TxnHeader(1, 2, 3, 4, 5)}) == 1
