"""The standalone server takes snapshots in the background: writes never wait for one.

Regression: the server built its FileStore without a nursery, so
``maybe_snapshot`` wrote the whole snapshot inside the pipeline's final stage
and every write waited for it (the create 8x32 p99.9 of 0.5-1 s in
docs/benchmarks.md; docs/server.md, "Performance").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from trio_quorum.persistence.files import list_snapshots
from trio_quorum.persistence.filestore import FileStore

from .test_supervision import BOUND, running


async def test_writes_proceed_while_a_snapshot_is_being_written(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = FileStore(str(data), snap_count=2, force_sync=False)
    started = trio.Event()
    release = trio.Event()
    real = store._write_snapshot

    async def slow_snapshot(tree: Any, sessions: Any) -> str:
        started.set()
        await release.wait()
        return await real(tree, sessions)

    store._write_snapshot = slow_snapshot  # type: ignore[method-assign]
    async with running(tmp_path, storage=store) as r:  # type: ignore[arg-type]
        s = await r.session()
        with trio.fail_after(BOUND):
            n = 0
            while not started.is_set():
                assert await s.create(f"/a{n}") == 0
                n += 1
            # the snapshot is parked: writes must still be answered
            for i in range(5):
                assert await s.create(f"/b{i}") == 0
            before = len(list_snapshots(store.snap_dir))
            release.set()
            await store.wait_snapshot_done()
            assert len(list_snapshots(store.snap_dir)) > before
