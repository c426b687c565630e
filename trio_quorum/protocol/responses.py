"""Client-port response records, declared once as jute field tables (sans-IO).

Every record of ``zookeeper.jute``'s ``org.apache.zookeeper.proto`` module a
server sends, with fields in jute declaration order (snake_case); each class
body is the record's table (see :mod:`.schema`).  The codec functions that use
them are in :mod:`.records`.

* Responses with a ``stat`` accept it either as :class:`~.data.Stat` or as
  the 68 bytes of ``DataNode.stat_bytes()``; the bytes are copied to the wire
  verbatim.  Decoding always yields ``Stat``.
* ``GetDataResponse.data`` keeps null distinct: ``None`` is sent as a null
  buffer (-1), as ZooKeeper does for a node created with null data, and a
  null buffer reads back as ``None``.

Invariants: no IO, no global mutable state; a reader raises only
:class:`~.jute.JuteError`.
"""

from __future__ import annotations

__sans_io__ = True

import struct
from collections.abc import Callable
from typing import Annotated, Any

from .consts import OpCode
from .jute import Reader, Writer
from .requests import MULTI_HEADER, MultiHeader, ProtocolError, read_multi_items
from .schema import (
    USTRING,
    ACLs,
    Buffer,
    BufferOrNull,
    Custom,
    Int,
    JuteRecord,
    Long,
    OptBool,
    StatField,
    Struct,
    UString,
    UStrings,
    Vector,
    record,
)

__all__ = [
    "ConnectResponse",
    "ReplyHeader",
    "MultiHeader",
    "WatcherEvent",
    "CreateResponse",
    "Create2Response",
    "ExistsResponse",
    "GetDataResponse",
    "SetDataResponse",
    "GetACLResponse",
    "SetACLResponse",
    "GetChildrenResponse",
    "GetChildren2Response",
    "SyncResponse",
    "GetAllChildrenNumberResponse",
    "GetEphemeralsResponse",
    "WhoAmIResponse",
    "ErrorResponse",
    "SetSASLResponse",
    "MultiResponse",
    "MULTI_RESULT_READERS",
]

_MULTI_DONE = MULTI_HEADER.pack(-1, True, -1)
_pack_int = struct.Struct(">i").pack


def _write_results(w: Writer, results: tuple[tuple[int, Any], ...]) -> None:
    buf = w.buf
    for opcode, body in results:
        if opcode == -1:
            buf += MULTI_HEADER.pack(-1, False, body)
            buf += _pack_int(body)
        else:
            buf += MULTI_HEADER.pack(opcode, False, 0)
            if body is not None:
                body.write(w)
    buf += _MULTI_DONE


def _read_result(t: int, r: Reader) -> Any:
    if t == -1:
        return r.read_int()
    read = MULTI_RESULT_READERS.get(t, _INVALID)
    if read is _INVALID:
        raise ProtocolError(f"multi response: invalid result type {t}")
    return read(r) if read is not None else None


def _read_results(r: Reader) -> tuple[tuple[int, Any], ...]:
    return read_multi_items(r, _read_result)


def _INVALID(r: Reader) -> None:  # pragma: no cover - a marker, never called
    return None


_RESULTS = Custom("MultiResponse", _read_results, _write_results)
#: jute ``ClientInfo{ustring authScheme; ustring user}``, kept as a plain pair
_CLIENT_INFO = Vector(Struct("ClientInfo", lambda *a: a, (USTRING, USTRING)))


@record
class ConnectResponse(JuteRecord):
    """Answer to a ``ConnectRequest`` (no ReplyHeader).

    ``read_only`` ``None`` omits the trailing byte, which a server must do for
    a client that did not send it (``ProtocolManager``'s "old client").
    """

    protocol_version: Int
    timeout: Int
    session_id: Long
    passwd: Buffer
    read_only: OptBool = False


@record
class ReplyHeader(JuteRecord):
    xid: Int
    zxid: Long
    err: Int


@record
class WatcherEvent(JuteRecord):
    type: Int
    state: Int
    path: UString


@record
class CreateResponse(JuteRecord):
    path: UString


@record
class Create2Response(JuteRecord):
    path: UString
    stat: StatField


@record
class ExistsResponse(JuteRecord):
    stat: StatField


@record
class GetDataResponse(JuteRecord):
    """``data`` ``None`` is a null buffer on the wire (see the module docstring)."""

    data: BufferOrNull
    stat: StatField


@record
class SetDataResponse(JuteRecord):
    stat: StatField


@record
class GetACLResponse(JuteRecord):
    acl: ACLs
    stat: StatField


@record
class SetACLResponse(JuteRecord):
    stat: StatField


@record
class GetChildrenResponse(JuteRecord):
    children: UStrings


@record
class GetChildren2Response(JuteRecord):
    children: UStrings
    stat: StatField


@record
class SyncResponse(JuteRecord):
    path: UString


@record
class GetAllChildrenNumberResponse(JuteRecord):
    total_number: Int


@record
class GetEphemeralsResponse(JuteRecord):
    ephemerals: UStrings


@record
class WhoAmIResponse(JuteRecord):
    """``client_info`` is ``((auth_scheme, user), ...)`` (jute ``ClientInfo``)."""

    client_info: Annotated[tuple[tuple[str, str], ...], _CLIENT_INFO]


@record
class ErrorResponse(JuteRecord):
    """Body of an error result inside a multi, and of addWatch's reply."""

    err: Int


@record
class SetSASLResponse(JuteRecord):
    token: Buffer


@record
class MultiResponse(JuteRecord):
    """Results of multi / multiRead.

    Each result is ``(opcode, response_or_None)`` for a success (``None`` for
    delete and check, which have no body) or ``(OpCode.error, err)`` for an
    error result, ``err`` an int (``0`` for an op rolled back before the
    failing one, ``-2`` RUNTIMEINCONSISTENCY after it).
    """

    results: Annotated[tuple[tuple[int, Any], ...], _RESULTS]


#: The response reader of each op type a multi result may carry (None: no body).
MULTI_RESULT_READERS: dict[int, Callable[[Reader], Any] | None] = {
    OpCode.create: CreateResponse.read,
    OpCode.create2: Create2Response.read,
    OpCode.createTTL: Create2Response.read,
    OpCode.createContainer: Create2Response.read,
    OpCode.delete: None,
    OpCode.check: None,
    OpCode.setData: SetDataResponse.read,
    OpCode.getData: GetDataResponse.read,
    OpCode.getChildren: GetChildrenResponse.read,
}
