"""In-process micro-benchmark of the standalone write path's sans-IO work.

Runs, per request, exactly the core calls the pipeline makes for a write
(``trio_quorum/server/pipeline.py`` and ``persistence/filestore.py``), without
trio, sockets or files:

1. ``proto.decode_request(op, payload, max_len=, offset=8)``     (connection;
   ``payload`` a memoryview slice of the batch, as ``FrameDecoder`` yields)
2. ``Prep.prepare(session_id, xid, op, record, auth_ids, wall, owner=conn)``  (prep stage)
3. ``encode_txn(hdr, txn)`` + ``entry_head(payload)`` into a bytearray  (``FileStore.append``
   before 7b5bda9; since then ``txnlog.append_entry``)
4. ``Final.write(hdr, txn)``, then the checks ``Pipeline._apply`` makes  (final stage)
5. ``proto.encode_reply(xid, zxid, err, body)`` (4+5: ``Final.write_frame`` since 7b5bda9)

Both call sequences are measured when the checkout has the newer calls.

with ``Prep.released`` once per batch, as the final stage does, and the
server's GC thresholds (``server/gcpolicy.py``).  The setup
mirrors ``Pipeline.__init__``/``StandaloneServer``: a ``DataTree`` with a
``watch_acl_filter``, a ``Prep`` over a real ``SessionTracker`` holding one
session, and a ``Final``.  Loads follow the benchmark's generator
(``trio_quorum/bench/loadgen.py``): setData on 1024 keys ``/bench/k/<i>`` with
100-byte values, version -1; create (opcode 1, OPEN_ACL_UNSAFE, persistent) of
unique names under ``/bench/c``.

Usage::

    .venv/bin/python bench/hotpath.py                # us/op, best of --reps
    .venv/bin/python bench/hotpath.py --cpu          # CPU time (steadier on a busy machine)
    .venv/bin/python bench/hotpath.py --steps        # also us/op per stage
    .venv/bin/python bench/hotpath.py --profile set  # cProfile of the setData loop
    .venv/bin/python bench/hotpath.py --codecs       # ns/call of each codec call alone

``--codecs`` times the protocol codec calls of the write (and getData) path
one by one, each over a batch of distinct inputs shaped like the load's
(memoryview payloads for the decoders, ``stat_bytes()``-style packed stats
for the replies): ``decode_request`` of setData/create/getData,
``encode_reply`` of their responses, ``encode_txn``/``decode_txn`` of the
setData/create txns, and ``encode_request`` of the three requests.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import struct
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trio_quorum.core.acl import check as acl_check  # noqa: E402
from trio_quorum.core.auth import AuthRegistry  # noqa: E402
from trio_quorum.core.datatree import DataTree  # noqa: E402
from trio_quorum.core.final import Final  # noqa: E402
from trio_quorum.persistence.txnlog import entry_head  # noqa: E402
from trio_quorum.protocol import records as proto  # noqa: E402
from trio_quorum.protocol.consts import OpCode, Perm  # noqa: E402
from trio_quorum.protocol.data import OPEN_ACL_UNSAFE, Id  # noqa: E402
from trio_quorum.protocol.jute import DEFAULT_MAX_BUFFER  # noqa: E402

try:  # absent before the write-path work (then only the older calls are measured)
    from trio_quorum.persistence.txnlog import append_entry
except ImportError:  # pragma: no cover - running against an older checkout
    append_entry = None  # type: ignore[assignment]
from trio_quorum.core.prep import Prep  # noqa: E402
from trio_quorum.core.sessions import SessionTracker  # noqa: E402
from trio_quorum.protocol.txn import encode_txn  # noqa: E402
from trio_quorum.server.gcpolicy import THRESHOLDS  # noqa: E402

_SET = int(OpCode.setData)
_CREATE = int(OpCode.create)
_READ = int(Perm.READ)
_HDR = struct.Struct(">ii")
KEYS = 1024
VALUE = b"v" * 100
BATCH = 256
STAGES = ("decode", "prepare", "log", "write", "reply", "released")


def _no_clock() -> float:
    return 0.0


class _Conn:
    """Stands in for a ClientConnection: the session owner and the watcher key."""

    closed = False
    auth_ids: list[Id] = []


def _watcher_may_read(watcher: object, acl: Any) -> bool:
    return acl_check(acl, _READ, getattr(watcher, "auth_ids", ()))


class Setup:
    def __init__(self) -> None:
        self.tree = DataTree()
        self.auth = AuthRegistry(None)
        self.tracker = SessionTracker(0, 1_000_000, tick_time=2000)
        self.tracker.restore({}, 0)
        self.prep = Prep(self.tree, self.auth, self.tracker, extended_types=False)
        self.final = Final(self.tree, who_am_i=self.auth.who_am_i)
        self.tree.watch_acl_filter = _watcher_may_read
        self.conn = _Conn()
        self.auth_ids: list[Id] = []
        self.sid = self.tracker.create_session(30000, 0)
        self.xid = 0
        #: per-stage totals (seconds) when measuring stages (--steps)
        self.stage_times: dict[str, float] | None = None
        self.stage_clock: Any = _no_clock
        self.log = bytearray()
        self.wall = 1_700_000_000_000
        # The benchmark's znodes, created through the same path (not timed).
        self.run([self.frame(_CREATE, self.create_body("/bench"))])
        self.run([self.frame(_CREATE, self.create_body("/bench/k"))])
        self.run([self.frame(_CREATE, self.create_body("/bench/c"))])
        self.run([self.frame(_CREATE, self.create_body(f"/bench/k/{i}", VALUE)) for i in range(KEYS)])

    def frame(self, op: int, body: bytes) -> tuple[int, bytes]:
        self.xid += 1
        return op, _HDR.pack(self.xid, op) + body

    @staticmethod
    def create_body(path: str, data: bytes = b"") -> bytes:
        return proto.encode_request(0, _CREATE, proto.CreateRequest(path, data, OPEN_ACL_UNSAFE, 0))[12:]

    @staticmethod
    def set_body(path: str, data: bytes) -> bytes:
        return proto.encode_request(0, _SET, proto.SetDataRequest(path, data, -1))[12:]

    def run(self, frames: list[tuple[int, bytes]], stubs: bool = False) -> list[bytes]:
        """Steps 1-5 for every frame; returns the reply frames."""
        return self.run_batches(self.batches(frames), stubs)

    @staticmethod
    def batches(frames: list[tuple[int, bytes]]) -> list[list[tuple[int, int, memoryview]]]:
        """What the connection hands on (not timed): per socket read of BATCH
        frames, ``(xid, op, payload)`` with ``payload`` a memoryview slice of
        the read, as ``framing.FrameDecoder`` yields it."""
        out = []
        for start in range(0, len(frames), BATCH):
            chunk = frames[start : start + BATCH]
            read = memoryview(b"".join(p for _op, p in chunk))
            batch = []
            pos = 0
            for _op, p in chunk:
                payload = read[pos : pos + len(p)]
                pos += len(p)
                xid, op = _HDR.unpack_from(payload)
                batch.append((xid, op, payload))
            out.append(batch)
        return out

    def run_batches(self, batches: list[list[tuple[int, int, memoryview]]], stubs: bool = False) -> list[bytes]:
        """Steps 1-5, one stage at a time per batch as the pipeline runs them.

        ``stubs``: the same loops around constant-returning stand-ins, to
        measure the loop's own cost (the figure to subtract for the cores).
        """
        decode_request: Any = proto.decode_request
        encode_reply: Any = proto.encode_reply
        prepare: Any = self.prep.prepare
        released: Any = self.prep.released
        write: Any = self.final.write
        enc_txn: Any = encode_txn
        head: Any = entry_head
        if stubs:
            op0, p0 = self.frame(_SET, self.set_body("/bench/k/0", VALUE))
            rec0 = proto.decode_request(op0, p0, max_len=DEFAULT_MAX_BUFFER, offset=8)
            r0 = self.prep.prepare(self.sid, 1, op0, rec0, self.auth_ids, self.wall, owner=self.conn)
            assert r0 is not None
            pay0 = encode_txn(*r0)
            head0 = entry_head(pay0)
            oc0 = self.final.write(*r0)
            reply0 = proto.encode_reply(1, oc0.zxid, oc0.err, oc0.body)
            self.prep.released(self.tree.last_processed_zxid)

            def decode_request(op: int, payload: Any, *, max_len: int, offset: int) -> Any:
                return rec0

            def prepare(*a: Any, owner: Any) -> Any:
                return r0

            def enc_txn(hdr: Any, txn: Any) -> bytes:
                return pay0

            def head(payload: bytes) -> bytes:
                return head0

            def write(hdr: Any, txn: Any) -> Any:
                return oc0

            def encode_reply(xid: int, zxid: int, err: int, body: Any) -> bytes:
                return reply0

            def released(zxid: int) -> int:
                return 0

        tree = self.tree
        sid = self.sid
        auth_ids = self.auth_ids
        conn = self.conn
        wall = self.wall
        log = self.log
        max_len = DEFAULT_MAX_BUFFER
        out: list[bytes] = []
        clock = self.stage_clock
        stages = self.stage_times
        for batch in batches:
            t0 = clock()
            reqs = []
            for xid, op, payload in batch:
                reqs.append((xid, op, decode_request(op, payload, max_len=max_len, offset=8)))  # 1
            t1 = clock()
            txns = []
            for xid, op, rec in reqs:
                r = prepare(sid, xid, op, rec, auth_ids, wall, owner=conn)  # 2
                txns.append((xid, r[0], r[1]))
            t2 = clock()
            for _xid, hdr, txn in txns:  # 3: FileStore.append
                payload = enc_txn(hdr, txn)
                log += head(payload)
                log += payload
                log += b"B"
            t3 = clock()
            ocs = []
            for xid, hdr, txn in txns:  # 4: Pipeline._apply
                oc = write(hdr, txn)
                if oc.events:
                    raise AssertionError("no watches in this benchmark")
                ocs.append((xid, oc))
            t4 = clock()
            for xid, oc in ocs:  # 5
                out.append(encode_reply(xid, oc.zxid, oc.err, oc.body if not oc.err else None))
            t5 = clock()
            released(tree.last_processed_zxid)
            t6 = clock()
            del log[:]
            if stages is not None:
                for name, dt in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5), strict=True):
                    stages[name] += dt
        return out

    def run_batches_new(self, batches: list[list[tuple[int, int, memoryview]]]) -> list[bytes]:
        """As :meth:`run_batches` with the calls the server makes since 7b5bda9:
        ``txnlog.append_entry`` for step 3 (FileStore.append) and
        ``Final.write_frame`` for steps 4-5 (Pipeline._apply)."""
        decode_request = proto.decode_request
        prepare: Any = self.prep.prepare
        released = self.prep.released
        write_frame = self.final.write_frame
        tree = self.tree
        sid = self.sid
        auth_ids = self.auth_ids
        conn = self.conn
        wall = self.wall
        log = self.log
        max_len = DEFAULT_MAX_BUFFER
        out: list[bytes] = []
        for batch in batches:
            reqs = []
            for xid, op, payload in batch:
                reqs.append((xid, op, decode_request(op, payload, max_len=max_len, offset=8)))  # 1
            txns = []
            for xid, op, rec in reqs:
                r = prepare(sid, xid, op, rec, auth_ids, wall, owner=conn)  # 2
                txns.append((xid, r[0], r[1]))
            for _xid, hdr, txn in txns:  # 3
                append_entry(log, hdr, txn)
            for xid, hdr, txn in txns:  # 4 + 5
                frame, events, _rc = write_frame(hdr, txn, xid)
                if events:
                    raise AssertionError("no watches in this benchmark")
                out.append(frame)
            released(tree.last_processed_zxid)
            del log[:]
        return out


def set_frames(s: Setup, n: int) -> list[tuple[int, bytes]]:
    bodies = [Setup.set_body(f"/bench/k/{i}", VALUE) for i in range(KEYS)]
    return [s.frame(_SET, bodies[i % KEYS]) for i in range(n)]


def create_frames(s: Setup, n: int, tag: str) -> list[tuple[int, bytes]]:
    return [s.frame(_CREATE, Setup.create_body(f"/bench/c/{tag}-{i}", VALUE)) for i in range(n)]


def measure(
    kind: str, n: int, reps: int, clock: Any = time.perf_counter, stubs: bool = False, new: bool = False
) -> float:
    s = Setup()
    best = float("inf")
    for rep in range(reps + 1):  # the first round warms up
        frames = set_frames(s, n) if kind == "set" else create_frames(s, n, f"w{rep}")
        batches = s.batches(frames)
        gc.collect()
        t0 = clock()
        replies = s.run_batches_new(batches) if new else s.run_batches(batches, stubs)
        dt = clock() - t0
        assert len(replies) == n
        err = struct.unpack_from(">i", replies[-1], 16)[0]
        assert err == 0, err
        if rep:
            best = min(best, dt)
    return best / n * 1e6


def measure_stages(kind: str, n: int, reps: int, clock: Any) -> dict[str, float]:
    """Best per-stage us/op over ``reps`` (each stage timed per batch)."""
    s = Setup()
    best: dict[str, float] = {}
    for rep in range(reps + 1):
        frames = set_frames(s, n) if kind == "set" else create_frames(s, n, f"s{rep}")
        batches = s.batches(frames)
        gc.collect()
        s.stage_clock = clock
        s.stage_times = dict.fromkeys(STAGES, 0.0)
        s.run_batches(batches)
        if rep:
            for name, t in s.stage_times.items():
                best[name] = min(best.get(name, float("inf")), t / n * 1e6)
        s.stage_times = None
        s.stage_clock = _no_clock
    return best


def codec_cases() -> list[tuple[str, Any, list[tuple[Any, ...]]]]:
    """``(name, function, argument tuples)`` for :func:`measure_codecs`."""
    from trio_quorum.protocol.data import STAT_STRUCT
    from trio_quorum.protocol.txn import CreateTxn, SetDataTxn, TxnHeader, decode_txn

    n = 256
    stat = STAT_STRUCT.pack(5, 9, 1_700_000_000_000, 1_700_000_000_001, 3, 0, 0, 0, 100, 0, 5)
    paths = [f"/bench/k/{i}" for i in range(n)]
    get_body = [proto.encode_request(0, int(OpCode.getData), proto.GetDataRequest(p, False))[12:] for p in paths]

    def views(op: int, bodies: list[bytes]) -> list[tuple[Any, ...]]:
        read = memoryview(b"".join(_HDR.pack(i, op) + b for i, b in enumerate(bodies)))
        out, pos = [], 0
        for b in bodies:
            out.append((op, read[pos : pos + 8 + len(b)]))
            pos += 8 + len(b)
        return out

    dec = proto.decode_request
    hdrs = [TxnHeader(0x1234, i, 0x100000000 + i, 1_700_000_000_000, _SET) for i in range(n)]
    chdrs = [TxnHeader(0x1234, i, 0x100000000 + i, 1_700_000_000_000, _CREATE) for i in range(n)]
    set_txns = [(h, SetDataTxn(p, VALUE, 3)) for h, p in zip(hdrs, paths, strict=True)]
    create_txns = [(h, CreateTxn(p, VALUE, OPEN_ACL_UNSAFE, False, 4)) for h, p in zip(chdrs, paths, strict=True)]

    def dec_req(op: int, payload: Any) -> Any:
        return dec(op, payload, max_len=DEFAULT_MAX_BUFFER, offset=8)

    return [
        ("decode_request setData", dec_req, views(_SET, [Setup.set_body(p, VALUE) for p in paths])),
        ("decode_request create", dec_req, views(_CREATE, [Setup.create_body(p, VALUE) for p in paths])),
        ("decode_request getData", dec_req, views(int(OpCode.getData), get_body)),
        ("encode_reply SetDataResponse", proto.encode_reply,
         [(i, 0x100000000 + i, 0, proto.SetDataResponse(stat)) for i in range(n)]),
        ("encode_reply CreateResponse", proto.encode_reply,
         [(i, 0x100000000 + i, 0, proto.CreateResponse(p)) for i, p in enumerate(paths)]),
        ("encode_reply GetDataResponse", proto.encode_reply,
         [(i, 0x100000000 + i, 0, proto.GetDataResponse(VALUE, stat)) for i in range(n)]),
        ("encode_txn SetDataTxn", encode_txn, set_txns),
        ("encode_txn CreateTxn", encode_txn, create_txns),
        ("decode_txn SetDataTxn", decode_txn, [(encode_txn(*a),) for a in set_txns]),
        ("decode_txn CreateTxn", decode_txn, [(encode_txn(*a),) for a in create_txns]),
        ("encode_request setData", proto.encode_request,
         [(i, _SET, proto.SetDataRequest(p, VALUE, -1)) for i, p in enumerate(paths)]),
        ("encode_request create", proto.encode_request,
         [(i, _CREATE, proto.CreateRequest(p, VALUE, OPEN_ACL_UNSAFE, 0)) for i, p in enumerate(paths)]),
        ("encode_request getData", proto.encode_request,
         [(i, int(OpCode.getData), proto.GetDataRequest(p, True)) for i, p in enumerate(paths)]),
    ]


def measure_codecs(reps: int, clock: Any, rounds: int = 40) -> dict[str, float]:
    """Best ns/call of each codec case over ``reps`` timings of ``rounds`` passes."""
    out: dict[str, float] = {}
    for name, fn, args in codec_cases():
        best = float("inf")
        calls = args * rounds
        for rep in range(reps + 1):
            gc.collect()
            t0 = clock()
            for a in calls:
                fn(*a)
            dt = clock() - t0
            if rep:
                best = min(best, dt)
        out[name] = best / len(calls) * 1e9
    return out


def profile(kind: str, n: int) -> None:
    s = Setup()
    frames = set_frames(s, n) if kind == "set" else create_frames(s, n, "p")
    s.run(set_frames(s, 2000) if kind == "set" else create_frames(s, 2000, "warm"))
    pr = cProfile.Profile()
    pr.enable()
    s.run(frames)
    pr.disable()
    pstats.Stats(pr).sort_stats("tottime").print_stats(25)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=20000, help="requests per repetition (default 20000)")
    ap.add_argument("--reps", type=int, default=7, help="timed repetitions, best kept (default 7)")
    ap.add_argument("--only", choices=("set", "create"), help="run one load only")
    ap.add_argument("--profile", choices=("set", "create"), help="cProfile one load instead")
    ap.add_argument("--steps", action="store_true", help="also time each stage separately")
    ap.add_argument(
        "--cpu", action="store_true",
        help="time with time.thread_time (CPU time: steadier on a busy machine) instead of perf_counter",
    )
    ap.add_argument("--codecs", action="store_true", help="time each codec call alone (ns/call) instead")
    args = ap.parse_args()
    gc.set_threshold(*THRESHOLDS)  # the server's policy while serving (server/gcpolicy.py)
    if args.codecs:
        clock = time.thread_time if args.cpu else time.perf_counter
        for name, ns in measure_codecs(args.reps, clock).items():
            print(f"{name:32s} {ns:7.1f} ns/call")
        return
    if args.profile:
        profile(args.profile, args.n)
        return
    for kind in ("set", "create"):
        if args.only and kind != args.only:
            continue
        clock = time.thread_time if args.cpu else time.perf_counter
        name = "setData" if kind == "set" else "create"
        loop = measure(kind, args.n, args.reps, clock, stubs=True)
        if append_entry is not None and hasattr(Final, "write_frame"):
            us = measure(kind, args.n, args.reps, clock, new=True)
            print(f"{name:8s} {us:6.2f} us/op  cores {us - loop:5.2f}  "
                  f"(append_entry + Final.write_frame, the server's calls)")
        us = measure(kind, args.n, args.reps, clock)
        print(f"{name:8s} {us:6.2f} us/op  cores {us - loop:5.2f}  (encode_txn + entry_head, Final.write + "
              f"encode_reply; loop alone {loop:.2f}; best of {args.reps} x {args.n})")
        if args.steps:
            st = measure_stages(kind, args.n, args.reps, clock)
            print(f"{'':8s} per stage of the latter: " + ", ".join(f"{k} {v:.2f}" for k, v in st.items()))


if __name__ == "__main__":
    main()
