"""What travels a request chain: :class:`Request`, and what a chain may ask of a client.

A leaf module: it imports nothing of the server, so connections, stages,
chains and roles all meet here instead of importing each other.

* :class:`Request` is the message of every chain (batches of them, never one
  per channel message).  ``conn`` is ``None`` for requests the server makes
  itself (session expiry, container cleanup).
* :class:`Client` is the narrow view a chain has of a client connection:
  deliver frames, finish a session handshake, close.  The chain never sees
  the connection's socket, its reader or the server object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..protocol.data import Id
    from .stats import ConnStats

__all__ = ["Client", "Request", "UNIMPLEMENTED", "conn_timeout"]


class Client(Protocol):
    """A client connection as the request chain sees it (hashable: it is the watcher key)."""

    session_id: int
    outstanding: int
    closed: bool
    auth_ids: list[Id]
    stats: ConnStats

    def deliver(self, frames: list[bytes]) -> None:
        """Send encoded frames in order; never blocks, never raises."""

    def finish_session_init(self, session_id: int, timeout: int, valid: bool) -> None:
        """The createSession txn is applied: answer the ConnectRequest."""

    def close_after_flush(self) -> None:
        """Send what is queued, then close."""

    def abort(self, reason: str) -> None:
        """Close now, dropping unsent replies."""


class Request:
    """One client (or internal) request travelling a chain.

    Stages attach their results: ``hdr``/``txn`` (prep: the transaction),
    ``err`` (an error code to answer with), ``extra`` (stage-private).
    ``owner`` is who serves the session (the connection; for a write a
    learner forwarded, ``("learner", sid)``).
    """

    __slots__ = ("conn", "session_id", "xid", "type", "record", "start", "auth_ids", "hdr", "txn", "err", "extra",
                 "owner")

    def __init__(
        self,
        conn: Client | None,
        session_id: int,
        xid: int,
        type: int,
        record: object,
        start: int,
        auth_ids: list[Id] | None = None,
    ) -> None:
        self.conn = conn
        self.session_id = session_id
        self.xid = xid
        self.type = type
        self.record = record
        self.start = start
        self.auth_ids = auth_ids if auth_ids is not None else []
        self.hdr: object = None
        self.txn: object = None
        self.err = 0
        self.extra: object = None
        #: Who serves the session here (prep's SESSIONMOVED check): the connection,
        #: or on a leader the learner a forwarded request came from.
        self.owner: object = conn


class _UnimplementedType:
    """Marker record: the opcode is unknown; the chain answers UNIMPLEMENTED in order."""

    def __repr__(self) -> str:
        return "<unimplemented>"


#: The record of a request whose opcode is unknown.
UNIMPLEMENTED = _UnimplementedType()


def conn_timeout(req: Request) -> int:
    """The negotiated timeout a createSession request carries as its record."""
    timeout: int = req.record  # type: ignore[assignment]
    return timeout
