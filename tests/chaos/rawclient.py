"""A pipelining async ZooKeeper client for chaos tests, built only from trio_quorum.protocol.records.

kazoo sends one request at a time per call; a crash test needs hundreds of writes
in flight at the moment the server dies, so this client writes whole batches of
encoded requests with one ``send_all`` and matches replies to requests by order
(ZooKeeper answers a connection's requests in the order they were sent).

It never retries and never reconnects: a dead connection raises
:class:`ConnectionLost`, and what was acknowledged up to then is the caller's
record of truth.
"""

from __future__ import annotations

from typing import Any

import trio

from trio_quorum.protocol import records as p
from trio_quorum.protocol.framing import FourLetterWord, FrameDecoder

__all__ = ["ConnectionLost", "RawSession", "open_raw_session"]


class ConnectionLost(Exception):
    """The server closed the connection (or the socket broke)."""


class RawSession:
    """One client connection with an established session."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self._dec = FrameDecoder(four_letter_words=False)
        self._frames: list[bytes] = []
        self.session_id = 0
        self.xid = 0

    async def send_frames(self, frames: list[bytes]) -> None:
        try:
            await self.stream.send_all(b"".join(frames))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ConnectionLost(str(exc)) from exc

    async def recv_payload(self) -> bytes:
        while not self._frames:
            try:
                data = await self.stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise ConnectionLost(str(exc)) from exc
            if not data:
                raise ConnectionLost("server closed the connection")
            self._dec.feed(data)
            for f in self._dec.frames():
                assert not isinstance(f, FourLetterWord)
                self._frames.append(bytes(f))
        return self._frames.pop(0)

    def next_xid(self) -> int:
        self.xid += 1
        return self.xid

    async def call(self, op: int, req: Any = None) -> tuple[p.ReplyHeader, Any]:
        """One request, one reply (no pipelining); the body is decoded when err == 0."""
        xid = self.next_xid()
        await self.send_frames([p.encode_request(xid, op, req)])
        payload = await self.recv_payload()
        hdr = p.decode_reply_header(payload)
        assert hdr.xid == xid, (hdr, xid)
        body = p.decode_response(op, payload, offset=16) if hdr.err == 0 else None
        return hdr, body

    async def aclose(self) -> None:
        await self.stream.aclose()


async def open_raw_session(port: int, timeout_ms: int = 10000) -> RawSession:
    """Connect to 127.0.0.1:port and create a new session."""
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    except OSError as exc:
        raise ConnectionLost(str(exc)) from exc
    s = RawSession(stream)
    try:
        await s.send_frames([p.encode_connect_request(0, 0, timeout_ms, 0, b"\0" * 16, False)])
        rsp = p.decode_connect_response(await s.recv_payload())
    except BaseException:
        await stream.aclose()
        raise
    if rsp.session_id == 0:
        await stream.aclose()
        raise ConnectionLost("session refused")
    s.session_id = rsp.session_id
    return s
