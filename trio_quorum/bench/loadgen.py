"""The load generator: worker processes, raw sockets, many requests in flight.

Design (the generator must never be the bottleneck):

* ``workers`` processes (multiprocessing); each owns some of the ``sessions``, one
  blocking TCP socket per session, multiplexed with ``selectors`` for reading.
* Each session keeps ``inflight`` requests outstanding: it sends that many at once,
  and for every batch of replies parsed out of one ``recv`` it sends the same number
  of new requests in one ``sendall``.  ZooKeeper answers in request order per
  connection, so the send timestamps of one session are a FIFO; a reply's latency is
  its receive time minus the head of that FIFO (``perf_counter_ns``).
* Request frames are pre-encoded with the codec (:mod:`._codec`) per key; the hot
  loop only packs the 12-byte ``length | xid | type`` header in front.  Replies are
  split into frames and only the 16-byte ReplyHeader is decoded: the body is not
  needed to count a success and decoding it would make Python the bottleneck.
* Timed mode: a warm-up, then a window ``[start, end)``.  Only replies *received* in
  the window count towards throughput and latency; after ``end`` no new requests
  are sent and the outstanding ones are drained (bounded) before closeSession.
* Count mode (``total > 0``): send exactly ``total`` requests (used to create N
  znodes for the memory and restart figures); every reply counts.
* Every worker reports its own CPU time over the window (``getrusage``), so a reader
  can see whether the clients were saturated.
* Sessions idle for a third of their timeout send a ping (xid -2), so long runs do
  not expire them; ping replies are skipped by xid.

All times are ``time.perf_counter_ns`` (CLOCK_MONOTONIC on Linux), which is shared
by the processes of one machine, so the coordinator can hand out absolute window times.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import resource
import selectors
import socket
import struct
import time
import traceback
from array import array
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..protocol.consts import OpCode
from . import _codec as codec
from .client import SyncClient, ZkError

__all__ = ["LoadSpec", "LoadResult", "run_load", "populate_keys", "percentiles"]

_LEN = struct.Struct(">i")
_REQ = struct.Struct(">iii")
_HDR = codec.REPLY_HEADER

READ, WRITE = 0, 1


@dataclass(frozen=True)
class LoadSpec:
    """What to send, how hard, and for how long.

    Attributes:
        op: ``create``, ``set``, ``get`` or ``mix`` (``read_percent`` getData, the rest setData).
        sessions / inflight / workers: concurrency shape.
        warmup / duration: seconds before and of the measured window (timed mode).
        total: if > 0, count mode: send exactly this many requests, no window.
        key_prefix / keys: the pre-populated znodes that get/set/mix address.
        create_prefix: parent of the znodes ``create`` makes.
    """

    op: str
    sessions: int
    inflight: int
    workers: int
    warmup: float = 1.0
    duration: float = 5.0
    total: int = 0
    value_size: int = 100
    key_prefix: str = "/bench/k"
    keys: int = 1024
    create_prefix: str = "/bench/c"
    read_percent: int = 90
    session_timeout_ms: int = 30000
    drain_timeout: float = 20.0
    #: Makes created names unique across runs against one server (set by run_load if empty).
    run_tag: str = ""


@dataclass
class LoadResult:
    """Aggregated outcome of one :func:`run_load`."""

    spec: dict[str, Any]
    completed: int
    errors: int
    window_s: float
    throughput: float
    latency_ms: dict[str, dict[str, float]]
    workers: list[dict[str, Any]] = field(default_factory=list)
    server_cpu_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def percentiles(values: array[int] | list[int]) -> dict[str, float]:
    """Nearest-rank p50/p99/p99.9 (and mean, max) of nanosecond latencies, in ms."""
    if not values:
        return {"count": 0}
    s = sorted(values)
    n = len(s)

    def rank(q: float) -> float:
        return s[min(n - 1, max(0, math.ceil(q * n) - 1))] / 1e6

    return {
        "count": n,
        "mean": sum(s) / n / 1e6,
        "p50": rank(0.50),
        "p99": rank(0.99),
        "p99.9": rank(0.999),
        "max": s[-1] / 1e6,
    }


def populate_keys(host: str, port: int, prefix: str, count: int, value_size: int) -> None:
    """Create ``prefix/0 .. prefix/count-1`` with ``value_size``-byte values, pipelined."""
    c = SyncClient(host, port)
    try:
        c.ensure_path(prefix)
        value = b"v" * value_size
        for lo in range(0, count, 256):
            frames = []
            for i in range(lo, min(count, lo + 256)):
                c._xid += 1
                frames.append(
                    codec.encode_request(
                        c._xid, OpCode.create, codec.create_request(f"{prefix}/{i}", value)
                    )
                )
            c.sock.sendall(b"".join(frames))
            for _ in frames:
                payload = _recv_frame_blocking(c.sock)
                _xid, _zxid, err = codec.decode_reply_header(payload)
                if err not in (0, -110):  # NODEEXISTS is fine: keys are reused
                    raise ZkError(err, "populate")
    finally:
        c.close()


def _recv_frame_blocking(sock: socket.socket) -> bytes:
    from .client import _recv_frame

    return _recv_frame(sock)


# --------------------------------------------------------------------------- worker


class _Session:
    __slots__ = ("sock", "rbuf", "sent", "xid", "pending", "remaining", "seq", "last_send", "name")

    def __init__(self, sock: socket.socket, name: str, remaining: int) -> None:
        self.sock = sock
        self.rbuf = bytearray()
        self.sent: deque[int] = deque()
        self.xid = 0
        self.pending = 0
        self.remaining = remaining
        self.seq = 0
        self.last_send = 0
        self.name = name


def _connect(host: str, port: int, timeout_ms: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=10.0)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(codec.encode_connect_request(timeout_ms))
    from .client import _recv_frame

    negotiated, _sid, _pw = codec.decode_connect_response(_recv_frame(sock))
    if negotiated <= 0:
        raise ConnectionError("session refused by the server")
    return sock


class _Requests:
    """Builds request frames for one worker; the only per-request encoding work."""

    def __init__(self, spec: LoadSpec, worker: int) -> None:
        value = b"v" * spec.value_size
        self.op = spec.op
        self.get_bodies = [
            codec.request_body(OpCode.getData, codec.get_data_request(f"{spec.key_prefix}/{i}"))
            for i in range(spec.keys)
        ]
        self.set_bodies = [
            codec.request_body(
                OpCode.setData, codec.set_data_request(f"{spec.key_prefix}/{i}", value)
            )
            for i in range(spec.keys)
        ]
        self.create_tail = codec.create_body_tail(value)
        self.create_prefix = spec.create_prefix
        self.worker = worker
        # 100-slot pattern with exactly read_percent reads, writes spread evenly.
        writes = 100 - spec.read_percent
        self.mix = [WRITE if writes and (i * writes) % 100 < writes else READ for i in range(100)]

    def build(self, s: _Session, n: int, now: int, out: list[bytes]) -> None:
        """Append ``n`` request frames for session ``s`` to ``out``, record their send time."""
        op = self.op
        sent = s.sent
        xid = s.xid
        seq = s.seq
        pack = _REQ.pack
        if op == "get":
            bodies = self.get_bodies
            nk = len(bodies)
            stamp = now << 1 | READ
            for _ in range(n):
                xid += 1
                body = bodies[seq % nk]
                seq += 1
                out.append(pack(8 + len(body), xid, 4) + body)
                sent.append(stamp)
        elif op == "set":
            bodies = self.set_bodies
            nk = len(bodies)
            stamp = now << 1 | WRITE
            for _ in range(n):
                xid += 1
                body = bodies[seq % nk]
                seq += 1
                out.append(pack(8 + len(body), xid, 5) + body)
                sent.append(stamp)
        elif op == "create":
            tail = self.create_tail
            prefix = f"{self.create_prefix}/{s.name}-"
            stamp = now << 1 | WRITE
            for _ in range(n):
                xid += 1
                p = (prefix + str(seq)).encode()
                seq += 1
                body = _LEN.pack(len(p)) + p + tail
                out.append(pack(8 + len(body), xid, 1) + body)
                sent.append(stamp)
        elif op == "mix":
            gb, sb, mix = self.get_bodies, self.set_bodies, self.mix
            nk = len(gb)
            for _ in range(n):
                xid += 1
                k = seq % nk
                if mix[seq % 100] == READ:
                    body = gb[k]
                    out.append(pack(8 + len(body), xid, 4) + body)
                    sent.append(now << 1 | READ)
                else:
                    body = sb[k]
                    out.append(pack(8 + len(body), xid, 5) + body)
                    sent.append(now << 1 | WRITE)
                seq += 1
        else:
            raise ValueError(f"unknown op {op!r}")
        s.xid = xid
        s.seq = seq
        s.pending += n
        s.last_send = now


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _run_worker(
    idx: int,
    endpoints: list[tuple[str, int]],
    spec: LoadSpec,
    session_ids: list[int],
    ready: Any,
    go: Any,
    times: Any,
) -> dict[str, Any]:
    count_mode = spec.total > 0
    sessions = []
    for sid in session_ids:
        quota = 0
        if count_mode:
            quota = spec.total // spec.sessions + (1 if sid < spec.total % spec.sessions else 0)
        name = f"{spec.run_tag}w{idx}s{sid}"
        host, port = endpoints[sid % len(endpoints)]  # session i on peer i mod n
        sessions.append(_Session(_connect(host, port, spec.session_timeout_ms), name, quota))
    reqs = _Requests(spec, idx)
    ready.put(idx)
    if not go.wait(timeout=120):
        raise TimeoutError("coordinator never said go")
    t_go, start_ns, end_ns = int(times[0]), int(times[1]), int(times[2])
    ping_ns = spec.session_timeout_ms * 1_000_000 // 3
    lat = {READ: array("q"), WRITE: array("q")}
    errors = 0
    first_error = None
    sel = selectors.DefaultSelector()
    for s in sessions:
        sel.register(s.sock, selectors.EVENT_READ, s)

    # Wait for the common start so all workers load the server together.
    for _ in range(10000):
        delay = (t_go - time.perf_counter_ns()) / 1e9
        if delay <= 0:
            break
        time.sleep(min(delay, 0.05))

    now = time.perf_counter_ns()
    out: list[bytes] = []
    for s in sessions:
        n = min(spec.inflight, s.remaining) if count_mode else spec.inflight
        if n:
            out.clear()
            reqs.build(s, n, now, out)
            s.sock.sendall(b"".join(out))
            if count_mode:
                s.remaining -= n
    in_window = False
    cpu0 = _cpu() if count_mode else 0.0
    wall0 = now
    cpu1 = None
    wall1 = None
    stopping = False
    drain_deadline = end_ns + int(spec.drain_timeout * 1e9) if not count_mode else None
    next_ping_check = now + 1_000_000_000
    hdr = _HDR.unpack_from
    lenu = _LEN.unpack_from
    perf = time.perf_counter_ns
    while True:
        events = sel.select(0.2)
        now = perf()
        if not count_mode:
            if not in_window and now >= start_ns:
                in_window = True
                cpu0 = _cpu()
                wall0 = now
            if not stopping and now >= end_ns:
                stopping = True
                cpu1 = _cpu()
                wall1 = now
        for key, _ in events:
            s = key.data
            data = s.sock.recv(262144)
            now = perf()
            if not data:
                raise ConnectionError(f"server closed session {s.name}")
            buf = s.rbuf
            buf += data
            blen = len(buf)
            off = 0
            n = 0
            sent = s.sent
            while blen - off >= 4:
                (ln,) = lenu(buf, off)
                if blen - off - 4 < ln:
                    break
                xid, _zxid, err = hdr(buf, off + 4)
                off += 4 + ln
                if xid < 0:  # ping reply or watch event: not in the FIFO
                    continue
                v = sent.popleft()
                n += 1
                if count_mode or start_ns <= now < end_ns:
                    lat[v & 1].append(now - (v >> 1))
                    if err:
                        errors += 1
                        if first_error is None:
                            first_error = f"error {err} on xid {xid}"
            if off:
                del buf[:off]
            s.pending -= n
            if n and not stopping:
                if count_mode:
                    n = min(n, s.remaining)
                    s.remaining -= n
                if n:
                    out.clear()
                    reqs.build(s, n, now, out)
                    s.sock.sendall(b"".join(out))
        if now >= next_ping_check:
            next_ping_check = now + 1_000_000_000
            for s in sessions:
                if now - s.last_send > ping_ns:
                    s.sock.sendall(codec.ping_frame())
                    s.last_send = now
        if count_mode:
            if all(s.pending == 0 and s.remaining == 0 for s in sessions):
                cpu1 = _cpu()
                wall1 = now
                break
        elif stopping and (all(s.pending == 0 for s in sessions) or now > drain_deadline):  # type: ignore[operator]
            break
    unfinished = sum(s.pending for s in sessions)
    for s in sessions:
        try:
            s.xid += 1
            s.sock.sendall(codec.close_session_frame(s.xid))
        except OSError:
            pass
    for s in sessions:  # wait (bounded) for the close to be processed, then drop the socket
        try:
            s.sock.settimeout(2.0)
            for _ in range(1000):
                if not s.sock.recv(262144):
                    break
        except OSError:
            pass
        s.sock.close()
    assert cpu1 is not None and wall1 is not None
    return {
        "worker": idx,
        "pid": os.getpid(),
        "sessions": len(sessions),
        "lat_read": lat[READ],
        "lat_write": lat[WRITE],
        "errors": errors,
        "first_error": first_error,
        "unfinished": unfinished,
        "cpu_s": cpu1 - cpu0,
        "wall_s": (wall1 - wall0) / 1e9,
        "t_first_ns": wall0,
        "t_last_ns": wall1,
    }


def _worker_main(
    idx: int,
    endpoints: list[tuple[str, int]],
    spec: LoadSpec,
    session_ids: list[int],
    ready: Any,
    go: Any,
    times: Any,
    results: Any,
) -> None:
    try:
        res = _run_worker(idx, endpoints, spec, session_ids, ready, go, times)
    except BaseException:
        res = {"worker": idx, "crash": traceback.format_exc()}
        ready.put(idx)  # never leave the coordinator waiting for a ready that will not come
    results.put(res)


# ---------------------------------------------------------------------- coordinator


def run_load(
    host: str,
    port: int,
    spec: LoadSpec,
    server_cpu: Any = None,
    endpoints: list[tuple[str, int]] | None = None,
) -> LoadResult:
    """Run one load shape against a server and aggregate the workers' reports.

    Args:
        endpoints: for an ensemble, the peers' client addresses; session ``i`` connects
            to ``endpoints[i % len(endpoints)]`` (default: only ``(host, port)``).
        server_cpu: optional callable returning the server's CPU seconds so far; sampled
            at the window's edges so the report shows how busy the server was.
    Raises:
        RuntimeError: a worker crashed (its traceback is in the message).
    """
    nworkers = max(1, min(spec.workers, spec.sessions))
    if not spec.run_tag:
        spec = replace(spec, run_tag=f"r{os.getpid() % 10000}-{time.time_ns() % 10**9}-")
    eps = list(endpoints) if endpoints else [(host, port)]
    ctx = mp.get_context("fork")
    ready, results = ctx.Queue(), ctx.Queue()
    go = ctx.Event()
    times = ctx.Array("d", 3, lock=False)
    procs = []
    for w in range(nworkers):
        sids = list(range(w, spec.sessions, nworkers))
        p = ctx.Process(
            target=_worker_main,
            args=(w, eps, spec, sids, ready, go, times, results),
            name=f"bench-worker-{w}",
            daemon=True,
        )
        p.start()
        procs.append(p)
    try:
        for _ in range(nworkers):
            ready.get(timeout=60)
        t_go = time.perf_counter_ns() + 50_000_000
        start = t_go + int(spec.warmup * 1e9)
        end = start + int(spec.duration * 1e9)
        times[0], times[1], times[2] = float(t_go), float(start), float(end)
        go.set()
        cpu_a = cpu_b = None
        if server_cpu is not None and spec.total == 0:
            _sleep_until(start)
            cpu_a = server_cpu()
            _sleep_until(end)
            cpu_b = server_cpu()
        elif server_cpu is not None:
            cpu_a = server_cpu()
        bound = spec.warmup + spec.duration + spec.drain_timeout + 120 if spec.total == 0 else 3600
        reports = [results.get(timeout=bound) for _ in range(nworkers)]
        if server_cpu is not None and spec.total > 0:
            cpu_b = server_cpu()
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
    crashes = [r["crash"] for r in reports if "crash" in r]
    if crashes:
        raise RuntimeError("load worker crashed:\n" + crashes[0])
    reports.sort(key=lambda r: r["worker"])
    reads = array("q")
    writes = array("q")
    for r in reports:
        reads.extend(r.pop("lat_read"))
        writes.extend(r.pop("lat_write"))
    completed = len(reads) + len(writes)
    if spec.total:
        window = (
            max(r["t_last_ns"] for r in reports) - min(r["t_first_ns"] for r in reports)
        ) / 1e9
    else:
        window = spec.duration
    latency = {"all": percentiles(reads + writes)}
    if spec.op == "mix":
        latency["read"] = percentiles(reads)
        latency["write"] = percentiles(writes)
    for r in reports:
        r["cpu_util"] = r["cpu_s"] / r["wall_s"] if r["wall_s"] > 0 else None
        del r["t_first_ns"], r["t_last_ns"]
    return LoadResult(
        spec=asdict(spec),
        completed=completed,
        errors=sum(r["errors"] for r in reports),
        window_s=window,
        throughput=completed / window if window > 0 else 0.0,
        latency_ms=latency,
        workers=reports,
        server_cpu_s=(cpu_b - cpu_a) if cpu_a is not None and cpu_b is not None else None,
    )


def _sleep_until(t_ns: int) -> None:
    for _ in range(100000):
        delay = (t_ns - time.perf_counter_ns()) / 1e9
        if delay <= 0:
            return
        time.sleep(min(delay, 0.1))
