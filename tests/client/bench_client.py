"""Per-request overhead of trio_quorum.client vs kazoo (a script, not a test).

    PYTHONPATH=. python -m tests.client.bench_client HOST:PORT [N]

Measures N sequential getData calls with each client, then N getData calls
with 32 in flight (trio_quorum.client: 32 tasks on one session; kazoo: its
async API with 32 outstanding).  Prints microseconds per request.
"""

from __future__ import annotations

import sys
import time

import trio

from trio_quorum.client import NodeExistsError, open_client


async def trio_client(hosts: str, n: int) -> tuple[float, float]:
    async with open_client(hosts) as zk:
        try:
            await zk.create("/bench", b"x" * 100)
        except NodeExistsError:
            pass
        t0 = time.perf_counter()
        for _ in range(n):
            await zk.get("/bench")
        seq = time.perf_counter() - t0
        per_task = n // 32

        async def worker() -> None:
            for _ in range(per_task):
                await zk.get("/bench")

        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(32):
                nursery.start_soon(worker)
        pipe = time.perf_counter() - t0
    return seq / n * 1e6, pipe / (per_task * 32) * 1e6


def kazoo_client(hosts: str, n: int) -> tuple[float, float]:
    from kazoo.client import KazooClient

    zk = KazooClient(hosts=hosts)
    zk.start()
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            zk.get("/bench")
        seq = time.perf_counter() - t0
        t0 = time.perf_counter()
        inflight = [zk.get_async("/bench") for _ in range(32)]
        done = 32
        while inflight:
            r = inflight.pop(0)
            r.get()
            if done < n:
                inflight.append(zk.get_async("/bench"))
                done += 1
        pipe = time.perf_counter() - t0
    finally:
        zk.stop()
        zk.close()
    return seq / n * 1e6, pipe / n * 1e6


def main() -> None:
    hosts = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    seq, pipe = trio.run(trio_client, hosts, n)
    print(f"trio_quorum.client: sequential {seq:.1f} us/req, 32 in flight {pipe:.1f} us/req")
    kseq, kpipe = kazoo_client(hosts, n)
    print(f"kazoo:              sequential {kseq:.1f} us/req, 32 in flight {kpipe:.1f} us/req")


if __name__ == "__main__":
    main()
