"""Restore speed and memory with N znodes on disk (default 1M).

Writes a data dir holding one snapshot shaped like the benchmark's
``memory.1m`` tree (``/bench/c/<session name>-<seq>`` with 100-byte values,
OPEN ACL, a few sessions), then runs ``FileStore(dir).restore(tree, sessions)``
in fresh interpreters (subprocesses), with the server's GC thresholds
(``server/gcpolicy.py``) as ``StandaloneServer`` sets them, and reports:

* ``restore_s``: wall time of ``restore`` (snapshot read, decode, tree build);
* ``peak_rss_mib``: ``ru_maxrss`` of the process (the high-water mark);
* ``rss_after_mib``: RSS from ``/proc/self/statm`` right after the restore.

Usage::

    .venv/bin/python bench/restore.py                   # 1M znodes, 3 runs
    .venv/bin/python bench/restore.py --nodes 200000 --runs 5
    .venv/bin/python bench/restore.py --dir /tmp/snap1m # keep/reuse the data dir
    .venv/bin/python bench/restore.py --profile         # cProfile of one restore
    .venv/bin/python bench/restore.py --built           # also: RSS of the same tree built by creates
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / (1 << 20)


def _names(n: int, sessions: int = 256) -> list[str]:
    # the load generator's names: <run tag>w<worker>s<session>-<seq>, round-robin over sessions
    per = [0] * sessions
    out = []
    for i in range(n):
        s = i % sessions
        out.append(f"r1w{s % 8}s{s}-{per[s]}")
        per[s] += 1
    return out


def make_dir(path: str, n: int) -> str:
    from trio_quorum.core.node import DataNode
    from trio_quorum.persistence.snapshot import encode_snapshot, snapshot_name
    from trio_quorum.protocol.data import READ_ACL_UNSAFE

    snap_dir = os.path.join(path, "version-2")
    os.makedirs(snap_dir, exist_ok=True)
    value = bytes(range(100))
    t0 = 1_700_000_000_000
    names = _names(n)
    last = 0x100000000 + n + 2

    def nodes():  # type: ignore[no-untyped-def]
        # ACL id -1 is OPEN_ACL_UNSAFE (never in the ACL section), as ZooKeeper and we write it
        yield "", DataNode(b"", -1, 0, 0, 0, 0, cversion=2, pzxid=0x100000002)
        yield "/zookeeper", DataNode(b"", -1, 0, 0, 0, 0)
        yield "/zookeeper/quota", DataNode(b"", -1, 0, 0, 0, 0)
        yield "/zookeeper/config", DataNode(b"", 1, 0, 0, 0, 0, aversion=-1)
        yield (
            "/bench",
            DataNode(b"", -1, 0x100000001, 0x100000001, t0, t0, cversion=1, pzxid=0x100000002),
        )
        yield (
            "/bench/c",
            DataNode(b"", -1, 0x100000002, 0x100000002, t0, t0, cversion=n, pzxid=last),
        )
        for i, name in enumerate(names):
            z = 0x100000003 + i
            yield f"/bench/c/{name}", DataNode(value, -1, z, z, t0 + i, t0 + i, pzxid=z)

    acls = [(1, READ_ACL_UNSAFE)]
    sessions = {0x1000000 + i: 30_000 for i in range(256)}
    tmp = os.path.join(snap_dir, "snap.tmp")
    with open(tmp, "wb") as f:
        for chunk in encode_snapshot(sessions, acls, nodes()):
            f.write(chunk)
    os.rename(tmp, os.path.join(snap_dir, snapshot_name(last)))
    return snap_dir


def child(path: str, profile: bool) -> None:
    import gc

    import trio

    from trio_quorum.core.datatree import DataTree
    from trio_quorum.persistence.filestore import FileStore
    from trio_quorum.server import gcpolicy

    gcpolicy.tune()
    rss0 = _rss_mib()
    tree = DataTree()
    sessions: dict[int, int] = {}
    store = FileStore(path, force_sync=False)

    async def main() -> int:
        return await store.restore(tree, sessions)

    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    t0 = time.perf_counter()
    # cProfile sees only its own thread: profile the blocking body restore runs in a worker thread
    zxid = store._restore_sync(tree, sessions) if profile else trio.run(main)
    dt = time.perf_counter() - t0
    if prof is not None:
        prof.disable()
    if len(tree.nodes) >= gcpolicy.FREEZE_MIN_NODES:
        gcpolicy.freeze()
    rss = _rss_mib()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {
        "restore_s": round(dt, 3),
        "peak_rss_mib": round(peak, 1),
        "rss_after_mib": round(rss, 1),
        "rss_before_mib": round(rss0, 1),
        "nodes": len(tree.nodes),
        "zxid": hex(zxid),
        "gc_frozen": gc.get_freeze_count(),
    }
    print(json.dumps(out), flush=True)
    if prof is not None:
        import pstats

        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(20)


def built(n: int) -> None:
    """RSS of the same tree built by applying creates (what the server held before the restart)."""
    from trio_quorum.core.datatree import DataTree
    from trio_quorum.server import gcpolicy

    gcpolicy.tune()
    from trio_quorum.protocol.data import OPEN_ACL_UNSAFE
    from trio_quorum.protocol.records import OpCode
    from trio_quorum.protocol.txn import CreateTxn, TxnHeader

    tree = DataTree()
    value = bytes(range(100))
    zxid = 0x100000000
    t0 = 1_700_000_000_000

    def create(path: str, data: bytes) -> None:
        nonlocal zxid
        zxid += 1
        tree.apply(
            TxnHeader(1, 1, zxid, t0, OpCode.create),
            CreateTxn(path, data, OPEN_ACL_UNSAFE, False, 0),
        )

    create("/bench", b"")
    create("/bench/c", b"")
    for name in _names(n):
        create(f"/bench/c/{name}", value)
    gcpolicy.freeze()
    print(json.dumps({"built_rss_mib": round(_rss_mib(), 1), "nodes": len(tree.nodes)}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--nodes", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", help="data dir to create (or reuse when it holds a snapshot)")
    ap.add_argument("--profile", action="store_true", help="cProfile one restore (to stderr)")
    ap.add_argument(
        "--built", action="store_true", help="also report RSS of the tree built by creates"
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--built-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.profile)
        return
    if args.built_child:
        built(args.nodes)
        return
    own = args.dir is None
    path = args.dir or tempfile.mkdtemp(prefix="restore-bench-")
    try:
        snap_dir = os.path.join(path, "version-2")
        if not (
            os.path.isdir(snap_dir) and any(n.startswith("snapshot.") for n in os.listdir(snap_dir))
        ):
            t0 = time.perf_counter()
            make_dir(path, args.nodes)
            print(
                f"wrote {args.nodes:,} znodes in {time.perf_counter() - t0:.1f} s", file=sys.stderr
            )
        for name in sorted(os.listdir(snap_dir)):
            print(
                f"{name}: {os.path.getsize(os.path.join(snap_dir, name)) / (1 << 20):.1f} MiB",
                file=sys.stderr,
            )
        cmd = [sys.executable, os.path.abspath(__file__), "--child", path]
        results = []
        for _ in range(1 if args.profile else args.runs):
            out = subprocess.run(
                cmd + (["--profile"] if args.profile else []),
                check=True,
                stdout=subprocess.PIPE,
                text=True,
            )
            r = json.loads(out.stdout)
            results.append(r)
            print(json.dumps(r))
        if args.built:
            out = subprocess.run(
                [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--built-child",
                    "--nodes",
                    str(args.nodes),
                ],
                check=True,
                stdout=subprocess.PIPE,
                text=True,
            )
            print(out.stdout.strip())
        if len(results) > 1:
            med = {
                k: sorted(r[k] for r in results)[len(results) // 2]
                for k in ("restore_s", "peak_rss_mib", "rss_after_mib")
            }
            print("median " + json.dumps(med))
    finally:
        if own:
            shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
