"""The client side of ZooKeeper's wire protocol, as far as the benchmark needs it.

The harness speaks to both servers over raw sockets. It prefers the project's own
sans-IO codec (``trio_quorum/proto.py``); this module is the thin seam that keeps the
bench working while that codec is written, and it is where the bench adapts to it.

Everything here returns whole *frames* (``int32 length`` + payload) ready for
``sendall``; decoders take one frame's payload (without the length prefix).

Invariants: no IO, no clock; every decode goes through the bounded
:class:`trio_quorum.jute.Reader`.
"""

from __future__ import annotations

import struct

from ..consts import OpCode
from ..data import OPEN_ACL_UNSAFE, read_stat, write_acl
from ..jute import Reader, Writer

__all__ = [
    "PING_XID",
    "REPLY_HEADER",
    "frame",
    "encode_connect_request",
    "decode_connect_response",
    "encode_request",
    "decode_reply_header",
    "create_body",
    "path_watch_body",
    "set_data_body",
    "delete_body",
    "ping_frame",
    "close_session_frame",
    "decode_get_data",
]

PING_XID = -2

#: ``ReplyHeader{int xid; long zxid; int err}``.
REPLY_HEADER = struct.Struct(">iqi")
_LEN = struct.Struct(">i")
_REQ_HEADER = struct.Struct(">iii")  # frame length, xid, type


def frame(payload: bytes) -> bytes:
    """Prefix ``payload`` with its int32 length."""
    return _LEN.pack(len(payload)) + payload


def encode_connect_request(
    timeout_ms: int, session_id: int = 0, passwd: bytes = b"\0" * 16, last_zxid: int = 0
) -> bytes:
    """A ConnectRequest frame (no RequestHeader), with the 3.8+ ``readOnly`` byte."""
    w = Writer()
    w.write_int(0)  # protocolVersion
    w.write_long(last_zxid)
    w.write_int(timeout_ms)
    w.write_long(session_id)
    w.write_buffer(passwd)
    w.write_bool(False)
    return frame(w.getvalue())


def decode_connect_response(payload: bytes) -> tuple[int, int, bytes]:
    """ConnectResponse payload -> ``(negotiated_timeout_ms, session_id, passwd)``.

    A timeout <= 0 means the server refused or expired the session.
    """
    r = Reader(payload)
    r.read_int()  # protocolVersion
    timeout = r.read_int()
    session_id = r.read_long()
    passwd = r.read_buffer()
    return timeout, session_id, passwd


def encode_request(xid: int, op: int, body: bytes = b"") -> bytes:
    """A request frame: ``len | RequestHeader{xid, type} | body``."""
    return _REQ_HEADER.pack(8 + len(body), xid, op) + body


def decode_reply_header(payload: bytes | bytearray | memoryview, offset: int = 0) -> tuple[int, int, int]:
    """``(xid, zxid, err)`` of a reply payload starting at ``offset``."""
    return REPLY_HEADER.unpack_from(payload, offset)  # type: ignore[return-value]


def _acl_bytes() -> bytes:
    w = Writer()
    w.write_vector(OPEN_ACL_UNSAFE, write_acl)
    return w.getvalue()


_OPEN_ACL = _acl_bytes()


def create_body(path: str, data: bytes, flags: int = 0) -> bytes:
    """CreateRequest{path, data, acl=OPEN_ACL_UNSAFE, flags}."""
    w = Writer()
    w.write_ustring(path)
    w.write_buffer(data)
    w.write_raw(_OPEN_ACL)
    w.write_int(flags)
    return w.getvalue()


def create_body_tail(data: bytes, flags: int = 0) -> bytes:
    """Everything after the path in a CreateRequest: lets a hot loop build only the path."""
    w = Writer()
    w.write_buffer(data)
    w.write_raw(_OPEN_ACL)
    w.write_int(flags)
    return w.getvalue()


def path_watch_body(path: str, watch: bool = False) -> bytes:
    """GetDataRequest / ExistsRequest / GetChildrenRequest: ``{path, watch}``."""
    w = Writer()
    w.write_ustring(path)
    w.write_bool(watch)
    return w.getvalue()


def set_data_body(path: str, data: bytes, version: int = -1) -> bytes:
    w = Writer()
    w.write_ustring(path)
    w.write_buffer(data)
    w.write_int(version)
    return w.getvalue()


def delete_body(path: str, version: int = -1) -> bytes:
    w = Writer()
    w.write_ustring(path)
    w.write_int(version)
    return w.getvalue()


def ping_frame() -> bytes:
    return encode_request(PING_XID, OpCode.ping)


def close_session_frame(xid: int) -> bytes:
    return encode_request(xid, OpCode.closeSession)


def decode_get_data(payload: bytes, offset: int) -> tuple[bytes, int]:
    """GetDataResponse body at ``offset`` -> ``(data, mzxid)``."""
    r = Reader(payload, offset)
    data = r.read_buffer()
    stat = read_stat(r)
    return data, stat.mzxid
