"""The pipeline's direct write path (server/chain.py, server/stages.py) keeps the stages' guarantees.

When nothing is in flight and no other connection committed a moment ago,
``Pipeline.submit`` runs prep, append, an inline fsync, apply and the replies
in one synchronous step instead of handing the batch through the stages.
Checked here, in process, on real sockets, with the in-memory store (which
loses unsynced writes on a simulated crash):

* an idle session's write takes the direct path, and is durable before its
  reply is on the wire;
* with the direct path switched off the same requests go through the stages;
* a failure in any part of the direct path escalates exactly as a crash of
  that stage does (the server stops, the write is never acknowledged);
* a slow inline fsync switches the direct path off;
* a commit of another connection a moment ago sends a write through the
  stages (group commit), and mixing both paths keeps zxid order and loses
  nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from actors import ActorCrashed
from trio_quorum.persistence.memstore import MemStore
from trio_quorum.server import stages as pipeline_mod
from trio_quorum.server.peer import ServerFailed

from .test_supervision import BOUND, ROOT, RecordingStore, running


class WatchingStore(MemStore):
    """Records, at each sync, which paths were durable: to check "synced before replied"."""

    def __init__(self) -> None:
        super().__init__()
        self.inline_syncs = 0
        self.async_syncs = 0

    def sync_inline(self) -> bool:
        self.inline_syncs += 1
        return super().sync_inline()

    async def sync(self) -> None:
        self.async_syncs += 1
        await super().sync()


def _durable_paths(store: MemStore) -> list[str]:
    return [getattr(rec, "path", "") for _hdr, rec in store.durable]


async def test_idle_write_takes_the_direct_path_and_is_durable_before_the_reply(tmp_path: Path) -> None:
    store = WatchingStore()
    async with running(tmp_path, store) as r:
        a = await r.session()
        before = r.server.chain.direct_batches
        assert await a.create("/direct") == 0
        # The reply was read by the client: the txn was synced (durable) before it was sent.
        assert "/direct" in _durable_paths(store)
        assert r.server.chain.direct_batches == before + 1
        assert store.inline_syncs >= 1 and store.async_syncs == 0
        assert await a.get("/direct") == 0
        assert r.server.stats.outstanding == 0
    assert r.error is None


async def test_with_the_direct_path_off_the_stages_do_the_work(tmp_path: Path) -> None:
    store = WatchingStore()
    async with running(tmp_path, store) as r:
        r.server.chain.direct_enabled = False
        a = await r.session()
        for i in range(5):
            assert await a.create(f"/staged{i}") == 0
        assert await a.get("/staged4") == 0
        assert await a.create("/staged4") != 0  # NODEEXISTS through the stages too
        assert r.server.chain.direct_batches == 0
        assert store.inline_syncs == 0 and store.async_syncs >= 6
        assert [p for p in _durable_paths(store) if p.startswith("/staged")] == [f"/staged{i}" for i in range(5)]
        assert r.server.stats.outstanding == 0
    assert r.error is None


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "staged"])
async def test_fsync_failure_escalates_through_the_sync_stage(tmp_path: Path, direct: bool) -> None:
    store = RecordingStore()
    async with running(tmp_path, store) as r:
        r.server.chain.direct_enabled = direct
        a = await r.session()
        store.fail_syncs(1)
        with trio.fail_after(BOUND):
            with pytest.raises(EOFError):
                await a.create("/lost")
        await r.wait_done()
    assert isinstance(r.error, ServerFailed) and "StorageFailed" in str(r.error)
    assert r.rec.of_type(ActorCrashed)[0].path == f"{ROOT}/standalone/sync"


@pytest.mark.parametrize("where", ["prep", "final"])
async def test_a_crash_in_the_direct_path_escalates_through_its_stage(
    tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RecordingStore()
    async with running(tmp_path, store) as r:
        pipeline = r.server.chain
        a = await r.session()
        assert await a.create("/before") == 0

        def boom(*args: object, **kwargs: object) -> None:
            raise RuntimeError(f"injected {where} failure")

        if where == "prep":
            monkeypatch.setattr(pipeline.stages[0].prep, "prepare", boom)
        else:
            monkeypatch.setattr(type(r.server.state.tree), "apply", boom)
        direct_before = pipeline.direct_batches
        with trio.fail_after(BOUND):
            with pytest.raises(EOFError):
                await a.create("/after")
        await r.wait_done()
        assert pipeline.direct_batches == direct_before  # it was the direct path that failed
    assert isinstance(r.error, ServerFailed)
    assert f"standalone/{where}" in str(r.error) and f"injected {where} failure" in str(r.error)
    assert r.rec.of_type(ActorCrashed)[0].path == f"{ROOT}/standalone/{where}"
    assert "/before" in _durable_paths(store)
    if where == "final":
        # Logged (durable) but never applied or answered: restart replays it.
        assert "/after" in _durable_paths(store)
        assert not r.server.state.tree_trusted


async def test_a_slow_inline_fsync_switches_the_direct_path_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline_mod, "_DIRECT_SLOW_FSYNC_S", -1.0)  # every fsync is "slow"
    store = WatchingStore()
    async with running(tmp_path, store) as r:
        a = await r.session()  # createSession: direct, and "slow"
        direct = r.server.chain.direct_batches
        assert direct >= 1
        for i in range(3):
            assert await a.create(f"/n{i}") == 0
        assert r.server.chain.direct_batches == direct
        assert store.async_syncs >= 3
    assert r.error is None


async def test_another_connections_recent_commit_sends_a_write_through_the_stages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "A moment ago" made long, so the test does not depend on timing.
    monkeypatch.setattr(pipeline_mod, "_DIRECT_QUIET_S", 3600.0)
    store = WatchingStore()
    async with running(tmp_path, store) as r:
        pipeline = r.server.chain
        a = await r.session()  # the first commit ever: direct
        assert pipeline.direct_batches == 1
        assert await a.create("/a1") == 0  # same connection as the last commit: direct
        assert pipeline.direct_batches == 2
        syncs = store.async_syncs
        b = await r.session()  # another connection committed "just now": the stages
        assert pipeline.direct_batches == 2 and store.async_syncs == syncs + 1
        # b committed last (through the stages): its next write goes direct, so a
        # lone client does not stay on the staged path once it got there.
        assert await b.create("/b1") == 0
        assert pipeline.direct_batches == 3
        assert await a.create("/a2") == 0  # b committed just now: the stages
        assert pipeline.direct_batches == 3 and store.async_syncs == syncs + 2
        assert [p for p in _durable_paths(store) if p] == ["/a1", "/b1", "/a2"]
    assert r.error is None


async def test_mixed_paths_keep_zxid_order_and_lose_nothing(tmp_path: Path) -> None:
    store = WatchingStore()
    per_session = 40
    async with running(tmp_path, store) as r:
        sessions = [await r.session() for _ in range(4)]
        results: dict[str, int] = {}

        async def writer(k: int) -> None:
            for i in range(per_session):
                path = f"/s{k}-{i}"
                results[path] = await sessions[k].create(path)

        async with trio.open_nursery() as nursery:
            for k in range(len(sessions)):
                nursery.start_soon(writer, k)
        assert set(results.values()) == {0}
        zxids = [hdr.zxid for hdr, _rec in store.durable]
        assert zxids == sorted(zxids) and len(set(zxids)) == len(zxids)
        assert zxids == list(range(zxids[0], zxids[0] + len(zxids)))  # no gap
        assert set(results) <= set(_durable_paths(store))
        for path in results:
            assert await sessions[0].get(path) == 0
        assert r.server.state.tree.last_processed_zxid == zxids[-1]
        assert r.server.stats.outstanding == 0
    assert r.error is None
