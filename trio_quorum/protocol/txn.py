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

Each record is declared once, as its jute field table (:mod:`.schema`); the
readers, writers, and the byte-level :func:`encode_txn` / :func:`decode_txn`
fast paths are generated from the tables (:mod:`.codegen`), with setData and
create (the bulk of a log) inlined in them.

Performance (every write builds a header and a record, and the log encodes
them): the records are slotted dataclasses **without** ``frozen=True``, whose
``__init__`` is a plain slot store per field (a frozen ``TxnHeader`` cost
~0.9 us to build, ~0.25 us now).  They keep value equality and hashing
(``unsafe_hash``); treat them as immutable all the same: one instance is
shared by the log, the tree and (in an ensemble) the proposal.

Invariants: no IO; :func:`decode_txn` raises only :class:`~.jute.JuteError`.
"""

from __future__ import annotations

__sans_io__ = True

from collections.abc import Callable
from typing import Annotated, Any

from . import schema
from .codegen import (
    build_lines,
    compile_function,
    decode_lines,
    encode_case,
    fields_of,
    indent,
    make_encoder,
)
from .consts import OpCode
from .jute import JuteError, Reader, Writer
from .schema import ACLs, Bool, Buffer, Int, JuteRecord, Long, UString, record

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


@record(frozen=False)
class TxnHeader(JuteRecord):
    """The header of every txn: the session and its request's cxid, the zxid, the
    leader's wall clock (ms) when it proposed the txn, and the txn type."""

    client_id: Long
    cxid: Int
    zxid: Long
    time: Long
    type: Int


#: CreateTxnV0 (pre-3.3) had no parentCVersion; -1 means "bump by one".
ParentCVersion = Annotated[int, schema.Trailing(schema.INT, -1)]


@record(frozen=False)
class CreateTxn(JuteRecord):
    """create / create2: the parent's cversion after the create is in ``parent_cversion``."""

    path: UString
    data: Buffer
    acl: ACLs
    ephemeral: Bool
    parent_cversion: ParentCVersion


@record(frozen=False)
class CreateContainerTxn(JuteRecord):
    """createContainer: a node deleted once its last child goes."""

    path: UString
    data: Buffer
    acl: ACLs
    parent_cversion: Int


@record(frozen=False)
class CreateTTLTxn(JuteRecord):
    """createTTL: a node deleted once childless and unmodified for ``ttl`` ms."""

    path: UString
    data: Buffer
    acl: ACLs
    parent_cversion: Int
    ttl: Long


@record(frozen=False)
class DeleteTxn(JuteRecord):
    """delete, and deleteContainer (the container reaper's)."""

    path: UString


@record(frozen=False)
class SetDataTxn(JuteRecord):
    """setData: ``version`` is the node's version after the txn."""

    path: UString
    data: Buffer
    version: Int


@record(frozen=False)
class SetACLTxn(JuteRecord):
    """setACL: ``version`` is the node's aversion after the txn."""

    path: UString
    acl: ACLs
    version: Int


@record(frozen=False)
class CheckVersionTxn(JuteRecord):
    """check (in a multi): the version the node had to have."""

    path: UString
    version: Int


@record(frozen=False)
class CreateSessionTxn(JuteRecord):
    """createSession: the negotiated session timeout (ms)."""

    timeout: Int


@record(frozen=False)
class CloseSessionTxn(JuteRecord):
    """``paths`` is ``None`` for an old-format close with an empty body."""

    paths: Annotated[tuple[str, ...] | None, schema.Trailing(schema.USTRING_VECTOR)]


@record(frozen=False)
class ErrorTxn(JuteRecord):
    """A write that failed: its error, so the zxid and the session's order stay whole."""

    err: Int


def _write_subtxns(w: Writer, txns: tuple[tuple[int, Any], ...]) -> None:
    w.write_int(len(txns))
    for typ, rec in txns:
        w.write_int(typ)
        w.write_buffer(encode_record(rec))


def _read_subtxns(r: Reader) -> tuple[tuple[int, Any], ...]:
    n = r.read_int()
    if n < 0 or n > r.remaining():
        raise JuteError(f"bad multi txn count {n}")
    subs: list[tuple[int, TxnRecord]] = []
    for _ in range(n):
        sub_type = r.read_int()
        body = r.read_buffer()
        subs.append((sub_type, decode_record(sub_type, Reader(body))))
    return tuple(subs)


#: MultiTxn's body: ``int count`` then per sub-txn ``int type`` and the record as a ``buffer``
SubTxns = Annotated[tuple[tuple[int, "TxnRecord"], ...], schema.Custom("vector<Txn>", _read_subtxns, _write_subtxns)]


@record(frozen=False)
class MultiTxn(JuteRecord):
    """Sub-transactions as (type, record) pairs; all share the multi's zxid."""

    txns: SubTxns = ()


@record(frozen=False)
class TxnDigest(JuteRecord):
    """The tree's digest after the txn (ZooKeeper 3.6+ with ``digest.enabled``)."""

    version: Int
    tree_digest: Long


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

#: The record class of each header type.
_RECORD_OF_TYPE: dict[int, type] = {
    int(OpCode.create): CreateTxn,
    int(OpCode.create2): CreateTxn,
    int(OpCode.createContainer): CreateContainerTxn,
    int(OpCode.createTTL): CreateTTLTxn,
    int(OpCode.delete): DeleteTxn,
    int(OpCode.deleteContainer): DeleteTxn,
    int(OpCode.setData): SetDataTxn,
    int(OpCode.setACL): SetACLTxn,
    int(OpCode.check): CheckVersionTxn,
    int(OpCode.createSession): CreateSessionTxn,
    int(OpCode.closeSession): CloseSessionTxn,
    int(OpCode.error): ErrorTxn,
    int(OpCode.multi): MultiTxn,
}
_READERS: dict[int, Callable[[Reader], Any]] = {t: cls.read for t, cls in _RECORD_OF_TYPE.items()}  # type: ignore[attr-defined]


def decode_record(typ: int, r: Reader) -> TxnRecord:
    """Decode the record that goes with header type ``typ``."""
    read = _READERS.get(typ)
    if read is None:
        raise JuteError(f"unknown txn type {typ}")
    rec: TxnRecord = read(r)
    return rec


def encode_record(rec: TxnRecord) -> bytes:
    w = Writer()
    rec.write(w)
    return bytes(w.buf)


# ---------------------------------------------------------------- generated fast paths
#
# encode_txn and _decode_txn_fast are generated from the tables above; setData
# and create are inlined in them, the other records have their own encoder in
# _FAST_ENCODERS.  Print them with ``python -m trio_quorum.protocol --show encode_txn``.

_ns: dict[str, Any] = {"Reader": Reader}
#: Inlined in encode_txn and _decode_txn_fast: what a log is mostly made of.
_HOT = (SetDataTxn, CreateTxn)
_FAST_ENCODERS: dict[type, Callable[[TxnHeader, Any], bytes | None]] = {}
for _cls in (SetDataTxn, CreateTxn, CreateContainerTxn, CreateTTLTxn, DeleteTxn, SetACLTxn, CheckVersionTxn,
             ErrorTxn, CreateSessionTxn):
    _enc = make_encoder(f"_encode_{_cls.__name__}", "hdr, rec",
                        encode_case(fields_of("hdr", TxnHeader) + fields_of("rec", _cls), _ns), _ns)
    if _enc is not None:
        _FAST_ENCODERS[_cls] = _enc


def _encode_txn_general(hdr: TxnHeader, rec: TxnRecord, digest: TxnDigest | None) -> bytes:
    if digest is None and hdr.__class__ is TxnHeader:
        enc = _FAST_ENCODERS.get(rec.__class__)
        if enc is not None:
            payload = enc(hdr, rec)
            if payload is not None:
                return payload
    w = Writer()
    hdr.write(w)
    rec.write(w)
    if digest is not None:
        digest.write(w)
    return bytes(w.buf)


def _encode_txn_source() -> list[str]:
    _ns.update(TxnHeader=TxnHeader, _general=_encode_txn_general)
    lines = [
        "def encode_txn(hdr, rec, digest=None):",
        "    if digest is None and hdr.__class__ is TxnHeader:",
        "        cls = rec.__class__",
    ]
    for k, cls in enumerate(_HOT):
        _ns[cls.__name__] = cls
        case = encode_case(fields_of("hdr", TxnHeader) + fields_of("rec", cls), _ns)
        assert case is not None
        lines += [f"        {'if' if k == 0 else 'elif'} cls is {cls.__name__}:", *indent(case, 3)]
    lines.append("    return _general(hdr, rec, digest)")
    return lines


encode_txn: Callable[..., bytes] = compile_function("encode_txn", _encode_txn_source(), _ns)
encode_txn.__doc__ = "TxnHeader + record (+ digest): the bytes a log entry and a PROPOSAL carry."


def _decode_txn_source() -> list[str]:
    """``_decode_txn_fast(b)``: :func:`decode_txn` of ``bytes`` for the hot
    records, None for the other types; None too at the first irregular input
    (the general decoder then decodes it and raises its own errors)."""
    hdr = [(f"h_{n}", t) for n, t in schema.jute_fields(TxnHeader)]
    lines = ["def _decode_txn_fast(b):", "    end = len(b)", "    max_len = end", "    p = 0"]
    lines += indent(decode_lines(hdr, "return None", _ns))
    for k, cls in enumerate(_HOT):
        types = sorted(t for t, c in _RECORD_OF_TYPE.items() if c is cls)
        test = " or ".join(f"h_type == {t}" for t in types)
        table = schema.jute_fields(cls)
        lines.append(f"    {'if' if k == 0 else 'elif'} {test}:")
        lines += indent(decode_lines(table, "return None", _ns), 2)
        lines += indent(build_lines(cls, [n for n, _ in table], [n for n, _ in table], "o", False, _ns), 2)
    lines += ["    else:", "        return None"]
    lines += indent(build_lines(TxnHeader, [n for n, _ in schema.jute_fields(TxnHeader)], [v for v, _ in hdr], "h",
                                False, _ns))
    digest = schema.jute_fields(TxnDigest)
    size = sum(t.min_size for _, t in digest)
    lines += [f"    if end - p < {size}:", "        return h, o, None"]
    lines += indent(decode_lines(digest, "return None", _ns, checked=True))
    lines += indent(build_lines(TxnDigest, [n for n, _ in digest], [n for n, _ in digest], "d", False, _ns))
    lines.append("    return h, o, d")
    return lines


_decode_txn_fast: Callable[[bytes], tuple[TxnHeader, TxnRecord, TxnDigest | None] | None] = compile_function(
    "_decode_txn_fast", _decode_txn_source(), _ns)


def decode_txn(data: bytes | bytearray | memoryview) -> tuple[TxnHeader, TxnRecord, TxnDigest | None]:
    """Inverse of :func:`encode_txn`. Raises :class:`JuteError` on malformed input."""
    if data.__class__ is bytes:
        try:
            fast = _decode_txn_fast(data)
        except UnicodeDecodeError:
            fast = None  # the Reader raises its own JuteError for it
        if fast is not None:
            return fast
    r = Reader(data, max_len=len(data))
    hdr = TxnHeader.read(r)
    rec = decode_record(hdr.type, r)
    digest = None
    if r.remaining() >= 12:
        digest = TxnDigest.read(r)
    return hdr, rec, digest

