"""The server's per-request shortcuts keep ZooKeeper's ordering guarantees.

The read fast path (connection.py) answers a read in the connection actor
when nothing of its session is in the pipeline.  Checked here, in process,
on real sockets:

* an idle session's reads never enter the pipeline, and answer correctly;
* a read pipelined behind a write of the same session sees that write
  (per-session FIFO: the first request that goes to the pipeline switches
  the fast path off);
* a watch event is on the wire before the reply of any later read;
* a session moved to a new connection does not answer reads while its old
  connection still has requests in the pipeline;
* a closed/expired session's fast read gets the same error the pipeline gives.
"""

from __future__ import annotations

import struct
from pathlib import Path

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_quorum.protocol.consts import Err
from trio_quorum.protocol.records import GetDataRequest, SetDataRequest, encode_request
from trio_quorum.server.connection import ClientConnection
from trio_quorum.server.request import Request
from trio_quorum.server.stages import _account
from trio_quorum.server.stats import ConnStats, ServerStats

from .test_supervision import BOUND, running


def _hdr(frame: bytes) -> tuple[int, int, int]:
    xid, zxid, err = struct.unpack(">iqi", frame[:16])
    return int(xid), int(zxid), int(err)


def _get_data_value(frame: bytes) -> bytes:
    (n,) = struct.unpack(">i", frame[16:20])
    return frame[20:20 + n]


async def test_idle_session_reads_skip_the_pipeline(tmp_path: Path) -> None:
    async with running(tmp_path) as r:
        s = await r.session()
        with trio.fail_after(BOUND):
            assert await s.create("/x") == 0
            submitted: list[int] = []
            real = r.server.chain.submit

            def counting(batch: list) -> None:  # type: ignore[type-arg]
                submitted.append(len(batch))
                real(batch)

            r.server.chain.submit = counting  # type: ignore[method-assign]
            for _ in range(3):
                assert await s.get("/x") == 0
            assert await s.get("/missing") == Err.NONODE
            assert submitted == []
            assert await s.call(5, SetDataRequest("/x", b"w", -1)) == 0
            assert submitted == [1]


async def test_read_pipelined_behind_own_write_sees_it(tmp_path: Path) -> None:
    async with running(tmp_path) as r:
        s = await r.session()
        with trio.fail_after(BOUND):
            assert await s.create("/x") == 0
            for i in range(20):
                value = f"v{i}".encode()
                # One send: the write and the read arrive in the same socket read.
                await s.stream.send_all(
                    encode_request(100 + 2 * i, 5, SetDataRequest("/x", value, -1))
                    + encode_request(101 + 2 * i, 4, GetDataRequest("/x", False))
                )
                set_reply = await s.frame()
                get_reply = await s.frame()
                assert _hdr(set_reply)[0] == 100 + 2 * i and _hdr(set_reply)[2] == 0
                xid, zxid, err = _hdr(get_reply)
                assert (xid, err) == (101 + 2 * i, 0)
                assert zxid == _hdr(set_reply)[1]
                assert _get_data_value(get_reply) == value
            # And in separate sends, without waiting for the write's reply.
            await s.stream.send_all(encode_request(500, 5, SetDataRequest("/x", b"last", -1)))
            await s.stream.send_all(encode_request(501, 4, GetDataRequest("/x", False)))
            assert _hdr(await s.frame())[0] == 500
            get_reply = await s.frame()
            assert _hdr(get_reply)[0] == 501
            assert _get_data_value(get_reply) == b"last"


async def test_watch_event_precedes_later_read_reply(tmp_path: Path) -> None:
    async with running(tmp_path) as r:
        a = await r.session()
        b = await r.session()
        with trio.fail_after(BOUND):
            assert await a.create("/w") == 0
            for i in range(10):
                assert await a.call(4, GetDataRequest("/w", True)) == 0
                assert await b.call(5, SetDataRequest("/w", f"{i}".encode(), -1)) == 0
                # b's reply is out, so the event is queued on a's connection;
                # a's next read must come after it on the wire.
                a.xid += 1
                await a.stream.send_all(encode_request(a.xid, 4, GetDataRequest("/w", False)))
                first = await a.frame()
                assert _hdr(first)[0] == -1, "the watch event must come first"
                reply = await a.frame()
                assert _hdr(reply)[0] == a.xid
                assert _get_data_value(reply) == f"{i}".encode()


async def test_moved_session_waits_for_old_connection() -> None:
    old = object.__new__(ClientConnection)
    new = object.__new__(ClientConnection)
    old.outstanding = 2
    old._predecessor = None
    new._predecessor = old
    assert not new._predecessors_drained()
    old.outstanding = 0
    assert new._predecessors_drained()
    assert new._predecessor is None  # the chain is dropped once drained


async def test_fast_read_of_a_closing_session_answers_the_pipeline_error(tmp_path: Path) -> None:
    async with running(tmp_path) as r:
        s = await r.session()
        with trio.fail_after(BOUND):
            assert await s.create("/x") == 0
            # What the expirer does first: mark the session closing.
            r.server.tracker._sessions[s.session_id].closing = True  # noqa: SLF001
            assert await s.get("/x") == Err.SESSIONEXPIRED


async def test_session_check_uses_the_owner(tmp_path: Path) -> None:
    async with running(tmp_path) as r:
        s = await r.session()
        with trio.fail_after(BOUND):
            assert await s.create("/x") == 0
            r.server.tracker.set_owner(s.session_id, object())  # served elsewhere now
            assert await s.get("/x") == Err.SESSIONMOVED


async def test_read_behind_unknown_opcode_keeps_order(tmp_path: Path) -> None:
    # An UNIMPLEMENTED answer goes through the pipeline, so a read after it in
    # the same socket read must not overtake it.
    async with running(tmp_path) as r:
        s = await r.session()
        with trio.fail_after(BOUND):
            assert await s.create("/x") == 0
            await s.stream.send_all(
                struct.pack(">iii", 8, 700, 999) + encode_request(701, 4, GetDataRequest("/x", False))
            )
            first, second = await s.frame(), await s.frame()
            assert _hdr(first)[0] == 700 and _hdr(first)[2] == Err.UNIMPLEMENTED
            assert _hdr(second)[0] == 701 and _hdr(second)[2] == 0


@settings(deadline=None, max_examples=200)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3), st.sampled_from([-2, 1, 2, 3]),
                          st.sampled_from([4, 5, 11, 1])), max_size=30))
def test_batch_accounting_equals_per_request(reqs: list[tuple[int, int, int, int]]) -> None:
    # pipeline._account groups runs; the figures must be those of one update per request.
    conns_a = [object.__new__(ClientConnection) for _ in range(3)]
    conns_b = [object.__new__(ClientConnection) for _ in range(3)]
    for c in conns_a + conns_b:
        c.outstanding = 100
        c.stats = ConnStats()
    sa, sb = ServerStats(), ServerStats()
    now = 10
    batch = []
    for ci, start, xid, typ in reqs:
        req_b = Request(conns_b[ci] if ci < 2 else None, 1, xid, typ, None, start)
        conn_b = req_b.conn
        if conn_b is not None:
            conn_b.outstanding -= 1
            sb.update_latency(now - start)
            conn_b.stats.update_for_response(xid, 7, typ, start, now)
        batch.append(Request(conns_a[ci] if ci < 2 else None, 1, xid, typ, None, start))
    _account(batch, now, 7, sa)
    fields = ("min_latency", "max_latency", "total_latency", "count")
    assert [getattr(sa, f) for f in fields] == [getattr(sb, f) for f in fields]
    for ca, cb in zip(conns_a, conns_b, strict=True):
        assert ca.outstanding == cb.outstanding
        assert {f: getattr(ca.stats, f) for f in ConnStats.__slots__} == {
            f: getattr(cb.stats, f) for f in ConnStats.__slots__
        }
