"""A minimal blocking ZooKeeper client built only from trio_quorum.protocol.records, for tests.

It speaks the wire protocol directly, so tests can send what kazoo cannot
(addWatch, TTL and container creates, multiRead, raw xids) to any server,
Apache ZooKeeper or ours.  Every wait is bounded by the socket timeout.
"""

from __future__ import annotations

import socket
from typing import Any

from trio_quorum.protocol import records as p
from trio_quorum.protocol.framing import FourLetterWord, FrameDecoder

__all__ = ["WireClient"]


class WireClient:
    """A minimal ZooKeeper client built only from trio_quorum.protocol.records."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.dec = FrameDecoder(four_letter_words=False)
        self.pending: list[bytes] = []
        self.events: list[tuple[int, p.WatcherEvent]] = []
        self.xid = 0

    def close(self) -> None:
        self.sock.close()

    def recv_payload(self) -> bytes:
        for _ in range(10_000):
            if self.pending:
                return self.pending.pop(0)
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("server closed the connection")
            self.dec.feed(data)
            for f in self.dec.frames():
                assert not isinstance(f, FourLetterWord)
                self.pending.append(bytes(f))
        raise AssertionError("no frame")

    def connect(self, read_only: bool | None) -> p.ConnectResponse:
        self.sock.sendall(p.encode_connect_request(0, 0, 30000, 0, b"\0" * 16, read_only))
        return p.decode_connect_response(self.recv_payload())

    def call(self, op: int, req: Any = None, xid: int | None = None) -> tuple[p.ReplyHeader, Any]:
        if xid is None:
            self.xid += 1
            xid = self.xid
        self.sock.sendall(p.encode_request(xid, op, req))
        for _ in range(100):
            payload = self.recv_payload()
            hdr = p.decode_reply_header(payload)
            if hdr.xid == -1:
                self.events.append((hdr.zxid, p.decode_notification(payload)))
                continue
            assert hdr.xid == xid
            body = p.decode_response(op, payload, offset=16) if hdr.err == 0 else None
            return hdr, body
        raise AssertionError("no reply")
