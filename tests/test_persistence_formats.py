"""Txn log and snapshot formats: round trips, torn tails, mid-log corruption."""

from __future__ import annotations

import pytest

from trio_quorum.core.node import DataNode
from trio_quorum.persistence.api import CorruptStorage
from trio_quorum.persistence.snapshot import (
    ZxidDigest,
    decode_snapshot,
    encode_snapshot,
    looks_complete,
)
from trio_quorum.persistence.txnlog import (
    FILE_HEADER_SIZE,
    encode_entry,
    encode_file_header,
    log_name,
    padded_size,
    scan_log,
    zxid_from_name,
)
from trio_quorum.protocol.consts import OpCode, Perm
from trio_quorum.protocol.data import ACL, OPEN_ACL_UNSAFE, Id
from trio_quorum.protocol.txn import (
    CloseSessionTxn,
    CreateSessionTxn,
    CreateTxn,
    DeleteTxn,
    ErrorTxn,
    MultiTxn,
    SetDataTxn,
    TxnDigest,
    TxnHeader,
)

DIGEST_ACL = (ACL(Perm.ALL, Id("digest", "u:hash=")),)


def _txns() -> list[tuple[TxnHeader, object, TxnDigest | None]]:
    out = []
    recs = [
        (OpCode.createSession, CreateSessionTxn(30000)),
        (OpCode.create, CreateTxn("/a", b"data", DIGEST_ACL, False, 1)),
        (OpCode.setData, SetDataTxn("/a", b"x" * 300, 1)),
        (OpCode.multi, MultiTxn(((OpCode.create, CreateTxn("/b", b"", OPEN_ACL_UNSAFE, True, 2)),))),
        (OpCode.error, ErrorTxn(-101)),
        (OpCode.delete, DeleteTxn("/a")),
        (OpCode.closeSession, CloseSessionTxn(("/b",))),
    ]
    for i, (typ, rec) in enumerate(recs, 1):
        out.append((TxnHeader(0x55, i, i, 1000 + i, typ), rec, TxnDigest(2, 12345 + i) if i % 2 else None))
    return out


def _log_bytes() -> bytes:
    return encode_file_header(0) + b"".join(encode_entry(h, r, d) for h, r, d in _txns())  # type: ignore[arg-type]


def test_log_round_trip_with_padding() -> None:
    data = _log_bytes()
    scan = scan_log(data + b"\0" * 4096, "log.1")
    assert [(e.hdr, e.rec, e.digest) for e in scan.entries] == _txns()
    assert scan.end == len(data) and scan.torn is None


def test_torn_last_record_at_every_offset() -> None:
    data = _log_bytes()
    whole = scan_log(data, "log.1").entries
    last = whole[-1].offset
    for cut in range(last, len(data)):
        for pad in (b"", b"\0" * 64):
            torn = data[:cut] + pad
            scan = scan_log(torn, "log.1")
            assert [e.hdr.zxid for e in scan.entries] == [e.hdr.zxid for e in whole[:-1]], cut
            assert scan.end == last
            # a cut tail that is still all zeros is indistinguishable from padding
            assert (scan.torn is None) == (not any(torn[last:])), cut


def test_flipped_byte_mid_log_names_file_and_offset() -> None:
    data = _log_bytes()
    entries = scan_log(data, "log.1").entries
    victim = entries[2]
    for off in range(victim.offset, entries[3].offset):
        bad = bytearray(data)
        bad[off] ^= 0x40
        with pytest.raises(CorruptStorage) as ei:
            scan_log(bytes(bad), "log.1")
        msg = str(ei.value)
        assert "log.1" in msg and f"offset {victim.offset}" in msg, (off, msg)


def test_zeroed_hole_mid_log_is_corruption() -> None:
    data = bytearray(_log_bytes())
    entries = scan_log(bytes(data), "log.1").entries
    a, b = entries[1].offset, entries[2].offset
    data[a:b] = bytes(b - a)
    with pytest.raises(CorruptStorage, match="offset"):
        scan_log(bytes(data), "log.1")


def test_bad_magic_and_names() -> None:
    with pytest.raises(CorruptStorage, match="not a ZooKeeper txn log"):
        scan_log(b"ZKSN" + bytes(40), "log.1")
    assert scan_log(b"", "log.1").entries == []
    assert log_name(0x1A) == "log.1a" and zxid_from_name("log.1a", "log") == 0x1A
    assert zxid_from_name("snapshot.10.gz", "snapshot") == 16 and zxid_from_name("log.zz", "log") == -1
    assert padded_size(100, 0, 4096) == 4096 and padded_size(100, 8192, 4096) == 8192
    assert padded_size(9000, 8192, 4096) == 12288


def _nodes() -> list[tuple[str, DataNode]]:
    root = DataNode(b"", -1, 0, 0, 0, 0, cversion=2, pzxid=7)
    a = DataNode(b"hello", 1, 3, 4, 5, 6, 1, 0, 2, 0x55, 3)
    b = DataNode(b"\x00" * 1000, -1, 7, 7, 8, 8, ephemeral_owner=0x55, pzxid=7)
    return [("", root), ("/a", a), ("/a/b", b)]


def test_snapshot_round_trip_and_seal() -> None:
    sessions = {0x55: 30000, 0x56: 4000}
    acls = [(1, DIGEST_ACL)]
    blob = b"".join(encode_snapshot(sessions, acls, _nodes(), digest=ZxidDigest(7, 2, 99), chunk_size=64))
    assert looks_complete(blob[-5:])
    snap = decode_snapshot(blob, "snapshot.7")
    assert snap.sessions == sessions and snap.acls == [(1, list(DIGEST_ACL))]
    assert [(p, n.stat(), n.data) for p, n in snap.nodes] == [(p, n.stat(), n.data) for p, n in _nodes()]
    assert snap.digest == ZxidDigest(7, 2, 99) and snap.dbid == -1


def test_snapshot_corruption_detected() -> None:
    blob = b"".join(encode_snapshot({1: 2}, [], _nodes()))
    # every byte of the body is covered by the first seal
    for off in range(0, len(blob) - 40, 7):
        bad = bytearray(blob)
        bad[off] ^= 0x10
        with pytest.raises(CorruptStorage):
            decode_snapshot(bytes(bad), "snapshot.7")
    with pytest.raises(CorruptStorage):
        decode_snapshot(blob[: len(blob) // 2], "snapshot.7")
    # a digest-less (pre-3.6) snapshot still loads
    first_seal_end = len(blob) - (8 + 4 + 8) - (8 + 5)
    assert decode_snapshot(blob[:first_seal_end]).digest is None


def test_header_size() -> None:
    assert FILE_HEADER_SIZE == 16 and encode_file_header(0)[:4] == b"ZKLG"
