"""Helpers of the client tests: ending a session from outside, walking the task tree."""

from __future__ import annotations

import trio

from trio_quorum.client import Client
from trio_quorum.client.hosts import parse_connect_string
from trio_quorum.protocol import records as p
from trio_quorum.protocol.consts import OpCode
from trio_quorum.protocol.framing import FrameDecoder

BOUND = 20.0


async def _frame(stream: trio.SocketStream, dec: FrameDecoder) -> bytes:
    while True:
        frames = dec.frames()
        if frames:
            return bytes(frames[0])  # type: ignore[arg-type]
        data = await stream.receive_some(65536)
        if not data:
            raise EOFError("server closed the connection")
        dec.feed(data)


async def expire_session(zk: Client) -> None:
    """Close ``zk``'s session from another connection (what kazoo's tests do to expire one).

    The server moves the session to the new connection (closing ``zk``'s), then
    closes it; ``zk``'s reconnect is answered "expired".
    """
    host, port = zk.server or parse_connect_string("x").hosts[0]
    with trio.fail_after(BOUND):
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            dec = FrameDecoder(four_letter_words=False)
            await stream.send_all(p.encode_connect_request(0, zk.last_zxid, 10000, zk.session_id, zk._core.passwd))
            rsp = p.decode_connect_response(await _frame(stream, dec))
            assert rsp.session_id == zk.session_id, "the session was not resumed"
            await stream.send_all(p.encode_request(1, OpCode.closeSession))
            hdr = p.decode_reply_header(await _frame(stream, dec))
            assert hdr.xid == 1 and hdr.err == 0


def task_tree_size() -> int:
    """How many tasks run in this Trio run (all of them, from the root)."""
    def walk(task: trio.lowlevel.Task) -> int:
        return 1 + sum(walk(t) for n in task.child_nurseries for t in n.child_tasks)

    return walk(trio.lowlevel.current_root_task())  # type: ignore[arg-type]
