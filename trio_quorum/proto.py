"""Client-port wire protocol records and codecs (sans-IO).

Every record of ``zookeeper.jute``'s ``org.apache.zookeeper.proto`` module that
travels on the client port is a frozen, slotted dataclass here, with fields in
jute declaration order (snake_case).  Requests decode on the server with
:func:`decode_request` and encode on the client with :func:`encode_request`;
responses encode on the server with :func:`encode_reply` and decode on the
client with :func:`decode_response`.  See ``docs/protocol.md``.

Invariants:

* No IO, no clock, no global mutable state.  Bytes in, records out.
* Decoders treat input as hostile.  Every length is bounded by the input and
  by ``max_len`` (``jute.maxbuffer``); every loop is bounded by the input size.
  The only exception a decoder raises is :class:`ProtocolError`.
* Like ZooKeeper's ``BinaryInputArchive``, decoders ignore trailing bytes after
  a record, and accept -1 (null) where kazoo sends it for empty strings and
  buffers: a null string/buffer reads as ``""`` / ``b""`` and a null vector as
  ``()``.  The exceptions that keep null distinct are documented per record
  (``ReconfigRequest`` fields, ``GetDataResponse.data``).
* Encoders emit whole frames (``int32 length`` + payload) where the name says
  so (``encode_reply``, ``encode_request``, ``encode_notification``,
  ``encode_connect_*``); record ``write`` methods emit the bare record.
* Hot-path responses (``GetDataResponse``, ``ExistsResponse``,
  ``SetDataResponse``, ``Create2Response``, ``GetChildren2Response``) accept
  their ``stat`` either as :class:`~trio_quorum.data.Stat` or as the 68 bytes
  of ``DataNode.stat_bytes()``; the bytes are copied to the wire verbatim.
"""

from __future__ import annotations

__sans_io__ = True

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from .consts import Err, OpCode
from .data import ACL, STAT_STRUCT, Stat, read_acl, read_stat, write_acl
from .jute import DEFAULT_MAX_BUFFER, JuteError, Reader, Writer

__all__ = [
    "ProtocolError",
    # requests
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
    # responses
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
    # codecs
    "Request",
    "Response",
    "decode_request",
    "decode_request_header",
    "decode_connect_request",
    "encode_reply",
    "encode_notification",
    "encode_connect_response",
    "encode_request",
    "encode_connect_request",
    "decode_reply_header",
    "decode_connect_response",
    "decode_response",
    "decode_notification",
    "MULTI_WRITE_OPS",
    "MULTI_READ_OPS",
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


_INT = struct.Struct(">i")
_LONG = struct.Struct(">q")
_II = struct.Struct(">ii")
_unpack_int = _INT.unpack_from
_pack_int = _INT.pack
_STAT_SIZE = STAT_STRUCT.size
_pack_stat = STAT_STRUCT.pack
_unpack_stat = STAT_STRUCT.unpack_from

#: int32 frame length + ReplyHeader{int xid; long zxid; int err}
_FRAME_REPLY = struct.Struct(">iiqi")
#: ... + the int32 length of the first buffer/string/vector of the body
_FRAME_REPLY_LEN = struct.Struct(">iiqii")
#: ReplyHeader alone
_REPLY_HEADER = struct.Struct(">iqi")
#: int32 frame length + RequestHeader{int xid; int type}
_FRAME_REQUEST = struct.Struct(">iii")
#: MultiHeader{int type; boolean done; int err}
_MULTI_HEADER = struct.Struct(">i?i")
_MULTI_DONE = _MULTI_HEADER.pack(-1, True, -1)
#: ConnectRequest up to passwd: protocolVersion lastZxidSeen timeOut sessionId
_CONNECT_REQ = struct.Struct(">iqiq")
#: ConnectResponse up to passwd: protocolVersion timeOut sessionId
_CONNECT_RSP = struct.Struct(">iiq")

StatLike: TypeAlias = "Stat | bytes"


def _stat_bytes(st: Stat | bytes) -> bytes:
    if type(st) is bytes:
        if len(st) != _STAT_SIZE:
            raise ValueError(f"packed Stat must be {_STAT_SIZE} bytes, got {len(st)}")
        return st
    return _pack_stat(*st)


def _write_stat(w: Writer, st: Stat | bytes) -> None:
    w.buf += _stat_bytes(st)


def _write_acls(w: Writer, acl: tuple[ACL, ...]) -> None:
    w.buf += _pack_int(len(acl))
    for a in acl:
        write_acl(w, a)


def _write_strings(w: Writer, items: tuple[str, ...]) -> None:
    w.buf += _pack_int(len(items))
    for s in items:
        w.write_ustring(s)


# ---------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    """First packet of a session (no RequestHeader).

    ``read_only`` is ``None`` when the client did not send the trailing byte
    (ZooKeeper < 3.4 clients, some third-party clients).
    """

    protocol_version: int
    last_zxid_seen: int
    timeout: int
    session_id: int
    passwd: bytes
    read_only: bool | None = False

    def write(self, w: Writer) -> None:
        w.buf += _CONNECT_REQ.pack(
            self.protocol_version, self.last_zxid_seen, self.timeout, self.session_id
        )
        w.write_buffer(self.passwd)
        if self.read_only is not None:
            w.write_bool(self.read_only)


@dataclass(frozen=True, slots=True)
class RequestHeader:
    xid: int
    type: int

    def write(self, w: Writer) -> None:
        w.buf += _II.pack(self.xid, self.type)


@dataclass(frozen=True, slots=True)
class AuthPacket:
    type: int
    scheme: str
    auth: bytes

    def write(self, w: Writer) -> None:
        w.write_int(self.type)
        w.write_ustring(self.scheme)
        w.write_buffer(self.auth)


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """create, create2 and createContainer (``flags`` says which mode)."""

    path: str
    data: bytes
    acl: tuple[ACL, ...]
    flags: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_buffer(self.data)
        _write_acls(w, self.acl)
        w.write_int(self.flags)


@dataclass(frozen=True, slots=True)
class CreateTTLRequest:
    path: str
    data: bytes
    acl: tuple[ACL, ...]
    flags: int
    ttl: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_buffer(self.data)
        _write_acls(w, self.acl)
        w.write_int(self.flags)
        w.write_long(self.ttl)


@dataclass(frozen=True, slots=True)
class DeleteRequest:
    path: str
    version: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_int(self.version)


@dataclass(frozen=True, slots=True)
class ExistsRequest:
    path: str
    watch: bool

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_bool(self.watch)


@dataclass(frozen=True, slots=True)
class GetDataRequest:
    path: str
    watch: bool

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_bool(self.watch)


@dataclass(frozen=True, slots=True)
class SetDataRequest:
    path: str
    data: bytes
    version: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_buffer(self.data)
        w.write_int(self.version)


@dataclass(frozen=True, slots=True)
class GetACLRequest:
    path: str

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)


@dataclass(frozen=True, slots=True)
class SetACLRequest:
    path: str
    acl: tuple[ACL, ...]
    version: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        _write_acls(w, self.acl)
        w.write_int(self.version)


@dataclass(frozen=True, slots=True)
class GetChildrenRequest:
    path: str
    watch: bool

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_bool(self.watch)


@dataclass(frozen=True, slots=True)
class GetChildren2Request:
    path: str
    watch: bool

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_bool(self.watch)


@dataclass(frozen=True, slots=True)
class SyncRequest:
    path: str

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)


@dataclass(frozen=True, slots=True)
class CheckVersionRequest:
    path: str
    version: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_int(self.version)


@dataclass(frozen=True, slots=True)
class MultiRequest:
    """``MultiOperationRecord`` for multi (14) and multiRead (22).

    ``ops`` is ``((opcode, request), ...)``; the opcode of each op is kept
    because create/create2/createContainer share :class:`CreateRequest`.
    """

    ops: tuple[tuple[int, Any], ...]

    def write(self, w: Writer) -> None:
        for opcode, req in self.ops:
            w.buf += _MULTI_HEADER.pack(opcode, False, -1)
            req.write(w)
        w.buf += _MULTI_DONE


@dataclass(frozen=True, slots=True)
class CheckWatchesRequest:
    path: str
    type: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_int(self.type)


@dataclass(frozen=True, slots=True)
class RemoveWatchesRequest:
    path: str
    type: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_int(self.type)


@dataclass(frozen=True, slots=True)
class GetAllChildrenNumberRequest:
    path: str

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)


@dataclass(frozen=True, slots=True)
class GetEphemeralsRequest:
    prefix_path: str

    def write(self, w: Writer) -> None:
        w.write_ustring(self.prefix_path)


@dataclass(frozen=True, slots=True)
class AddWatchRequest:
    path: str
    mode: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_int(self.mode)


@dataclass(frozen=True, slots=True)
class SetWatches:
    """The xid -8 packet: ``SetWatches`` (opcode 101) or ``SetWatches2`` (105).

    :meth:`write` emits the persistent lists only when :attr:`opcode` is 105,
    i.e. when either of them is non-empty (the Java client's rule).
    """

    relative_zxid: int
    data_watches: tuple[str, ...]
    exist_watches: tuple[str, ...]
    child_watches: tuple[str, ...]
    persistent_watches: tuple[str, ...] = ()
    persistent_recursive_watches: tuple[str, ...] = ()

    @property
    def opcode(self) -> int:
        if self.persistent_watches or self.persistent_recursive_watches:
            return int(OpCode.setWatches2)
        return int(OpCode.setWatches)

    def write(self, w: Writer) -> None:
        w.write_long(self.relative_zxid)
        _write_strings(w, self.data_watches)
        _write_strings(w, self.exist_watches)
        _write_strings(w, self.child_watches)
        if self.persistent_watches or self.persistent_recursive_watches:
            _write_strings(w, self.persistent_watches)
            _write_strings(w, self.persistent_recursive_watches)


@dataclass(frozen=True, slots=True)
class ReconfigRequest:
    """Fields may be ``None``: ZooKeeper distinguishes null (not given)."""

    joining: str | None
    leaving: str | None
    new_members: str | None
    cur_config_id: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.joining)
        w.write_ustring(self.leaving)
        w.write_ustring(self.new_members)
        w.write_long(self.cur_config_id)


@dataclass(frozen=True, slots=True)
class GetSASLRequest:
    token: bytes

    def write(self, w: Writer) -> None:
        w.write_buffer(self.token)


# ---------------------------------------------------------------- responses


@dataclass(frozen=True, slots=True)
class ConnectResponse:
    """Answer to :class:`ConnectRequest` (no ReplyHeader).

    ``read_only`` ``None`` omits the trailing byte, which a server must do for
    a client that did not send it (``ProtocolManager``'s "old client").
    """

    protocol_version: int
    timeout: int
    session_id: int
    passwd: bytes
    read_only: bool | None = False

    def write(self, w: Writer) -> None:
        w.buf += _CONNECT_RSP.pack(self.protocol_version, self.timeout, self.session_id)
        w.write_buffer(self.passwd)
        if self.read_only is not None:
            w.write_bool(self.read_only)


@dataclass(frozen=True, slots=True)
class ReplyHeader:
    xid: int
    zxid: int
    err: int

    def write(self, w: Writer) -> None:
        w.buf += _REPLY_HEADER.pack(self.xid, self.zxid, self.err)


@dataclass(frozen=True, slots=True)
class MultiHeader:
    type: int
    done: bool
    err: int

    def write(self, w: Writer) -> None:
        w.buf += _MULTI_HEADER.pack(self.type, self.done, self.err)


@dataclass(frozen=True, slots=True)
class WatcherEvent:
    type: int
    state: int
    path: str

    def write(self, w: Writer) -> None:
        w.buf += _II.pack(self.type, self.state)
        w.write_ustring(self.path)


@dataclass(frozen=True, slots=True)
class CreateResponse:
    path: str

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)


@dataclass(frozen=True, slots=True)
class Create2Response:
    path: str
    stat: Stat | bytes

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        _write_stat(w, self.stat)


@dataclass(frozen=True, slots=True)
class ExistsResponse:
    stat: Stat | bytes

    def write(self, w: Writer) -> None:
        _write_stat(w, self.stat)


@dataclass(frozen=True, slots=True)
class GetDataResponse:
    """``data`` ``None`` is sent as a null buffer (-1), as ZooKeeper does for
    a node created with null data."""

    data: bytes | None
    stat: Stat | bytes

    def write(self, w: Writer) -> None:
        w.write_buffer(self.data)
        _write_stat(w, self.stat)


@dataclass(frozen=True, slots=True)
class SetDataResponse:
    stat: Stat | bytes

    def write(self, w: Writer) -> None:
        _write_stat(w, self.stat)


@dataclass(frozen=True, slots=True)
class GetACLResponse:
    acl: tuple[ACL, ...]
    stat: Stat | bytes

    def write(self, w: Writer) -> None:
        _write_acls(w, self.acl)
        _write_stat(w, self.stat)


@dataclass(frozen=True, slots=True)
class SetACLResponse:
    stat: Stat | bytes

    def write(self, w: Writer) -> None:
        _write_stat(w, self.stat)


@dataclass(frozen=True, slots=True)
class GetChildrenResponse:
    children: tuple[str, ...]

    def write(self, w: Writer) -> None:
        _write_strings(w, self.children)


@dataclass(frozen=True, slots=True)
class GetChildren2Response:
    children: tuple[str, ...]
    stat: Stat | bytes

    def write(self, w: Writer) -> None:
        _write_strings(w, self.children)
        _write_stat(w, self.stat)


@dataclass(frozen=True, slots=True)
class SyncResponse:
    path: str

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)


@dataclass(frozen=True, slots=True)
class GetAllChildrenNumberResponse:
    total_number: int

    def write(self, w: Writer) -> None:
        w.write_int(self.total_number)


@dataclass(frozen=True, slots=True)
class GetEphemeralsResponse:
    ephemerals: tuple[str, ...]

    def write(self, w: Writer) -> None:
        _write_strings(w, self.ephemerals)


@dataclass(frozen=True, slots=True)
class WhoAmIResponse:
    """``client_info`` is ``((auth_scheme, user), ...)`` (jute ``ClientInfo``)."""

    client_info: tuple[tuple[str, str], ...]

    def write(self, w: Writer) -> None:
        w.buf += _pack_int(len(self.client_info))
        for scheme, user in self.client_info:
            w.write_ustring(scheme)
            w.write_ustring(user)


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """Body of an error result inside a multi, and of addWatch's reply."""

    err: int

    def write(self, w: Writer) -> None:
        w.write_int(self.err)


@dataclass(frozen=True, slots=True)
class SetSASLResponse:
    token: bytes

    def write(self, w: Writer) -> None:
        w.write_buffer(self.token)


@dataclass(frozen=True, slots=True)
class MultiResponse:
    """Results of multi / multiRead.

    Each result is ``(opcode, response_or_None)`` for a success (``None`` for
    delete and check, which have no body) or ``(OpCode.error, err)`` for an
    error result, ``err`` an int (``0`` for an op rolled back before the
    failing one, ``-2`` RUNTIMEINCONSISTENCY after it).
    """

    results: tuple[tuple[int, Any], ...]

    def write(self, w: Writer) -> None:
        buf = w.buf
        for opcode, body in self.results:
            if opcode == -1:
                buf += _MULTI_HEADER.pack(-1, False, body)
                buf += _pack_int(body)
            else:
                buf += _MULTI_HEADER.pack(opcode, False, 0)
                if body is not None:
                    body.write(w)
        buf += _MULTI_DONE


class _Writable(Protocol):
    def write(self, w: Writer) -> None: ...


Request: TypeAlias = Any
Response: TypeAlias = Any
