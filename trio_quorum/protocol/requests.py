"""Client-port request records, declared once as jute field tables (sans-IO).

Every record of ``zookeeper.jute``'s ``org.apache.zookeeper.proto`` module a
client sends, with fields in jute declaration order (snake_case).  Each class
body *is* the record's table; :func:`~.schema.record` derives the class, its
reader, writer and fast decoder from it.  The codec functions that use them
are in :mod:`.records`; see ``docs/protocol.md``.

Invariants: no IO, no global mutable state; a reader raises only
:class:`~.jute.JuteError` (:class:`ProtocolError` is one).
"""

from __future__ import annotations

__sans_io__ = True

from collections.abc import Callable
from typing import Annotated, Any

from .codegen import fixed_struct
from .consts import Err, OpCode
from .jute import JuteError, Reader, Writer
from .schema import (
    ACLs,
    Bool,
    Buffer,
    Custom,
    Int,
    JuteRecord,
    Long,
    OptBool,
    UString,
    UStringOrNull,
    UStrings,
    read_fields,
    record,
    write_fields,
)

__all__ = [
    "ProtocolError",
    "ConnectRequest",
    "RequestHeader",
    "AuthPacket",
    "CreateRequest",
    "CreateTTLRequest",
    "DeleteRequest",
    "ExistsRequest",
    "GetDataRequest",
    "SetDataRequest",
    "GetACLRequest",
    "SetACLRequest",
    "GetChildrenRequest",
    "GetChildren2Request",
    "SyncRequest",
    "CheckVersionRequest",
    "MultiRequest",
    "CheckWatchesRequest",
    "RemoveWatchesRequest",
    "GetAllChildrenNumberRequest",
    "GetEphemeralsRequest",
    "AddWatchRequest",
    "SetWatches",
    "ReconfigRequest",
    "GetSASLRequest",
    "MULTI_WRITE_OPS",
    "MULTI_READ_OPS",
    "MultiHeader",
    "MULTI_HEADER",
    "truncated",
    "read_multi",
    "read_multi_items",
]


class ProtocolError(JuteError):
    """A client-port packet that cannot be decoded.

    ``err`` is the ZooKeeper error a server should answer with when it answers
    rather than closing: ``UNIMPLEMENTED`` for an opcode it does not know
    (ZooKeeper's ``UnimplementedRequestProcessor``), ``MARSHALLINGERROR`` for a
    body that does not parse.
    """

    def __init__(self, message: str, err: Err = Err.MARSHALLINGERROR) -> None:
        super().__init__(message)
        self.err = err


def truncated(off: int, need: int, end: int) -> ProtocolError:
    return ProtocolError(f"truncated packet: need {need} bytes at offset {off}, have {end - off}")


@record
class MultiHeader(JuteRecord):
    """Precedes each op of a multi request and each result of its response."""

    type: Int
    done: Bool
    err: Int


MULTI_HEADER = fixed_struct(MultiHeader)
_MULTI_DONE = MULTI_HEADER.pack(-1, True, -1)


def _write_multi_ops(w: Writer, ops: tuple[tuple[int, Any], ...]) -> None:
    for opcode, req in ops:
        w.buf += MULTI_HEADER.pack(opcode, False, -1)
        req.write(w)
    w.buf += _MULTI_DONE


def read_multi_items(r: Reader, read_item: Callable[[int, Reader], Any]) -> tuple[tuple[int, Any], ...]:
    """The items of a multi request or response: ``(type, read_item(type, r))``
    after each ``MultiHeader``, up to the header with ``done``."""
    items: list[tuple[int, Any]] = []
    # Each round consumes at least a 9-byte MultiHeader: bounded by the input.
    while True:
        if r.end - r.pos < MULTI_HEADER.size:
            raise truncated(r.pos, MULTI_HEADER.size, r.end)
        t, done, _err = MULTI_HEADER.unpack_from(r.data, r.pos)
        r.pos += MULTI_HEADER.size
        if done:
            return tuple(items)
        items.append((t, read_item(t, r)))


def read_multi(r: Reader, allowed: dict[int, Callable[[Reader], Any]] | None, name: str) -> tuple[tuple[int, Any], ...]:
    """The ops of a ``MultiOperationRecord``, each the request of its type.
    ``allowed``: the op types that may appear (multi or multiRead); ``None``:
    those of the kind of the first op."""
    kind = [allowed]

    def read_op(t: int, r: Reader) -> Any:
        ops = kind[0]
        if ops is None:
            ops = kind[0] = MULTI_READ_OPS if t in MULTI_READ_OPS else MULTI_WRITE_OPS
        read = ops.get(t)
        if read is None:
            other = MULTI_READ_OPS if ops is MULTI_WRITE_OPS else MULTI_WRITE_OPS
            if t in other:
                raise ProtocolError(f"{name}: mixing read and write operations (op type {t})")
            raise ProtocolError(f"{name}: invalid type of op {t}")
        return read(r)

    return read_multi_items(r, read_op)


_MULTI_OPS = Custom("MultiOperationRecord", lambda r: read_multi(r, None, "multi"), _write_multi_ops)
MultiOps = Annotated[tuple[tuple[int, Any], ...], _MULTI_OPS]


@record
class ConnectRequest(JuteRecord):
    """First packet of a session (no RequestHeader).

    ``read_only`` is ``None`` when the client did not send the trailing byte
    (ZooKeeper < 3.4 clients, some third-party clients).
    """

    protocol_version: Int
    last_zxid_seen: Long
    timeout: Int
    session_id: Long
    passwd: Buffer
    read_only: OptBool = False


@record
class RequestHeader(JuteRecord):
    xid: Int
    type: Int


@record
class AuthPacket(JuteRecord):
    type: Int
    scheme: UString
    auth: Buffer


@record
class CreateRequest(JuteRecord):
    """create, create2 and createContainer (``flags`` says which mode)."""

    path: UString
    data: Buffer
    acl: ACLs
    flags: Int


@record
class CreateTTLRequest(JuteRecord):
    path: UString
    data: Buffer
    acl: ACLs
    flags: Int
    ttl: Long


@record
class DeleteRequest(JuteRecord):
    path: UString
    version: Int


@record
class ExistsRequest(JuteRecord):
    path: UString
    watch: Bool


@record
class GetDataRequest(JuteRecord):
    path: UString
    watch: Bool


@record
class SetDataRequest(JuteRecord):
    path: UString
    data: Buffer
    version: Int


@record
class GetACLRequest(JuteRecord):
    path: UString


@record
class SetACLRequest(JuteRecord):
    path: UString
    acl: ACLs
    version: Int


@record
class GetChildrenRequest(JuteRecord):
    path: UString
    watch: Bool


@record
class GetChildren2Request(JuteRecord):
    path: UString
    watch: Bool


@record
class SyncRequest(JuteRecord):
    path: UString


@record
class CheckVersionRequest(JuteRecord):
    path: UString
    version: Int


@record
class MultiRequest(JuteRecord):
    """``MultiOperationRecord`` for multi (14) and multiRead (22).

    ``ops`` is ``((opcode, request), ...)``; the opcode of each op is kept
    because create/create2/createContainer share :class:`CreateRequest`.
    """

    ops: MultiOps


@record
class CheckWatchesRequest(JuteRecord):
    path: UString
    type: Int


@record
class RemoveWatchesRequest(JuteRecord):
    path: UString
    type: Int


@record
class GetAllChildrenNumberRequest(JuteRecord):
    path: UString


@record
class GetEphemeralsRequest(JuteRecord):
    prefix_path: UString


@record
class AddWatchRequest(JuteRecord):
    path: UString
    mode: Int


#: SetWatches (101) carries the first four fields of the table, SetWatches2 (105) all six.
_SET_WATCHES_V1_FIELDS = 4


@record
class SetWatches(JuteRecord):
    """The xid -8 packet: ``SetWatches`` (opcode 101) or ``SetWatches2`` (105).

    :meth:`write` emits the persistent lists only when :attr:`opcode` is 105,
    i.e. when either of them is non-empty (the Java client's rule).
    """

    relative_zxid: Long
    data_watches: UStrings
    exist_watches: UStrings
    child_watches: UStrings
    persistent_watches: UStrings = ()
    persistent_recursive_watches: UStrings = ()

    @property
    def opcode(self) -> int:
        if self.persistent_watches or self.persistent_recursive_watches:
            return int(OpCode.setWatches2)
        return int(OpCode.setWatches)

    def write(self, w: Writer, opcode: int | None = None) -> None:
        """Write as ``opcode`` (101 or 105), by default as :attr:`opcode`."""
        v2 = self.opcode == OpCode.setWatches2 if opcode is None else opcode == OpCode.setWatches2
        if not v2 and (self.persistent_watches or self.persistent_recursive_watches):
            raise ValueError("persistent watches need opcode setWatches2 (105)")
        write_fields(self, w, None if v2 else _SET_WATCHES_V1_FIELDS)

    @staticmethod
    def read_v1(r: Reader) -> SetWatches:
        """The SetWatches (101) record: the table's first four fields."""
        rec: SetWatches = read_fields(SetWatches, r, _SET_WATCHES_V1_FIELDS)
        return rec


@record
class ReconfigRequest(JuteRecord):
    """Fields may be ``None``: ZooKeeper distinguishes null (not given)."""

    joining: UStringOrNull
    leaving: UStringOrNull
    new_members: UStringOrNull
    cur_config_id: Long


@record
class GetSASLRequest(JuteRecord):
    token: Buffer


#: Op types a multi (14) may carry, and their request readers.
MULTI_WRITE_OPS: dict[int, Callable[[Reader], Any]] = {
    OpCode.create: CreateRequest.read,
    OpCode.create2: CreateRequest.read,
    OpCode.createContainer: CreateRequest.read,
    OpCode.createTTL: CreateTTLRequest.read,
    OpCode.delete: DeleteRequest.read,
    OpCode.setData: SetDataRequest.read,
    OpCode.check: CheckVersionRequest.read,
}
#: Op types a multiRead (22) may carry.
MULTI_READ_OPS: dict[int, Callable[[Reader], Any]] = {
    OpCode.getChildren: GetChildrenRequest.read,
    OpCode.getData: GetDataRequest.read,
}
