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
  their ``stat`` either as :class:`~trio_quorum.protocol.data.Stat` or as the 68 bytes
  of ``DataNode.stat_bytes()``; the bytes are copied to the wire verbatim.
"""

from __future__ import annotations

__sans_io__ = True

import struct
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from typing import Any, Protocol, TypeAlias, TypeVar

from .consts import Err, OpCode
from .data import ACL, OPEN_ACL_UNSAFE, STAT_STRUCT, Stat, read_acl, read_stat, write_acl
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
    "decode_request_frame",
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


_T = TypeVar("_T", bound=type)


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
_unpack_ii = struct.Struct(">ii").unpack_from
_pack_int = _INT.pack
_STAT_SIZE = STAT_STRUCT.size
_pack_stat = STAT_STRUCT.pack
_unpack_stat = STAT_STRUCT.unpack_from

#: int32 frame length + ReplyHeader{int xid; long zxid; int err}
_FRAME_REPLY = struct.Struct(">iiqi")
#: ... + the int32 length of the first buffer/string/vector of the body
_FRAME_REPLY_LEN = struct.Struct(">iiqii")
_pack_frame_reply = _FRAME_REPLY.pack
_pack_frame_reply_len = _FRAME_REPLY_LEN.pack
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


def _fast_init(cls: _T) -> _T:
    """Give a frozen slotted dataclass an ``__init__`` that sets slots directly.

    The generated frozen ``__init__`` goes through ``object.__setattr__`` per
    field (~0.5 us for two fields here); writing through the slot descriptors
    costs about half.  Signature, defaults, equality and hash are unchanged.
    """
    names = [f.name for f in fields(cls)]
    ns: dict[str, Any] = {f"_set_{n}": getattr(cls, n).__set__ for n in names}
    params = []
    for f in fields(cls):
        if f.default is not MISSING:
            ns[f"_dflt_{f.name}"] = f.default
            params.append(f"{f.name}=_dflt_{f.name}")
        else:
            params.append(f.name)
    body = "".join(f"    _set_{n}(self, {n})\n" for n in names) or "    pass\n"
    exec(f"def __init__(self, {', '.join(params)}):\n{body}", ns)
    init = ns["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init  # type: ignore[misc]
    return cls


# ---------------------------------------------------------------- requests


@_fast_init
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


@_fast_init
@dataclass(frozen=True, slots=True)
class RequestHeader:
    xid: int
    type: int

    def write(self, w: Writer) -> None:
        w.buf += _II.pack(self.xid, self.type)


@_fast_init
@dataclass(frozen=True, slots=True)
class AuthPacket:
    type: int
    scheme: str
    auth: bytes

    def write(self, w: Writer) -> None:
        w.write_int(self.type)
        w.write_ustring(self.scheme)
        w.write_buffer(self.auth)


@_fast_init
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


@_fast_init
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


@_fast_init
@dataclass(frozen=True, slots=True)
class DeleteRequest:
    path: str
    version: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_int(self.version)


@_fast_init
@dataclass(frozen=True, slots=True)
class ExistsRequest:
    path: str
    watch: bool

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_bool(self.watch)


@_fast_init
@dataclass(frozen=True, slots=True)
class GetDataRequest:
    path: str
    watch: bool

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_bool(self.watch)


@_fast_init
@dataclass(frozen=True, slots=True)
class SetDataRequest:
    path: str
    data: bytes
    version: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_buffer(self.data)
        w.write_int(self.version)


@_fast_init
@dataclass(frozen=True, slots=True)
class GetACLRequest:
    path: str

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)


@_fast_init
@dataclass(frozen=True, slots=True)
class SetACLRequest:
    path: str
    acl: tuple[ACL, ...]
    version: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        _write_acls(w, self.acl)
        w.write_int(self.version)


@_fast_init
@dataclass(frozen=True, slots=True)
class GetChildrenRequest:
    path: str
    watch: bool

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_bool(self.watch)


@_fast_init
@dataclass(frozen=True, slots=True)
class GetChildren2Request:
    path: str
    watch: bool

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_bool(self.watch)


@_fast_init
@dataclass(frozen=True, slots=True)
class SyncRequest:
    path: str

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)


@_fast_init
@dataclass(frozen=True, slots=True)
class CheckVersionRequest:
    path: str
    version: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_int(self.version)


@_fast_init
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


@_fast_init
@dataclass(frozen=True, slots=True)
class CheckWatchesRequest:
    path: str
    type: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_int(self.type)


@_fast_init
@dataclass(frozen=True, slots=True)
class RemoveWatchesRequest:
    path: str
    type: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_int(self.type)


@_fast_init
@dataclass(frozen=True, slots=True)
class GetAllChildrenNumberRequest:
    path: str

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)


@_fast_init
@dataclass(frozen=True, slots=True)
class GetEphemeralsRequest:
    prefix_path: str

    def write(self, w: Writer) -> None:
        w.write_ustring(self.prefix_path)


@_fast_init
@dataclass(frozen=True, slots=True)
class AddWatchRequest:
    path: str
    mode: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_int(self.mode)


@_fast_init
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

    def write(self, w: Writer, opcode: int | None = None) -> None:
        """Write as ``opcode`` (101 or 105), by default as :attr:`opcode`."""
        v2 = self.opcode == OpCode.setWatches2 if opcode is None else opcode == OpCode.setWatches2
        if not v2 and (self.persistent_watches or self.persistent_recursive_watches):
            raise ValueError("persistent watches need opcode setWatches2 (105)")
        w.write_long(self.relative_zxid)
        _write_strings(w, self.data_watches)
        _write_strings(w, self.exist_watches)
        _write_strings(w, self.child_watches)
        if v2:
            _write_strings(w, self.persistent_watches)
            _write_strings(w, self.persistent_recursive_watches)


@_fast_init
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


@_fast_init
@dataclass(frozen=True, slots=True)
class GetSASLRequest:
    token: bytes

    def write(self, w: Writer) -> None:
        w.write_buffer(self.token)


# ---------------------------------------------------------------- responses


@_fast_init
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


@_fast_init
@dataclass(frozen=True, slots=True)
class ReplyHeader:
    xid: int
    zxid: int
    err: int

    def write(self, w: Writer) -> None:
        w.buf += _REPLY_HEADER.pack(self.xid, self.zxid, self.err)


@_fast_init
@dataclass(frozen=True, slots=True)
class MultiHeader:
    type: int
    done: bool
    err: int

    def write(self, w: Writer) -> None:
        w.buf += _MULTI_HEADER.pack(self.type, self.done, self.err)


@_fast_init
@dataclass(frozen=True, slots=True)
class WatcherEvent:
    type: int
    state: int
    path: str

    def write(self, w: Writer) -> None:
        w.buf += _II.pack(self.type, self.state)
        w.write_ustring(self.path)


@_fast_init
@dataclass(frozen=True, slots=True)
class CreateResponse:
    path: str

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)


@_fast_init
@dataclass(frozen=True, slots=True)
class Create2Response:
    path: str
    stat: Stat | bytes

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        _write_stat(w, self.stat)


@_fast_init
@dataclass(frozen=True, slots=True)
class ExistsResponse:
    stat: Stat | bytes

    def write(self, w: Writer) -> None:
        _write_stat(w, self.stat)


@_fast_init
@dataclass(frozen=True, slots=True)
class GetDataResponse:
    """``data`` ``None`` is sent as a null buffer (-1), as ZooKeeper does for
    a node created with null data."""

    data: bytes | None
    stat: Stat | bytes

    def write(self, w: Writer) -> None:
        w.write_buffer(self.data)
        _write_stat(w, self.stat)


@_fast_init
@dataclass(frozen=True, slots=True)
class SetDataResponse:
    stat: Stat | bytes

    def write(self, w: Writer) -> None:
        _write_stat(w, self.stat)


@_fast_init
@dataclass(frozen=True, slots=True)
class GetACLResponse:
    acl: tuple[ACL, ...]
    stat: Stat | bytes

    def write(self, w: Writer) -> None:
        _write_acls(w, self.acl)
        _write_stat(w, self.stat)


@_fast_init
@dataclass(frozen=True, slots=True)
class SetACLResponse:
    stat: Stat | bytes

    def write(self, w: Writer) -> None:
        _write_stat(w, self.stat)


@_fast_init
@dataclass(frozen=True, slots=True)
class GetChildrenResponse:
    children: tuple[str, ...]

    def write(self, w: Writer) -> None:
        _write_strings(w, self.children)


@_fast_init
@dataclass(frozen=True, slots=True)
class GetChildren2Response:
    children: tuple[str, ...]
    stat: Stat | bytes

    def write(self, w: Writer) -> None:
        _write_strings(w, self.children)
        _write_stat(w, self.stat)


@_fast_init
@dataclass(frozen=True, slots=True)
class SyncResponse:
    path: str

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)


@_fast_init
@dataclass(frozen=True, slots=True)
class GetAllChildrenNumberResponse:
    total_number: int

    def write(self, w: Writer) -> None:
        w.write_int(self.total_number)


@_fast_init
@dataclass(frozen=True, slots=True)
class GetEphemeralsResponse:
    ephemerals: tuple[str, ...]

    def write(self, w: Writer) -> None:
        _write_strings(w, self.ephemerals)


@_fast_init
@dataclass(frozen=True, slots=True)
class WhoAmIResponse:
    """``client_info`` is ``((auth_scheme, user), ...)`` (jute ``ClientInfo``)."""

    client_info: tuple[tuple[str, str], ...]

    def write(self, w: Writer) -> None:
        w.buf += _pack_int(len(self.client_info))
        for scheme, user in self.client_info:
            w.write_ustring(scheme)
            w.write_ustring(user)


@_fast_init
@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """Body of an error result inside a multi, and of addWatch's reply."""

    err: int

    def write(self, w: Writer) -> None:
        w.write_int(self.err)


@_fast_init
@dataclass(frozen=True, slots=True)
class SetSASLResponse:
    token: bytes

    def write(self, w: Writer) -> None:
        w.write_buffer(self.token)


@_fast_init
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


# ------------------------------------------------------------ decode helpers

_Buf: TypeAlias = "bytes | bytearray | memoryview"
_Decoder: TypeAlias = "Callable[[Any, int, int], Any]"


def _truncated(off: int, need: int, end: int) -> ProtocolError:
    return ProtocolError(f"truncated packet: need {need} bytes at offset {off}, have {end - off}")


def _str_at(b: _Buf, off: int, end: int, max_len: int) -> tuple[str, int]:
    """A ustring at ``off``; null and empty both read as ``""``."""
    if off + 4 > end:
        raise _truncated(off, 4, end)
    n: int = _unpack_int(b, off)[0]
    off += 4
    if n <= 0:
        if n < -1:
            raise ProtocolError(f"negative length {n} at offset {off - 4}")
        return "", off
    if n > max_len:
        raise ProtocolError(f"length {n} exceeds the limit of {max_len} bytes")
    e = off + n
    if e > end:
        raise _truncated(off, n, end)
    try:
        return str(b[off:e], "utf-8"), e
    except UnicodeDecodeError:
        raise ProtocolError(f"invalid UTF-8 in string at offset {off}") from None


def _buf_at(b: _Buf, off: int, end: int, max_len: int) -> tuple[bytes, int]:
    """A buffer at ``off``; null and empty both read as ``b""``."""
    if off + 4 > end:
        raise _truncated(off, 4, end)
    n: int = _unpack_int(b, off)[0]
    off += 4
    if n <= 0:
        if n < -1:
            raise ProtocolError(f"negative length {n} at offset {off - 4}")
        return b"", off
    if n > max_len:
        raise ProtocolError(f"length {n} exceeds the limit of {max_len} bytes")
    e = off + n
    if e > end:
        raise _truncated(off, n, end)
    return bytes(b[off:e]), e


def _int_at(b: _Buf, off: int, end: int) -> int:
    if off + 4 > end:
        raise _truncated(off, 4, end)
    v: int = _unpack_int(b, off)[0]
    return v


def _maker(cls: Any) -> Callable[..., Any]:
    """A plain function building ``cls`` through its slot descriptors.

    Like :func:`_fast_init` but also skips the ``type.__call__`` ->
    ``__init__`` dispatch; used by the hot decoders.  Same object, same
    equality and hash as ``cls(...)``.
    """
    new = object.__new__
    setters = tuple(getattr(cls, f.name).__set__ for f in fields(cls))
    if len(setters) == 2:
        s0, s1 = setters

        def make2(a: Any, b: Any) -> Any:
            o = new(cls)
            s0(o, a)
            s1(o, b)
            return o

        return make2
    if len(setters) == 3:
        t0, t1, t2 = setters

        def make3(a: Any, b: Any, c: Any) -> Any:
            o = new(cls)
            t0(o, a)
            t1(o, b)
            t2(o, c)
            return o

        return make3
    return cls  # type: ignore[no-any-return]


def _path_watch(cls: Any) -> _Decoder:
    # getData/exists/getChildren(2): the hottest decoders, kept free of Reader.
    make = _maker(cls)

    def dec(b: _Buf, off: int, max_len: int) -> Any:
        end = len(b)
        if off + 4 < end:
            # Fast path for a well-formed non-empty path; anything else takes
            # the checked path below, which raises the precise error.
            n = _unpack_int(b, off)[0]
            e = off + 4 + n
            if 0 < n <= max_len and e < end:
                return make(str(b[off + 4 : e], "utf-8"), b[e] != 0)
        path, off = _str_at(b, off, end, max_len)
        if off >= end:
            raise _truncated(off, 1, end)
        return make(path, b[off] != 0)

    return dec


def _path_int(cls: Any) -> _Decoder:
    make = _maker(cls)

    def dec(b: _Buf, off: int, max_len: int) -> Any:
        end = len(b)
        path, off = _str_at(b, off, end, max_len)
        return make(path, _int_at(b, off, end))

    return dec


def _path_only(cls: Any) -> _Decoder:
    def dec(b: _Buf, off: int, max_len: int) -> Any:
        return cls(_str_at(b, off, len(b), max_len)[0])

    return dec


_make_set_data = _maker(SetDataRequest)
_new_object = object.__new__


def _slot_setter(cls: Any, name: str) -> Callable[[Any, Any], None]:
    """The slot descriptor's ``__set__`` (bypasses a frozen dataclass's ``__setattr__``)."""
    setter: Callable[[Any, Any], None] = getattr(cls, name).__set__
    return setter


_set_sd_path = _slot_setter(SetDataRequest, "path")
_set_sd_data = _slot_setter(SetDataRequest, "data")
_set_sd_version = _slot_setter(SetDataRequest, "version")
_set_cr_path = _slot_setter(CreateRequest, "path")
_set_cr_data = _slot_setter(CreateRequest, "data")
_set_cr_acl = _slot_setter(CreateRequest, "acl")
_set_cr_flags = _slot_setter(CreateRequest, "flags")
#: The hot decoders copy a memoryview payload up to this size to ``bytes``
#: once (one copy of ~150 bytes is cheaper than a memoryview slice per field);
#: a bigger payload is sliced as it is, so its data is copied only once.
_COPY_LIMIT = 4096


def _dec_set_data(b: _Buf, off: int, max_len: int) -> SetDataRequest:
    end = len(b)
    if b.__class__ is not bytes and end <= _COPY_LIMIT:
        b = b.tobytes() if b.__class__ is memoryview else bytes(b)
    if off + 4 < end:
        n = _unpack_int(b, off)[0]
        e = off + 4 + n
        if 0 < n <= max_len and e + 8 <= end:
            m = _unpack_int(b, e)[0]
            f = e + 4 + m
            if 0 <= m <= max_len and f + 4 <= end:
                # The record built in place (no _maker call): same object.
                data = b[e + 4 : f]
                o = _new_object(SetDataRequest)
                _set_sd_path(o, str(b[off + 4 : e], "utf-8"))
                _set_sd_data(o, data if data.__class__ is bytes else bytes(data))
                _set_sd_version(o, _unpack_int(b, f)[0])
                return o
    path, off = _str_at(b, off, end, max_len)
    data, off = _buf_at(b, off, end, max_len)
    return _make_set_data(path, data, _int_at(b, off, end))  # type: ignore[no-any-return]


_make_create = CreateRequest
#: OPEN_ACL_UNSAFE as a one-element jute vector: what almost every create carries.
_OPEN_ACL_WIRE = (
    _pack_int(1) + _pack_int(31) + _pack_int(5) + b"world" + _pack_int(6) + b"anyone"
)
_OPEN_ACL_WIRE_LEN = len(_OPEN_ACL_WIRE)


def _dec_create(b: _Buf, off: int, max_len: int) -> CreateRequest:
    """create/create2/createContainer: a fast path for a non-empty path and the
    OPEN_ACL_UNSAFE ACL (decoded to the shared ``OPEN_ACL_UNSAFE`` tuple); any
    other shape goes through the checked reader, which raises the precise error."""
    end = len(b)
    if b.__class__ is not bytes and end <= _COPY_LIMIT:
        b = b.tobytes() if b.__class__ is memoryview else bytes(b)
    if off + 4 < end:
        n = _unpack_int(b, off)[0]
        e = off + 4 + n
        if 0 < n <= max_len and e + 4 <= end:
            m = _unpack_int(b, e)[0]
            f = e + 4
            if m > 0:
                f += m
            if -1 <= m <= max_len and f + _OPEN_ACL_WIRE_LEN + 4 <= end:
                a = f + _OPEN_ACL_WIRE_LEN
                if b[f:a] == _OPEN_ACL_WIRE and max_len >= 6:  # "anyone" within the limit
                    if b.__class__ is bytes:
                        path = b[off + 4 : e].decode()
                        data = b[e + 4 : f] if m > 0 else b""
                    else:  # a big memoryview: one copy of the data
                        path = str(b[off + 4 : e], "utf-8")
                        data = bytes(b[e + 4 : f]) if m > 0 else b""
                    o = _new_object(CreateRequest)
                    _set_cr_path(o, path)
                    _set_cr_data(o, data)
                    _set_cr_acl(o, OPEN_ACL_UNSAFE)
                    _set_cr_flags(o, _unpack_int(b, a)[0])
                    return o
    return _r_create(Reader(b, off, max_len=max_len))


def _read_acls(r: Reader) -> tuple[ACL, ...]:
    return tuple(r.read_vector(read_acl))


def _read_strings(r: Reader) -> tuple[str, ...]:
    return tuple(r.read_vector(Reader.read_ustring))


def _r_create(r: Reader) -> CreateRequest:
    return CreateRequest(r.read_ustring(), r.read_buffer(), _read_acls(r), r.read_int())


def _r_create_ttl(r: Reader) -> CreateTTLRequest:
    return CreateTTLRequest(
        r.read_ustring(), r.read_buffer(), _read_acls(r), r.read_int(), r.read_long()
    )


def _r_delete(r: Reader) -> DeleteRequest:
    return DeleteRequest(r.read_ustring(), r.read_int())


def _r_set_data(r: Reader) -> SetDataRequest:
    return SetDataRequest(r.read_ustring(), r.read_buffer(), r.read_int())


def _r_check(r: Reader) -> CheckVersionRequest:
    return CheckVersionRequest(r.read_ustring(), r.read_int())


def _r_get_data(r: Reader) -> GetDataRequest:
    return GetDataRequest(r.read_ustring(), r.read_bool())


def _r_get_children(r: Reader) -> GetChildrenRequest:
    return GetChildrenRequest(r.read_ustring(), r.read_bool())


def _r_set_acl(r: Reader) -> SetACLRequest:
    return SetACLRequest(r.read_ustring(), _read_acls(r), r.read_int())


def _r_auth(r: Reader) -> AuthPacket:
    return AuthPacket(r.read_int(), r.read_ustring(), r.read_buffer())


def _r_set_watches(r: Reader) -> SetWatches:
    return SetWatches(r.read_long(), _read_strings(r), _read_strings(r), _read_strings(r))


def _r_set_watches2(r: Reader) -> SetWatches:
    return SetWatches(
        r.read_long(),
        _read_strings(r),
        _read_strings(r),
        _read_strings(r),
        _read_strings(r),
        _read_strings(r),
    )


def _r_reconfig(r: Reader) -> ReconfigRequest:
    return ReconfigRequest(
        r.read_ustring_nullable(),
        r.read_ustring_nullable(),
        r.read_ustring_nullable(),
        r.read_long(),
    )


def _r_sasl(r: Reader) -> GetSASLRequest:
    return GetSASLRequest(r.read_buffer())


#: Op types a multi (14) may carry, and their request readers.
MULTI_WRITE_OPS: dict[int, Callable[[Reader], Any]] = {
    OpCode.create: _r_create,
    OpCode.create2: _r_create,
    OpCode.createContainer: _r_create,
    OpCode.createTTL: _r_create_ttl,
    OpCode.delete: _r_delete,
    OpCode.setData: _r_set_data,
    OpCode.check: _r_check,
}
#: Op types a multiRead (22) may carry.
MULTI_READ_OPS: dict[int, Callable[[Reader], Any]] = {
    OpCode.getChildren: _r_get_children,
    OpCode.getData: _r_get_data,
}


def _multi(allowed: dict[int, Callable[[Reader], Any]], name: str) -> Callable[[Reader], Any]:
    other = MULTI_READ_OPS if allowed is MULTI_WRITE_OPS else MULTI_WRITE_OPS

    def read(r: Reader) -> MultiRequest:
        ops: list[tuple[int, Any]] = []
        # Each round consumes at least a 9-byte MultiHeader: bounded by the input.
        while True:
            if r.end - r.pos < 9:
                raise _truncated(r.pos, 9, r.end)
            t, done, _err = _MULTI_HEADER.unpack_from(r.data, r.pos)
            r.pos += 9
            if done:
                return MultiRequest(tuple(ops))
            read_op = allowed.get(t)
            if read_op is None:
                if t in other:
                    raise ProtocolError(f"{name}: mixing read and write operations (op type {t})")
                raise ProtocolError(f"{name}: invalid type of op {t}")
            ops.append((t, read_op(r)))

    return read


def _with_reader(read: Callable[[Reader], Any]) -> _Decoder:
    def dec(b: _Buf, off: int, max_len: int) -> Any:
        return read(Reader(b, off, max_len=max_len))

    return dec


_REQUEST_DECODERS: dict[int, _Decoder] = {  # int keys: lookups by plain int hit fast
    OpCode.create: _dec_create,
    OpCode.create2: _dec_create,
    OpCode.createContainer: _dec_create,
    OpCode.createTTL: _with_reader(_r_create_ttl),
    OpCode.delete: _path_int(DeleteRequest),
    OpCode.exists: _path_watch(ExistsRequest),
    OpCode.getData: _path_watch(GetDataRequest),
    OpCode.setData: _dec_set_data,
    OpCode.getACL: _path_only(GetACLRequest),
    OpCode.setACL: _with_reader(_r_set_acl),
    OpCode.getChildren: _path_watch(GetChildrenRequest),
    OpCode.getChildren2: _path_watch(GetChildren2Request),
    OpCode.sync: _path_only(SyncRequest),
    OpCode.check: _path_int(CheckVersionRequest),
    OpCode.multi: _with_reader(_multi(MULTI_WRITE_OPS, "multi")),
    OpCode.multiRead: _with_reader(_multi(MULTI_READ_OPS, "multiRead")),
    OpCode.reconfig: _with_reader(_r_reconfig),
    OpCode.checkWatches: _path_int(CheckWatchesRequest),
    OpCode.removeWatches: _path_int(RemoveWatchesRequest),
    OpCode.auth: _with_reader(_r_auth),
    OpCode.setWatches: _with_reader(_r_set_watches),
    OpCode.setWatches2: _with_reader(_r_set_watches2),
    OpCode.sasl: _with_reader(_r_sasl),
    OpCode.getEphemerals: _path_only(GetEphemeralsRequest),
    OpCode.getAllChildrenNumber: _path_only(GetAllChildrenNumberRequest),
    OpCode.addWatch: _path_int(AddWatchRequest),
}
_REQUEST_DECODERS = {int(k): v for k, v in _REQUEST_DECODERS.items()}
#: Requests whose body is empty.
_NO_BODY_REQUESTS = frozenset({OpCode.ping, OpCode.closeSession, OpCode.whoAmI})
_DECODE_ERRORS = (struct.error, IndexError, UnicodeDecodeError, OverflowError)


def _as_protocol_error(exc: Exception, what: str) -> ProtocolError:
    if isinstance(exc, ProtocolError):
        return exc
    return ProtocolError(f"malformed {what}: {exc}")


# ------------------------------------------------------------ server side


def decode_request_header(payload: _Buf, offset: int = 0) -> RequestHeader:
    """The ``RequestHeader`` at the start of a (non-connect) frame payload."""
    if len(payload) - offset < 8:
        raise _truncated(offset, 8, len(payload))
    xid, opcode = _II.unpack_from(payload, offset)
    return RequestHeader(xid, opcode)


def decode_request(
    opcode: int, body: _Buf, *, max_len: int = DEFAULT_MAX_BUFFER, offset: int = 0
) -> Request:
    """Decode the record of request ``opcode`` from ``body[offset:]``.

    Returns the request record, or ``None`` for requests without a body (ping,
    closeSession, whoAmI).  Trailing bytes are ignored, as ZooKeeper does.

    Raises:
        ProtocolError: unknown opcode (``err`` UNIMPLEMENTED), truncated or
            malformed body, a length above ``max_len``, bad UTF-8, an op type
            not allowed in a multi / multiRead or a mix of both kinds
            (``err`` MARSHALLINGERROR).
    """
    dec = _REQUEST_DECODERS.get(opcode)
    if dec is None:
        if opcode in _NO_BODY_REQUESTS:
            return None
        raise ProtocolError(f"unknown or non-client opcode {opcode}", Err.UNIMPLEMENTED)
    try:
        return dec(body, offset, max_len)
    except JuteError as exc:
        raise _as_protocol_error(exc, _op_name(opcode)) from None
    except _DECODE_ERRORS as exc:
        raise _as_protocol_error(exc, _op_name(opcode)) from None




def decode_request_frame(
    payload: _Buf, *, max_len: int = DEFAULT_MAX_BUFFER
) -> tuple[int, int, Request]:
    """``(xid, opcode, request)`` of a whole request payload, in one call.

    The server's hot path: header and body without intermediate objects.
    ``request`` is ``None`` for ping, closeSession and whoAmI.

    Raises:
        ProtocolError: as :func:`decode_request`, or a payload under 8 bytes.
    """
    if len(payload) < 8:
        raise _truncated(0, 8, len(payload))
    xid, opcode = _unpack_ii(payload, 0)
    dec = _REQUEST_DECODERS.get(opcode)
    if dec is None:
        return xid, opcode, decode_request(opcode, payload, max_len=max_len, offset=8)
    try:
        return xid, opcode, dec(payload, 8, max_len)
    except JuteError as exc:
        raise _as_protocol_error(exc, _op_name(opcode)) from None
    except _DECODE_ERRORS as exc:
        raise _as_protocol_error(exc, _op_name(opcode)) from None


def _op_name(opcode: int) -> str:
    try:
        return f"{OpCode(opcode).name} request"
    except ValueError:
        return f"opcode {opcode} record"


def decode_connect_request(payload: _Buf, *, max_len: int = DEFAULT_MAX_BUFFER) -> ConnectRequest:
    """The first packet of a connection.  ``read_only`` is ``None`` when absent."""
    end = len(payload)
    if end < _CONNECT_REQ.size:
        raise _truncated(0, _CONNECT_REQ.size, end)
    pv, zxid, timeout, sid = _CONNECT_REQ.unpack_from(payload, 0)
    passwd, off = _buf_at(payload, _CONNECT_REQ.size, end, max_len)
    read_only = None if off >= end else payload[off] != 0
    return ConnectRequest(pv, zxid, timeout, sid, passwd, read_only)


_HDR_ZERO = bytes(_FRAME_REPLY.size)


def _fast_data_stat(xid: int, zxid: int, err: int, body: Any) -> bytes:
    data = body.data
    st = _stat_bytes(body.stat)
    if data is None:
        return _FRAME_REPLY_LEN.pack(88, xid, zxid, err, -1) + st
    n = len(data)
    return b"".join((_FRAME_REPLY_LEN.pack(88 + n, xid, zxid, err, n), data, st))


def _fast_stat(xid: int, zxid: int, err: int, body: Any) -> bytes:
    return _FRAME_REPLY.pack(84, xid, zxid, err) + _stat_bytes(body.stat)


def _fast_path_stat(xid: int, zxid: int, err: int, body: Any) -> bytes:
    p = body.path.encode()
    n = len(p)
    return b"".join((_FRAME_REPLY_LEN.pack(88 + n, xid, zxid, err, n), p, _stat_bytes(body.stat)))


def _fast_path(xid: int, zxid: int, err: int, body: Any) -> bytes:
    path: str | None = body.path
    if path is None:
        return _FRAME_REPLY_LEN.pack(20, xid, zxid, err, -1)
    p = path.encode()
    n = len(p)
    return _FRAME_REPLY_LEN.pack(20 + n, xid, zxid, err, n) + p


_FAST_REPLIES: dict[type, Callable[[int, int, int, Any], bytes]] = {
    CreateResponse: _fast_path,
    GetDataResponse: _fast_data_stat,
    ExistsResponse: _fast_stat,
    SetDataResponse: _fast_stat,
    SetACLResponse: _fast_stat,
    Create2Response: _fast_path_stat,
}


def encode_reply(xid: int, zxid: int, err: int, body: Response | bytes | None = None) -> bytes:
    """A whole reply frame: int32 length + ReplyHeader + ``body``.

    ``body`` is a response record (anything with ``write(Writer)``), already
    encoded ``bytes``, or ``None``.  ZooKeeper sends no body when ``err != 0``;
    that is the caller's choice, not enforced here.
    """
    if body is None:
        return _pack_frame_reply(16, xid, zxid, err)
    cls = body.__class__
    # The hot write replies inlined (_fast_stat, _fast_path): same bytes.
    if cls is SetDataResponse:
        st = body.stat  # type: ignore[union-attr]
        if st.__class__ is bytes and len(st) == _STAT_SIZE:
            return _pack_frame_reply(84, xid, zxid, err) + st
    elif cls is CreateResponse:
        path = body.path  # type: ignore[union-attr]
        if path.__class__ is str:
            p = path.encode()
            n = len(p)
            return _pack_frame_reply_len(20 + n, xid, zxid, err, n) + p
    fast = _FAST_REPLIES.get(cls)
    if fast is not None:
        return fast(xid, zxid, err, body)
    if isinstance(body, bytes | bytearray | memoryview):
        return _FRAME_REPLY.pack(16 + len(body), xid, zxid, err) + body
    w = Writer()
    buf = w.buf
    buf += _HDR_ZERO
    body.write(w)
    _FRAME_REPLY.pack_into(buf, 0, len(buf) - 4, xid, zxid, err)
    return bytes(buf)


_FRAME_NOTIFICATION = struct.Struct(">iiqiiii")


def encode_notification(event_type: int, state: int, path: str, zxid: int = -1) -> bytes:
    """A whole watch-event frame: xid -1, ``zxid`` (-1 on 3.8, the txn's on 3.9), err 0."""
    p = path.encode()
    n = len(p)
    return _FRAME_NOTIFICATION.pack(28 + n, -1, zxid, 0, event_type, state, n) + p


def encode_connect_response(
    protocol_version: int | ConnectResponse = 0,
    timeout: int = 0,
    session_id: int = 0,
    passwd: bytes = b"",
    read_only: bool | None = False,
) -> bytes:
    """A whole ConnectResponse frame; pass a :class:`ConnectResponse` or its fields.

    ``read_only=None`` omits the trailing byte (answer to an old client).
    """
    rsp = (
        protocol_version
        if isinstance(protocol_version, ConnectResponse)
        else ConnectResponse(protocol_version, timeout, session_id, passwd, read_only)
    )
    return _frame(rsp)


def _frame(record: _Writable) -> bytes:
    w = Writer()
    w.buf += b"\0\0\0\0"
    record.write(w)
    _INT.pack_into(w.buf, 0, len(w.buf) - 4)
    return bytes(w.buf)


# ------------------------------------------------------------ client side


def encode_request(xid: int, opcode: int, request: Request = None) -> bytes:
    """A whole request frame: int32 length + RequestHeader(xid, opcode) + record."""
    if request is None:
        return _FRAME_REQUEST.pack(8, xid, opcode)
    w = Writer()
    buf = w.buf
    buf += b"\0" * 12
    if type(request) is SetWatches:
        request.write(w, opcode)
    else:
        request.write(w)
    _FRAME_REQUEST.pack_into(buf, 0, len(buf) - 4, xid, opcode)
    return bytes(buf)


def encode_connect_request(
    protocol_version: int | ConnectRequest = 0,
    last_zxid_seen: int = 0,
    timeout: int = 10000,
    session_id: int = 0,
    passwd: bytes = b"\0" * 16,
    read_only: bool | None = False,
) -> bytes:
    """A whole ConnectRequest frame; pass a :class:`ConnectRequest` or its fields."""
    req = (
        protocol_version
        if isinstance(protocol_version, ConnectRequest)
        else ConnectRequest(
            protocol_version, last_zxid_seen, timeout, session_id, passwd, read_only
        )
    )
    return _frame(req)


def decode_reply_header(payload: _Buf, offset: int = 0) -> ReplyHeader:
    """The ReplyHeader at the start of a reply frame payload (16 bytes)."""
    if len(payload) - offset < 16:
        raise _truncated(offset, 16, len(payload))
    return ReplyHeader(*_REPLY_HEADER.unpack_from(payload, offset))


def decode_connect_response(payload: _Buf, *, max_len: int = DEFAULT_MAX_BUFFER) -> ConnectResponse:
    """A ConnectResponse payload; ``read_only`` is ``None`` when the byte is absent."""
    end = len(payload)
    if end < _CONNECT_RSP.size:
        raise _truncated(0, _CONNECT_RSP.size, end)
    pv, timeout, sid = _CONNECT_RSP.unpack_from(payload, 0)
    passwd, off = _buf_at(payload, _CONNECT_RSP.size, end, max_len)
    read_only = None if off >= end else payload[off] != 0
    return ConnectResponse(pv, timeout, sid, passwd, read_only)


def decode_notification(
    payload: _Buf, offset: int = 16, *, max_len: int = DEFAULT_MAX_BUFFER
) -> WatcherEvent:
    """The WatcherEvent of a notification frame payload (after its 16-byte ReplyHeader)."""
    end = len(payload)
    if end - offset < 8:
        raise _truncated(offset, 8, end)
    t, state = _II.unpack_from(payload, offset)
    path, _ = _str_at(payload, offset + 8, end, max_len)
    return WatcherEvent(t, state, path)


def _rs_create(r: Reader) -> CreateResponse:
    return CreateResponse(r.read_ustring())


def _rs_create2(r: Reader) -> Create2Response:
    return Create2Response(r.read_ustring(), read_stat(r))


def _rs_get_data(r: Reader) -> GetDataResponse:
    return GetDataResponse(r.read_buffer_nullable(), read_stat(r))


def _rs_set_data(r: Reader) -> SetDataResponse:
    return SetDataResponse(read_stat(r))


def _rs_get_children(r: Reader) -> GetChildrenResponse:
    return GetChildrenResponse(_read_strings(r))


def _rs_multi(r: Reader) -> MultiResponse:
    results: list[tuple[int, Any]] = []
    while True:
        if r.end - r.pos < 9:
            raise _truncated(r.pos, 9, r.end)
        t, done, err = _MULTI_HEADER.unpack_from(r.data, r.pos)
        r.pos += 9
        if done:
            return MultiResponse(tuple(results))
        if t == -1:
            results.append((-1, r.read_int()))
            continue
        read = _MULTI_RESULT_READERS.get(t)
        if read is None:
            raise ProtocolError(f"multi response: invalid result type {t}")
        results.append((t, read(r) if read is not _NO_BODY else None))


def _NO_BODY(r: Reader) -> None:
    return None


_MULTI_RESULT_READERS: dict[int, Callable[[Reader], Any]] = {
    OpCode.create: _rs_create,
    OpCode.create2: _rs_create2,
    OpCode.createTTL: _rs_create2,
    OpCode.createContainer: _rs_create2,
    OpCode.delete: _NO_BODY,
    OpCode.check: _NO_BODY,
    OpCode.setData: _rs_set_data,
    OpCode.getData: _rs_get_data,
    OpCode.getChildren: _rs_get_children,
}

_RESPONSE_READERS: dict[int, Callable[[Reader], Any]] = {
    **_MULTI_RESULT_READERS,
    OpCode.exists: lambda r: ExistsResponse(read_stat(r)),
    OpCode.getACL: lambda r: GetACLResponse(_read_acls(r), read_stat(r)),
    OpCode.setACL: lambda r: SetACLResponse(read_stat(r)),
    OpCode.sync: lambda r: SyncResponse(r.read_ustring()),
    OpCode.getChildren2: lambda r: GetChildren2Response(_read_strings(r), read_stat(r)),
    OpCode.multi: _rs_multi,
    OpCode.multiRead: _rs_multi,
    OpCode.reconfig: _rs_get_data,
    OpCode.sasl: lambda r: SetSASLResponse(r.read_buffer()),
    OpCode.getEphemerals: lambda r: GetEphemeralsResponse(_read_strings(r)),
    OpCode.getAllChildrenNumber: lambda r: GetAllChildrenNumberResponse(r.read_int()),
    OpCode.addWatch: lambda r: ErrorResponse(r.read_int()),
    OpCode.whoAmI: lambda r: WhoAmIResponse(
        tuple(r.read_vector(lambda r2: (r2.read_ustring(), r2.read_ustring())))
    ),
    OpCode.ping: _NO_BODY,
    OpCode.closeSession: _NO_BODY,
    OpCode.auth: _NO_BODY,
    OpCode.setWatches: _NO_BODY,
    OpCode.setWatches2: _NO_BODY,
    OpCode.checkWatches: _NO_BODY,
    OpCode.removeWatches: _NO_BODY,
}


def decode_response(
    opcode: int, body: _Buf, *, max_len: int = DEFAULT_MAX_BUFFER, offset: int = 0
) -> Response:
    """Decode the response record of request ``opcode`` (call only when err == 0).

    Returns the response record, or ``None`` for requests answered with a bare
    header (delete, check, ping, auth, setWatches, checkWatches, removeWatches,
    closeSession).  Stats decode as :class:`~trio_quorum.protocol.data.Stat`.

    Raises:
        ProtocolError: unknown opcode or malformed body.
    """
    read = _RESPONSE_READERS.get(opcode)
    if read is None:
        raise ProtocolError(f"no response record for opcode {opcode}", Err.UNIMPLEMENTED)
    if read is _NO_BODY:
        return None
    try:
        return read(Reader(body, offset, max_len=max_len))
    except JuteError as exc:
        raise _as_protocol_error(exc, f"response to opcode {opcode}") from None
    except _DECODE_ERRORS as exc:
        raise _as_protocol_error(exc, f"response to opcode {opcode}") from None
