"""Transaction records (``org.apache.zookeeper.txn``) and their jute encoding (sans-IO).

A transaction is a :class:`TxnHeader` plus one record whose class depends on
``header.type``; the pair is what the txn log stores, what ZAB proposes and
what the data tree applies.  Failed writes are transactions too
(:class:`ErrorTxn`), so a session's requests keep their order and every zxid
is accounted for.

Which record goes with which header type (``SerializeUtils.deserializeTxn``):

=====================================  =====================
type                                   record
=====================================  =====================
create(1), create2(15)                 CreateTxn
createContainer(19)                    CreateContainerTxn
createTTL(21)                          CreateTTLTxn
delete(2), deleteContainer(20)         DeleteTxn
setData(5)                             SetDataTxn
setACL(7)                              SetACLTxn
check(13)                              CheckVersionTxn
createSession(-10)                     CreateSessionTxn
closeSession(-11)                      CloseSessionTxn (body may be empty: paths unknown)
error(-1)                              ErrorTxn
multi(14)                              MultiTxn (a vector of (type, bytes) sub-txns)
=====================================  =====================

An optional ``TxnDigest{int version; long treeDigest}`` may follow the record
(ZooKeeper 3.6+ with ``digest.enabled``); :func:`decode_txn` returns it when present.

Performance (every write builds a header and a record, and the log encodes
them): the records are slotted dataclasses **without** ``frozen=True``, whose
generated ``__init__`` goes through ``object.__setattr__`` per field (a
``TxnHeader`` cost ~0.9 us to build frozen, ~0.25 us now).  They keep value
equality and hashing (``unsafe_hash``); treat them as immutable all the same:
one instance is shared by the log, the tree and (in an ensemble) the proposal.
:func:`encode_txn` encodes the hot record types (setData, create*, delete,
error, check) with precompiled structs in one ``join`` instead of a ``Writer``.
"""

from __future__ import annotations

__sans_io__ = True

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .consts import OpCode
from .data import ACL, OPEN_ACL_UNSAFE, read_acl, write_acl
from .jute import JuteError, Reader, Writer

__all__ = [
    "TxnHeader",
    "CreateTxn",
    "CreateContainerTxn",
    "CreateTTLTxn",
    "DeleteTxn",
    "SetDataTxn",
    "SetACLTxn",
    "CheckVersionTxn",
    "CreateSessionTxn",
    "CloseSessionTxn",
    "ErrorTxn",
    "MultiTxn",
    "TxnDigest",
    "TxnRecord",
    "encode_txn",
    "decode_txn",
    "encode_record",
    "decode_record",
]

_HDR = struct.Struct(">qiqqi")


@dataclass(slots=True, unsafe_hash=True)
class TxnHeader:
    client_id: int
    cxid: int
    zxid: int
    time: int
    type: int

    def write(self, w: Writer) -> None:
        w.buf += _HDR.pack(self.client_id, self.cxid, self.zxid, self.time, self.type)

    @staticmethod
    def read(r: Reader) -> TxnHeader:
        pos = r._need(_HDR.size)
        return TxnHeader(*_HDR.unpack_from(r.data, pos))


@dataclass(slots=True, unsafe_hash=True)
class CreateTxn:
    path: str
    data: bytes
    acl: tuple[ACL, ...]
    ephemeral: bool
    parent_cversion: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_buffer(self.data)
        w.write_vector(self.acl, write_acl)
        w.write_bool(self.ephemeral)
        w.write_int(self.parent_cversion)


@dataclass(slots=True, unsafe_hash=True)
class CreateContainerTxn:
    path: str
    data: bytes
    acl: tuple[ACL, ...]
    parent_cversion: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_buffer(self.data)
        w.write_vector(self.acl, write_acl)
        w.write_int(self.parent_cversion)


@dataclass(slots=True, unsafe_hash=True)
class CreateTTLTxn:
    path: str
    data: bytes
    acl: tuple[ACL, ...]
    parent_cversion: int
    ttl: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_buffer(self.data)
        w.write_vector(self.acl, write_acl)
        w.write_int(self.parent_cversion)
        w.write_long(self.ttl)


@dataclass(slots=True, unsafe_hash=True)
class DeleteTxn:
    path: str

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)


@dataclass(slots=True, unsafe_hash=True)
class SetDataTxn:
    path: str
    data: bytes
    version: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_buffer(self.data)
        w.write_int(self.version)


@dataclass(slots=True, unsafe_hash=True)
class SetACLTxn:
    path: str
    acl: tuple[ACL, ...]
    version: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_vector(self.acl, write_acl)
        w.write_int(self.version)


@dataclass(slots=True, unsafe_hash=True)
class CheckVersionTxn:
    path: str
    version: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_int(self.version)


@dataclass(slots=True, unsafe_hash=True)
class CreateSessionTxn:
    timeout: int

    def write(self, w: Writer) -> None:
        w.write_int(self.timeout)


@dataclass(slots=True, unsafe_hash=True)
class CloseSessionTxn:
    """``paths`` is ``None`` for an old-format close with an empty body."""

    paths: tuple[str, ...] | None

    def write(self, w: Writer) -> None:
        if self.paths is not None:
            w.write_ustring_vector(self.paths)


@dataclass(slots=True, unsafe_hash=True)
class ErrorTxn:
    err: int

    def write(self, w: Writer) -> None:
        w.write_int(self.err)


@dataclass(slots=True, unsafe_hash=True)
class MultiTxn:
    """Sub-transactions as (type, record) pairs; all share the multi's zxid."""

    txns: tuple[tuple[int, TxnRecord], ...] = field(default_factory=tuple)

    def write(self, w: Writer) -> None:
        w.write_int(len(self.txns))
        for typ, rec in self.txns:
            w.write_int(typ)
            sub = Writer()
            rec.write(sub)
            w.write_buffer(bytes(sub.buf))


@dataclass(slots=True, unsafe_hash=True)
class TxnDigest:
    version: int
    tree_digest: int

    def write(self, w: Writer) -> None:
        w.write_int(self.version)
        w.write_long(self.tree_digest)


TxnRecord = (
    CreateTxn
    | CreateContainerTxn
    | CreateTTLTxn
    | DeleteTxn
    | SetDataTxn
    | SetACLTxn
    | CheckVersionTxn
    | CreateSessionTxn
    | CloseSessionTxn
    | ErrorTxn
    | MultiTxn
)


def _acl_tuple(r: Reader) -> tuple[ACL, ...]:
    return tuple(r.read_vector(read_acl))


def decode_record(typ: int, r: Reader) -> TxnRecord:
    """Decode the record that goes with header type ``typ``."""
    if typ in (OpCode.create, OpCode.create2):
        path = r.read_ustring()
        data = r.read_buffer()
        acl = _acl_tuple(r)
        ephemeral = r.read_bool()
        # CreateTxnV0 (pre-3.3) had no parentCVersion; -1 means "bump by one".
        pcv = r.read_int() if r.remaining() >= 4 else -1
        return CreateTxn(path, data, acl, ephemeral, pcv)
    if typ == OpCode.createContainer:
        return CreateContainerTxn(r.read_ustring(), r.read_buffer(), _acl_tuple(r), r.read_int())
    if typ == OpCode.createTTL:
        return CreateTTLTxn(r.read_ustring(), r.read_buffer(), _acl_tuple(r), r.read_int(), r.read_long())
    if typ in (OpCode.delete, OpCode.deleteContainer):
        return DeleteTxn(r.read_ustring())
    if typ == OpCode.setData:
        return SetDataTxn(r.read_ustring(), r.read_buffer(), r.read_int())
    if typ == OpCode.setACL:
        return SetACLTxn(r.read_ustring(), _acl_tuple(r), r.read_int())
    if typ == OpCode.check:
        return CheckVersionTxn(r.read_ustring(), r.read_int())
    if typ == OpCode.createSession:
        return CreateSessionTxn(r.read_int())
    if typ == OpCode.closeSession:
        if r.remaining() < 4:
            return CloseSessionTxn(None)
        return CloseSessionTxn(tuple(r.read_ustring_vector()))
    if typ == OpCode.error:
        return ErrorTxn(r.read_int())
    if typ == OpCode.multi:
        n = r.read_int()
        if n < 0 or n > r.remaining():
            raise JuteError(f"bad multi txn count {n}")
        subs: list[tuple[int, TxnRecord]] = []
        for _ in range(n):
            sub_type = r.read_int()
            body = r.read_buffer()
            subs.append((sub_type, decode_record(sub_type, Reader(body))))
        return MultiTxn(tuple(subs))
    raise JuteError(f"unknown txn type {typ}")


def encode_record(rec: TxnRecord) -> bytes:
    w = Writer()
    rec.write(w)
    return bytes(w.buf)


# ---------------------------------------------------------------- fast encoders
#
# TxnHeader followed by the int32 length of the record's first field (the path).
_HDR_LEN = struct.Struct(">qiqqii")
_HDR_INT = _HDR_LEN  # header + one int (ErrorTxn, CreateSessionTxn)
_pack_hdr_len = _HDR_LEN.pack
_pack_int = struct.Struct(">i").pack
_NULL = b"\xff\xff\xff\xff"
_pack_bool_int = struct.Struct(">?i").pack
_ACL_BYTES: dict[tuple[ACL, ...], bytes] = {}


def _acl_bytes(acl: tuple[ACL, ...]) -> bytes:
    """The jute vector of ``acl``; the few distinct ACL lists a server sees are memoised."""
    b = _ACL_BYTES.get(acl)
    if b is None:
        w = Writer()
        w.write_vector(acl, write_acl)
        b = bytes(w.buf)
        if len(_ACL_BYTES) < 256:
            _ACL_BYTES[acl] = b
    return b


_OPEN_ACL_BYTES = _acl_bytes(OPEN_ACL_UNSAFE)


def _enc_set_data(h: TxnHeader, r: SetDataTxn) -> bytes:
    p = r.path.encode()
    d = r.data
    if d is None:
        return b"".join((_pack_hdr_len(h.client_id, h.cxid, h.zxid, h.time, h.type, len(p)), p,
                         _NULL, _pack_int(r.version)))
    return b"".join((_pack_hdr_len(h.client_id, h.cxid, h.zxid, h.time, h.type, len(p)), p,
                     _pack_int(len(d)), d, _pack_int(r.version)))


def _enc_create(h: TxnHeader, r: CreateTxn) -> bytes:
    p = r.path.encode()
    d = r.data
    return b"".join((
        _pack_hdr_len(h.client_id, h.cxid, h.zxid, h.time, h.type, len(p)), p,
        _NULL if d is None else _pack_int(len(d)), d or b"",
        _acl_bytes(r.acl), _pack_bool_int(bool(r.ephemeral), r.parent_cversion),
    ))


def _enc_create_container(h: TxnHeader, r: CreateContainerTxn) -> bytes:
    p = r.path.encode()
    d = r.data
    return b"".join((
        _pack_hdr_len(h.client_id, h.cxid, h.zxid, h.time, h.type, len(p)), p,
        _NULL if d is None else _pack_int(len(d)), d or b"",
        _acl_bytes(r.acl), _pack_int(r.parent_cversion),
    ))


def _enc_delete(h: TxnHeader, r: DeleteTxn) -> bytes:
    p = r.path.encode()
    return _pack_hdr_len(h.client_id, h.cxid, h.zxid, h.time, h.type, len(p)) + p


def _enc_check(h: TxnHeader, r: CheckVersionTxn) -> bytes:
    p = r.path.encode()
    return b"".join((_pack_hdr_len(h.client_id, h.cxid, h.zxid, h.time, h.type, len(p)), p,
                     _pack_int(r.version)))


def _enc_error(h: TxnHeader, r: ErrorTxn) -> bytes:
    return _HDR_INT.pack(h.client_id, h.cxid, h.zxid, h.time, h.type, r.err)


def _enc_create_session(h: TxnHeader, r: CreateSessionTxn) -> bytes:
    return _HDR_INT.pack(h.client_id, h.cxid, h.zxid, h.time, h.type, r.timeout)


_FAST_ENCODERS: dict[type, Callable[[TxnHeader, Any], bytes]] = {
    SetDataTxn: _enc_set_data,
    CreateTxn: _enc_create,
    CreateContainerTxn: _enc_create_container,
    DeleteTxn: _enc_delete,
    CheckVersionTxn: _enc_check,
    ErrorTxn: _enc_error,
    CreateSessionTxn: _enc_create_session,
}


def encode_txn(hdr: TxnHeader, rec: TxnRecord, digest: TxnDigest | None = None) -> bytes:
    """TxnHeader + record (+ digest): the bytes a log entry and a PROPOSAL carry."""
    if digest is None and hdr.__class__ is TxnHeader:
        cls = rec.__class__
        if cls is SetDataTxn:
            # _enc_set_data inlined for the hottest record (same bytes).
            path = rec.path  # type: ignore[union-attr]
            d = rec.data  # type: ignore[union-attr]
            if path.__class__ is str and d.__class__ is bytes:
                p = path.encode()
                return b"".join((
                    _pack_hdr_len(hdr.client_id, hdr.cxid, hdr.zxid, hdr.time, hdr.type, len(p)), p,
                    _pack_int(len(d)), d, _pack_int(rec.version),  # type: ignore[union-attr]
                ))
        elif cls is CreateTxn:
            # _enc_create inlined for a create with OPEN_ACL_UNSAFE (same bytes).
            path = rec.path  # type: ignore[union-attr]
            d = rec.data  # type: ignore[union-attr]
            if path.__class__ is str and d.__class__ is bytes and rec.acl is OPEN_ACL_UNSAFE:  # type: ignore[union-attr]
                p = path.encode()
                return b"".join((
                    _pack_hdr_len(hdr.client_id, hdr.cxid, hdr.zxid, hdr.time, hdr.type, len(p)), p,
                    _pack_int(len(d)), d, _OPEN_ACL_BYTES,
                    _pack_bool_int(bool(rec.ephemeral), rec.parent_cversion),  # type: ignore[union-attr]
                ))
        enc = _FAST_ENCODERS.get(cls)
        if enc is not None:
            try:
                return enc(hdr, rec)
            except (AttributeError, TypeError):
                pass  # a field of an unexpected type (None path, ...): the generic path decides
    w = Writer()
    hdr.write(w)
    rec.write(w)
    if digest is not None:
        digest.write(w)
    return bytes(w.buf)


_TXN_FAST_HDR = struct.Struct(">qiqqii")  # TxnHeader + the record's first int (a length)
_FAST_INT = struct.Struct(">i")
_FAST_DIGEST = struct.Struct(">iq")
_FAST_CREATE_TYPES = (int(OpCode.create), int(OpCode.create2))
_FAST_SET_DATA = int(OpCode.setData)


def _decode_txn_fast(data: bytes) -> tuple[TxnHeader, TxnRecord, TxnDigest | None] | None:
    """:func:`decode_txn` for the txns a log replay is made of: a create with
    OPEN_ACL_UNSAFE, or a setData, with plain (non-null) strings and buffers.

    Returns None for anything else, or anything unusual (null or negative
    lengths, lengths past the end, bad UTF-8, a pre-3.3 create): the general
    decoder then decodes it and raises its own errors.
    """
    end = len(data)
    if end < 36:
        return None
    client_id, cxid, zxid, time_, typ, n = _TXN_FAST_HDR.unpack_from(data)
    if typ == _FAST_SET_DATA:
        is_create = False
    elif typ in _FAST_CREATE_TYPES:
        is_create = True
    else:
        return None
    pos = 36
    if n < 0 or pos + n + 4 > end:
        return None
    try:
        path = str(data[pos : pos + n], "utf-8")
    except UnicodeDecodeError:
        return None
    pos += n
    (dn,) = _FAST_INT.unpack_from(data, pos)
    pos += 4
    if dn < 0 or pos + dn > end:
        return None
    value = data[pos : pos + dn]
    pos += dn
    rec: TxnRecord
    if is_create:
        if not data.startswith(_OPEN_ACL_BYTES, pos):
            return None
        pos += len(_OPEN_ACL_BYTES)
        if pos + 5 > end:
            return None
        ephemeral = data[pos] != 0
        (pcv,) = _FAST_INT.unpack_from(data, pos + 1)
        pos += 5
        rec = CreateTxn(path, value, OPEN_ACL_UNSAFE, ephemeral, pcv)
    else:
        if pos + 4 > end:
            return None
        (version,) = _FAST_INT.unpack_from(data, pos)
        pos += 4
        rec = SetDataTxn(path, value, version)
    digest = None
    if end - pos >= 12:
        digest = TxnDigest(*_FAST_DIGEST.unpack_from(data, pos))
    return TxnHeader(client_id, cxid, zxid, time_, typ), rec, digest


def decode_txn(data: bytes | bytearray | memoryview) -> tuple[TxnHeader, TxnRecord, TxnDigest | None]:
    """Inverse of :func:`encode_txn`. Raises :class:`JuteError` on malformed input."""
    if data.__class__ is bytes:
        fast = _decode_txn_fast(data)
        if fast is not None:
            return fast
    r = Reader(data, max_len=len(data))
    hdr = TxnHeader.read(r)
    rec = decode_record(hdr.type, r)
    digest = None
    if r.remaining() >= 12:
        digest = TxnDigest(r.read_int(), r.read_long())
    return hdr, rec, digest
