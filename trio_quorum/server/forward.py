"""A client write travelling from a learner to the leader (ZAB's REQUEST payload).

A follower answers reads itself and forwards every write (and createSession /
closeSession) to the leader, whose prep turns it into a txn as for its own
clients; the follower answers its client when the COMMIT of that txn
arrives (matched by session id and cxid, as ZooKeeper's CommitProcessor).

The payload is CBOR ``[session_id, cxid, opcode, body, auth]``: ``body`` is
the request's record in jute (the client's own bytes re-encoded), the
negotiated timeout for createSession, or null; ``auth`` the connection's
authenticated ids as ``[scheme, id]`` pairs (the leader checks ACLs with
them).  Decoding is strict: anything else raises :class:`ForwardError` (the
leader drops that learner's link, never its own state).
"""

from __future__ import annotations

import cbor2

from ..core.prep import _READ_OPS
from ..protocol.consts import OpCode
from ..protocol.data import Id
from ..protocol.records import ProtocolError, decode_request, encode_request
from .request import Request

__all__ = ["ForwardError", "LOCAL_OPS", "decode_forwarded", "encode_forwarded"]

#: Ops a learner answers itself (no txn): prep's reads, minus sync (it asks the leader).
LOCAL_OPS = frozenset(_READ_OPS - {int(OpCode.sync)})
_CREATE_SESSION = int(OpCode.createSession)
_HEADER_LEN = 12  # int32 length + RequestHeader(xid, type)


class ForwardError(ValueError):
    """A REQUEST payload that is not a forwarded request."""


def encode_forwarded(req: Request) -> bytes:
    """The REQUEST payload for ``req`` (a write of a local client)."""
    if req.type == _CREATE_SESSION:
        body: object = req.record
    elif req.record is None:
        body = None
    else:
        body = encode_request(req.xid, req.type, req.record)[_HEADER_LEN:]
    auth = [[i.scheme, i.id] for i in req.auth_ids]
    return cbor2.dumps([req.session_id, req.xid, req.type, body, auth])


def decode_forwarded(payload: bytes, now: int, max_len: int) -> Request:
    """A :class:`Request` (no connection: the leader does not answer it) from a REQUEST payload."""
    try:
        item = cbor2.loads(payload)
    except Exception as exc:  # cbor2 raises several kinds for garbage
        raise ForwardError(f"not CBOR: {exc}") from None
    if type(item) is not list or len(item) != 5:
        raise ForwardError("expected [session, cxid, op, body, auth]")
    session_id, cxid, op, body, auth = item
    if not all(type(v) is int for v in (session_id, cxid, op)):
        raise ForwardError("session, cxid and op must be integers")
    if type(auth) is not list or not all(
        type(a) is list and len(a) == 2 and all(type(s) is str for s in a) for a in auth
    ):
        raise ForwardError("auth must be [[scheme, id], ...]")
    ids = [Id(a[0], a[1]) for a in auth]
    if op == _CREATE_SESSION:
        if type(body) is not int:
            raise ForwardError("createSession carries its timeout")
        record: object = body
    elif body is None:
        record = None
    elif type(body) is bytes:
        try:
            record = decode_request(op, body, max_len=max_len)
        except ProtocolError as exc:
            raise ForwardError(f"bad request body for op {op}: {exc}") from None
    else:
        raise ForwardError("body must be bytes, an int or null")
    return Request(None, session_id, cxid, op, record, now, ids)
