"""Client-port wire protocol codecs (sans-IO).

The records themselves are declared once, as jute field tables, in
:mod:`.requests` and :mod:`.responses` (re-exported here, so
``from trio_quorum.protocol.records import SetDataRequest`` keeps working);
their readers, writers and fast paths are derived from those tables by
:mod:`.codegen`.  This module holds the codec functions: requests decode on
the server with :func:`decode_request` / :func:`decode_request_frame` and
encode on the client with :func:`encode_request`; responses encode on the
server with :func:`encode_reply` and decode on the client with
:func:`decode_response`.  See ``docs/protocol.md``.

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
* ``encode_reply``, ``encode_request`` and ``encode_notification`` are
  generated from the tables (:func:`.codegen.encode_case`) and equal the
  ``write`` encoding byte for byte (``tests/test_proto_schema.py``).
"""

from __future__ import annotations

__sans_io__ = True

import struct
from collections.abc import Callable
from typing import Any, Protocol, TypeAlias

from . import requests as rq
from . import responses as rs
from .codegen import (
    COPY_LIMIT,
    compile_function,
    encode_case,
    fields_of,
    fixed_struct,
    indent,
    make_encoder,
)
from .consts import Err, OpCode
from .jute import DEFAULT_MAX_BUFFER, JuteError, Reader, Writer
from .requests import *  # noqa: F403 - every request record is importable from here
from .requests import ConnectRequest, ProtocolError, RequestHeader, SetWatches
from .responses import *  # noqa: F403 - every response record is importable from here
from .responses import ConnectResponse, ReplyHeader, WatcherEvent
from .schema import ACL_VECTOR, AclVector, jute_fields

__all__ = [
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
]
__all__ += rq.__all__
__all__ += rs.__all__

Request: TypeAlias = Any
Response: TypeAlias = Any
_Buf: TypeAlias = "bytes | bytearray | memoryview"
_Decoder: TypeAlias = "Callable[[Any, int, int], Any]"

# Older names of the readers and helpers (tests and tools use them).
_r_create = rq.CreateRequest.read
_r_set_data = rq.SetDataRequest.read
_COPY_LIMIT = COPY_LIMIT
_OPEN_ACL_WIRE = AclVector.OPEN_WIRE
_MULTI_HEADER = rq.MULTI_HEADER


def _write_acls(w: Writer, acl: Any) -> None:
    ACL_VECTOR.write(w, acl)


def _slot_setter(cls: Any, name: str) -> Callable[[Any, Any], None]:
    """The slot descriptor's ``__set__`` (bypasses a frozen dataclass's ``__setattr__``)."""
    setter: Callable[[Any, Any], None] = getattr(cls, name).__set__
    return setter


class _Writable(Protocol):
    def write(self, w: Writer) -> None: ...


#: RequestHeader / ReplyHeader as structs, and with the int32 frame length in front
_REQUEST_HEADER = fixed_struct(RequestHeader)
_REPLY_HEADER = fixed_struct(ReplyHeader)
_FRAME_REQUEST = struct.Struct(">i" + _REQUEST_HEADER.format[1:])
_FRAME_REPLY = struct.Struct(">i" + _REPLY_HEADER.format[1:])
_unpack_request_header = _REQUEST_HEADER.unpack_from
#: packers of a reply frame's first bytes: length + ReplyHeader (+ the int32
#: length of the body's first string or buffer); core/final.py uses them
_pack_frame_reply = _FRAME_REPLY.pack
_pack_frame_reply_len = struct.Struct(_FRAME_REPLY.format + "i").pack


# ------------------------------------------------------------ decoding requests


def _with_reader(read: Callable[[Reader], Any]) -> _Decoder:
    def dec(b: _Buf, off: int, max_len: int) -> Any:
        return read(Reader(b, off, max_len=max_len))

    return dec


def _multi(allowed: dict[int, Callable[[Reader], Any]], name: str) -> _Decoder:
    return _with_reader(lambda r: rq.MultiRequest(rq.read_multi(r, allowed, name)))


_REQUEST_DECODERS: dict[int, _Decoder] = {  # int keys: lookups by plain int hit fast
    OpCode.create: rq.CreateRequest._jute_decode,
    OpCode.create2: rq.CreateRequest._jute_decode,
    OpCode.createContainer: rq.CreateRequest._jute_decode,
    OpCode.createTTL: rq.CreateTTLRequest._jute_decode,
    OpCode.delete: rq.DeleteRequest._jute_decode,
    OpCode.exists: rq.ExistsRequest._jute_decode,
    OpCode.getData: rq.GetDataRequest._jute_decode,
    OpCode.setData: rq.SetDataRequest._jute_decode,
    OpCode.getACL: rq.GetACLRequest._jute_decode,
    OpCode.setACL: rq.SetACLRequest._jute_decode,
    OpCode.getChildren: rq.GetChildrenRequest._jute_decode,
    OpCode.getChildren2: rq.GetChildren2Request._jute_decode,
    OpCode.sync: rq.SyncRequest._jute_decode,
    OpCode.check: rq.CheckVersionRequest._jute_decode,
    OpCode.multi: _multi(rq.MULTI_WRITE_OPS, "multi"),
    OpCode.multiRead: _multi(rq.MULTI_READ_OPS, "multiRead"),
    OpCode.reconfig: rq.ReconfigRequest._jute_decode,
    OpCode.checkWatches: rq.CheckWatchesRequest._jute_decode,
    OpCode.removeWatches: rq.RemoveWatchesRequest._jute_decode,
    OpCode.auth: rq.AuthPacket._jute_decode,
    OpCode.setWatches: _with_reader(SetWatches.read_v1),
    OpCode.setWatches2: SetWatches._jute_decode,
    OpCode.sasl: rq.GetSASLRequest._jute_decode,
    OpCode.getEphemerals: rq.GetEphemeralsRequest._jute_decode,
    OpCode.getAllChildrenNumber: rq.GetAllChildrenNumberRequest._jute_decode,
    OpCode.addWatch: rq.AddWatchRequest._jute_decode,
}
_REQUEST_DECODERS = {int(k): v for k, v in _REQUEST_DECODERS.items()}
#: Requests whose body is empty.
_NO_BODY_REQUESTS = frozenset({OpCode.ping, OpCode.closeSession, OpCode.whoAmI})
_DECODE_ERRORS = (struct.error, IndexError, OverflowError)


def _as_protocol_error(exc: Exception, what: str) -> ProtocolError:
    if isinstance(exc, ProtocolError):
        return exc
    if isinstance(exc, UnicodeDecodeError):  # from a fast decoder; the Reader says the same
        return ProtocolError(f"malformed {what}: invalid UTF-8 in string ({exc.reason})")
    return ProtocolError(f"malformed {what}: {exc}")


def _decode(dec: _Decoder, payload: _Buf, off: int, max_len: int, what: str) -> Any:
    try:
        return dec(payload, off, max_len)
    except (JuteError, UnicodeDecodeError, *_DECODE_ERRORS) as exc:
        raise _as_protocol_error(exc, what) from None


def decode_request_header(payload: _Buf, offset: int = 0) -> RequestHeader:
    """The ``RequestHeader`` at the start of a (non-connect) frame payload."""
    if len(payload) - offset < _REQUEST_HEADER.size:
        raise rq.truncated(offset, _REQUEST_HEADER.size, len(payload))
    return RequestHeader(*_unpack_request_header(payload, offset))


def decode_request(opcode: int, body: _Buf, *, max_len: int = DEFAULT_MAX_BUFFER, offset: int = 0) -> Request:
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
    except (JuteError, UnicodeDecodeError, *_DECODE_ERRORS) as exc:
        raise _as_protocol_error(exc, _op_name(opcode)) from None


def decode_request_frame(payload: _Buf, *, max_len: int = DEFAULT_MAX_BUFFER) -> tuple[int, int, Request]:
    """``(xid, opcode, request)`` of a whole request payload, in one call.

    The server's hot path: header and body without intermediate objects.
    ``request`` is ``None`` for ping, closeSession and whoAmI.

    Raises:
        ProtocolError: as :func:`decode_request`, or a payload under 8 bytes.
    """
    if len(payload) < 8:
        raise rq.truncated(0, 8, len(payload))
    xid, opcode = _unpack_request_header(payload, 0)
    return xid, opcode, decode_request(opcode, payload, max_len=max_len, offset=8)


def _op_name(opcode: int) -> str:
    try:
        return f"{OpCode(opcode).name} request"
    except ValueError:
        return f"opcode {opcode} record"


def decode_connect_request(payload: _Buf, *, max_len: int = DEFAULT_MAX_BUFFER) -> ConnectRequest:
    """The first packet of a connection.  ``read_only`` is ``None`` when absent."""
    rec: ConnectRequest = _decode(ConnectRequest._jute_decode, payload, 0, max_len, "ConnectRequest")
    return rec


# ------------------------------------------------------------ encoding replies

#: ``(variable, jute type, expression)`` of the ReplyHeader fields, read from the arguments.
_REPLY_HEAD = fields_of("h", ReplyHeader, [name for name, _ in jute_fields(ReplyHeader)])
_REQUEST_HEAD = fields_of("h", RequestHeader, ["xid", "opcode"])
_RESPONSES = (
    rs.SetDataResponse, rs.CreateResponse, rs.GetDataResponse, rs.ExistsResponse, rs.SetACLResponse, rs.Create2Response,
    rs.GetChildrenResponse, rs.GetChildren2Response, rs.GetACLResponse, rs.SyncResponse, rs.ErrorResponse,
    rs.GetAllChildrenNumberResponse, rs.GetEphemeralsResponse, rs.SetSASLResponse, rs.WhoAmIResponse,
)
#: Inlined in encode_reply: the replies of the write path and of getData.
_HOT_RESPONSES = (rs.SetDataResponse, rs.CreateResponse, rs.GetDataResponse)
_ns: dict[str, Any] = {}
_REPLY_ENCODERS: dict[type, Callable[[int, int, int, Any], bytes | None]] = {}
_cls: type
for _cls in _RESPONSES:
    _enc = make_encoder(f"_reply_{_cls.__name__}", "xid, zxid, err, o",
                        encode_case(_REPLY_HEAD + fields_of("o", _cls), _ns, frame=True), _ns)
    if _enc is not None:
        _REPLY_ENCODERS[_cls] = _enc


def _encode_reply_general(xid: int, zxid: int, err: int, body: Any) -> bytes:
    enc = _REPLY_ENCODERS.get(body.__class__)
    if enc is not None:
        frame = enc(xid, zxid, err, body)
        if frame is not None:
            return frame
    if isinstance(body, bytes | bytearray | memoryview):
        return _FRAME_REPLY.pack(_REPLY_HEADER.size + len(body), xid, zxid, err) + body
    w = Writer()
    buf = w.buf
    buf += bytes(_FRAME_REPLY.size)
    body.write(w)
    _FRAME_REPLY.pack_into(buf, 0, len(buf) - 4, xid, zxid, err)
    return bytes(buf)


def _encode_reply_source() -> list[str]:
    _ns.update(_general=_encode_reply_general, _pack_empty=_FRAME_REPLY.pack)
    lines = [
        "def encode_reply(xid, zxid, err, body=None):",
        "    if body is None:",
        f"        return _pack_empty({_REPLY_HEADER.size}, xid, zxid, err)",
        "    cls = body.__class__",
    ]
    for k, cls in enumerate(_HOT_RESPONSES):
        _ns[cls.__name__] = cls
        case = encode_case(_REPLY_HEAD + fields_of("body", cls), _ns, frame=True)
        assert case is not None
        lines += [f"    {'if' if k == 0 else 'elif'} cls is {cls.__name__}:", *indent(case, 2)]
    lines.append("    return _general(xid, zxid, err, body)")
    return lines


encode_reply: Callable[..., bytes] = compile_function("encode_reply", _encode_reply_source(), _ns)
encode_reply.__doc__ = """A whole reply frame: int32 length + ReplyHeader + ``body``.

``body`` is a response record (anything with ``write(Writer)``), already
encoded ``bytes``, or ``None``.  ZooKeeper sends no body when ``err != 0``;
that is the caller's choice, not enforced here.
"""


def _encode_notification_source() -> list[str]:
    _ns["WatcherEvent"] = WatcherEvent
    _ns["_frame"] = lambda h: _frame_as_reply(*h)
    items = fields_of("h", ReplyHeader, ["-1", "zxid", "0"]) + fields_of(
        "ev", WatcherEvent, ["event_type", "state", "path"])
    case = encode_case(items, _ns, frame=True)
    assert case is not None
    return ["def encode_notification(event_type, state, path, zxid=-1):", *indent(case),
            "    return _frame((-1, zxid, 0, WatcherEvent(event_type, state, path)))"]


def _frame_as_reply(xid: int, zxid: int, err: int, body: _Writable) -> bytes:
    return _encode_reply_general(xid, zxid, err, body)


encode_notification: Callable[..., bytes] = compile_function(
    "encode_notification", _encode_notification_source(), _ns)
encode_notification.__doc__ = (
    "A whole watch-event frame: xid -1, ``zxid`` (-1 on 3.8, the txn's on 3.9), err 0.")


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
    struct.pack_into(">i", w.buf, 0, len(w.buf) - 4)
    return bytes(w.buf)


# ------------------------------------------------------------ client side

_REQUESTS = (
    rq.AuthPacket, rq.CreateRequest, rq.CreateTTLRequest, rq.DeleteRequest, rq.ExistsRequest, rq.GetDataRequest, rq.SetDataRequest,
    rq.GetACLRequest, rq.SetACLRequest, rq.GetChildrenRequest, rq.GetChildren2Request, rq.SyncRequest, rq.CheckVersionRequest,
    rq.CheckWatchesRequest, rq.RemoveWatchesRequest, rq.GetAllChildrenNumberRequest, rq.GetEphemeralsRequest,
    rq.AddWatchRequest, rq.ReconfigRequest, rq.GetSASLRequest,
)
_REQUEST_ENCODERS: dict[type, Callable[[int, int, Any], bytes | None]] = {}
for _cls in _REQUESTS:
    _enc = make_encoder(f"_request_{_cls.__name__}", "xid, opcode, o",
                        encode_case(_REQUEST_HEAD + fields_of("o", _cls), _ns, frame=True), _ns)
    if _enc is not None:
        _REQUEST_ENCODERS[_cls] = _enc


def encode_request(xid: int, opcode: int, request: Request = None) -> bytes:
    """A whole request frame: int32 length + RequestHeader(xid, opcode) + record."""
    if request is None:
        return _FRAME_REQUEST.pack(_REQUEST_HEADER.size, xid, opcode)
    enc = _REQUEST_ENCODERS.get(request.__class__)
    if enc is not None:
        frame = enc(xid, opcode, request)
        if frame is not None:
            return frame
    w = Writer()
    buf = w.buf
    buf += bytes(_FRAME_REQUEST.size)
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
        else ConnectRequest(protocol_version, last_zxid_seen, timeout, session_id, passwd, read_only)
    )
    return _frame(req)


def decode_reply_header(payload: _Buf, offset: int = 0) -> ReplyHeader:
    """The ReplyHeader at the start of a reply frame payload (16 bytes)."""
    if len(payload) - offset < _REPLY_HEADER.size:
        raise rq.truncated(offset, _REPLY_HEADER.size, len(payload))
    return ReplyHeader(*_REPLY_HEADER.unpack_from(payload, offset))


def decode_connect_response(payload: _Buf, *, max_len: int = DEFAULT_MAX_BUFFER) -> ConnectResponse:
    """A ConnectResponse payload; ``read_only`` is ``None`` when the byte is absent."""
    rec: ConnectResponse = _decode(ConnectResponse._jute_decode, payload, 0, max_len, "ConnectResponse")
    return rec


def decode_notification(payload: _Buf, offset: int = 16, *, max_len: int = DEFAULT_MAX_BUFFER) -> WatcherEvent:
    """The WatcherEvent of a notification frame payload (after its 16-byte ReplyHeader)."""
    rec: WatcherEvent = _decode(WatcherEvent._jute_decode, payload, offset, max_len, "WatcherEvent")
    return rec


def _no_body(r: Reader) -> None:
    return None


_RESPONSE_READERS: dict[int, Callable[[Reader], Any]] = {
    **{op: (read or _no_body) for op, read in rs.MULTI_RESULT_READERS.items()},
    OpCode.exists: rs.ExistsResponse.read,
    OpCode.getACL: rs.GetACLResponse.read,
    OpCode.setACL: rs.SetACLResponse.read,
    OpCode.sync: rs.SyncResponse.read,
    OpCode.getChildren2: rs.GetChildren2Response.read,
    OpCode.multi: rs.MultiResponse.read,
    OpCode.multiRead: rs.MultiResponse.read,
    OpCode.reconfig: rs.GetDataResponse.read,
    OpCode.sasl: rs.SetSASLResponse.read,
    OpCode.getEphemerals: rs.GetEphemeralsResponse.read,
    OpCode.getAllChildrenNumber: rs.GetAllChildrenNumberResponse.read,
    OpCode.addWatch: rs.ErrorResponse.read,
    OpCode.whoAmI: rs.WhoAmIResponse.read,
    OpCode.ping: _no_body,
    OpCode.closeSession: _no_body,
    OpCode.auth: _no_body,
    OpCode.setWatches: _no_body,
    OpCode.setWatches2: _no_body,
    OpCode.checkWatches: _no_body,
    OpCode.removeWatches: _no_body,
}


def decode_response(opcode: int, body: _Buf, *, max_len: int = DEFAULT_MAX_BUFFER, offset: int = 0) -> Response:
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
    if read is _no_body:
        return None
    return _decode(_with_reader(read), body, offset, max_len, f"response to opcode {opcode}")
