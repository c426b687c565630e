"""A small blocking ZooKeeper client for the harness's set-up and probes.

Not the load generator (see :mod:`.loadgen`): this one sends one request at a time
and is used to create parent znodes, check that a server answers a getData after a
restart, and play the two roles of the session-expiry probe.  It also speaks the
four-letter words (``srvr``) that tell whether a server is up.

Every call is bounded by a socket timeout; nothing here waits forever.
"""

from __future__ import annotations

import socket
import struct

from ..protocol.consts import CreateFlag, Err, OpCode
from . import _codec as codec

__all__ = ["ZkError", "SyncClient", "four_letter_word", "parse_srvr"]

_LEN = struct.Struct(">i")


class ZkError(Exception):
    """A request failed with a ZooKeeper error code, or the connection broke."""

    def __init__(self, code: int, what: str) -> None:
        self.code = code
        try:
            name = Err(code).name
        except ValueError:
            name = str(code)
        super().__init__(f"{what}: {name}")


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            raise ConnectionError("server closed the connection")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _recv_frame(sock: socket.socket) -> bytes:
    (n,) = _LEN.unpack(_recv_exact(sock, 4))
    if n < 0 or n > 16 * 1024 * 1024:
        raise ConnectionError(f"bad frame length {n}")
    return _recv_exact(sock, n)


class SyncClient:
    """One ZooKeeper session over one blocking socket, one request at a time.

    Args:
        host, port: the server.
        timeout_ms: the session timeout to ask for.
        io_timeout: socket timeout in seconds for every send/receive.
    """

    def __init__(
        self, host: str, port: int, timeout_ms: int = 30000, io_timeout: float = 10.0
    ) -> None:
        self.sock = socket.create_connection((host, port), timeout=io_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(codec.encode_connect_request(timeout_ms))
        self.timeout_ms, self.session_id, self.passwd = codec.decode_connect_response(
            _recv_frame(self.sock)
        )
        if self.timeout_ms <= 0:
            self.sock.close()
            raise ZkError(Err.SESSIONEXPIRED, "connect refused")
        self._xid = 0

    def call(self, op: int, record: object = None) -> tuple[bytes, int]:
        """Send one request, return ``(reply payload, body offset)``; raise on error."""
        self._xid += 1
        xid = self._xid
        self.sock.sendall(codec.encode_request(xid, op, record))
        while True:
            payload = _recv_frame(self.sock)
            rxid, _zxid, err = codec.decode_reply_header(payload)
            if rxid == xid:
                break
            if rxid >= 0:  # watch events (-1) and pings (-2) are not ours to match
                raise ConnectionError(f"xid out of order: sent {xid}, got {rxid}")
        if err != 0:
            raise ZkError(err, f"{OpCode(op).name}")
        return payload, codec.REPLY_HEADER.size

    def create(self, path: str, data: bytes = b"", flags: int = CreateFlag.PERSISTENT) -> None:
        self.call(OpCode.create, codec.create_request(path, data, flags))

    def ensure_path(self, path: str) -> None:
        """Create ``path`` and its ancestors; existing nodes are fine."""
        parts = [p for p in path.split("/") if p]
        for i in range(1, len(parts) + 1):
            try:
                self.create("/" + "/".join(parts[:i]))
            except ZkError as exc:
                if exc.code != Err.NODEEXISTS:
                    raise

    def get_data(self, path: str) -> bytes:
        payload, off = self.call(OpCode.getData, codec.get_data_request(path))
        return codec.decode_get_data(payload, off)[0]

    def set_data(self, path: str, data: bytes) -> None:
        self.call(OpCode.setData, codec.set_data_request(path, data))

    def delete(self, path: str) -> None:
        self.call(OpCode.delete, codec.delete_request(path))

    def exists(self, path: str) -> bool:
        try:
            self.call(OpCode.exists, codec.exists_request(path))
        except ZkError as exc:
            if exc.code == Err.NONODE:
                return False
            raise
        return True

    def ping(self) -> None:
        self.sock.sendall(codec.ping_frame())
        for _ in range(100):
            rxid = codec.decode_reply_header(_recv_frame(self.sock))[0]
            if rxid == codec.PING_XID:
                return
        raise ConnectionError("no ping reply")

    def close(self) -> None:
        """Close the session properly, then the socket."""
        try:
            self._xid += 1
            self.sock.sendall(codec.close_session_frame(self._xid))
            _recv_frame(self.sock)
        except OSError:
            pass
        finally:
            self.sock.close()

    def abandon(self) -> None:
        """Vanish without closeSession: the server must expire the session."""
        self.sock.close()


def four_letter_word(host: str, port: int, word: str = "srvr", timeout: float = 2.0) -> str:
    """Send a 4lw and return the server's whole answer (it closes the socket after)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(word.encode("ascii"))
        chunks = []
        for _ in range(10000):
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "replace")


def parse_srvr(text: str) -> dict[str, str]:
    """``srvr`` output -> ``{"Zookeeper version": ..., "Mode": ..., "Node count": ...}``."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out
