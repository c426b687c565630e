"""The client side of ZooKeeper's wire protocol, as far as the benchmark needs it.

A thin seam over the project's own sans-IO codec, :mod:`trio_quorum.protocol.records`: the
harness encodes every request with ``proto.encode_request`` /
``proto.encode_connect_request`` and decodes set-up and probe replies with
``proto.decode_reply_header`` / ``proto.decode_response``.  The load generator's
hot loop pre-encodes request bodies here once per key (:func:`request_body`) and
only packs the 12-byte frame header per request; it reads the 16-byte ReplyHeader
with :data:`REPLY_HEADER` directly, because building a record object per reply
would make the client, not the server, the thing being measured.

Invariants: no IO, no clock.
"""

from __future__ import annotations

import struct

from ..protocol import records as proto
from ..protocol.consts import OpCode
from ..protocol.data import OPEN_ACL_UNSAFE

__all__ = [
    "PING_XID",
    "REPLY_HEADER",
    "encode_connect_request",
    "decode_connect_response",
    "encode_request",
    "request_body",
    "decode_reply_header",
    "create_request",
    "create_body_tail",
    "get_data_request",
    "exists_request",
    "set_data_request",
    "delete_request",
    "ping_frame",
    "close_session_frame",
    "decode_get_data",
]

PING_XID = -2

#: ``ReplyHeader{int xid; long zxid; int err}`` (16 bytes), for the hot loop.
REPLY_HEADER = struct.Struct(">iqi")

#: Length of ``int32 frame length | RequestHeader{xid, type}``.
_REQUEST_PREFIX = 12


def encode_connect_request(
    timeout_ms: int, session_id: int = 0, passwd: bytes = b"\0" * 16, last_zxid: int = 0
) -> bytes:
    """A ConnectRequest frame (no RequestHeader), with the 3.8+ ``readOnly`` byte."""
    return proto.encode_connect_request(0, last_zxid, timeout_ms, session_id, passwd, False)


def decode_connect_response(payload: bytes) -> tuple[int, int, bytes]:
    """ConnectResponse payload -> ``(negotiated_timeout_ms, session_id, passwd)``.

    A timeout <= 0 means the server refused or expired the session.
    """
    r = proto.decode_connect_response(payload)
    return r.timeout, r.session_id, r.passwd


def encode_request(xid: int, op: int, record: object = None) -> bytes:
    """A request frame: ``len | RequestHeader{xid, type} | record``."""
    return proto.encode_request(xid, op, record)


def request_body(op: int, record: object) -> bytes:
    """The encoded record alone (no length, no header): a template for the hot loop."""
    return proto.encode_request(0, op, record)[_REQUEST_PREFIX:]


def decode_reply_header(
    payload: bytes | bytearray | memoryview, offset: int = 0
) -> tuple[int, int, int]:
    """``(xid, zxid, err)`` of a reply payload starting at ``offset``."""
    h = proto.decode_reply_header(payload, offset)
    return h.xid, h.zxid, h.err


def create_request(path: str, data: bytes, flags: int = 0) -> proto.CreateRequest:
    """CreateRequest{path, data, acl=OPEN_ACL_UNSAFE, flags}."""
    return proto.CreateRequest(path, data, OPEN_ACL_UNSAFE, flags)


def create_body_tail(data: bytes, flags: int = 0) -> bytes:
    """Everything after the path in an encoded CreateRequest, so a hot loop builds only the path."""
    body = request_body(OpCode.create, create_request("", data, flags))
    # An empty ustring is encoded as its 4-byte length 0 (or -1): drop it.
    return body[4:]


def get_data_request(path: str) -> proto.GetDataRequest:
    return proto.GetDataRequest(path, False)


def exists_request(path: str) -> proto.ExistsRequest:
    return proto.ExistsRequest(path, False)


def set_data_request(path: str, data: bytes, version: int = -1) -> proto.SetDataRequest:
    return proto.SetDataRequest(path, data, version)


def delete_request(path: str, version: int = -1) -> proto.DeleteRequest:
    return proto.DeleteRequest(path, version)


def ping_frame() -> bytes:
    return proto.encode_request(PING_XID, OpCode.ping)


def close_session_frame(xid: int) -> bytes:
    return proto.encode_request(xid, OpCode.closeSession)


def decode_get_data(payload: bytes, offset: int) -> tuple[bytes, int]:
    """GetDataResponse body at ``offset`` -> ``(data, mzxid)``."""
    r = proto.decode_response(OpCode.getData, payload, offset=offset)
    return (r.data or b""), r.stat.mzxid
