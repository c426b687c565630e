"""A peer outlives its roles: the standalone role replaced at run time.

The role (``peer-0/standalone``: the chain prep -> sync -> final and the
role's timers) is stopped with a reason and a fresh one started while a real
kazoo client is connected.  What must hold (issue: "a peer that outlives its
roles"): the tree, the sessions and the storage are the peer's and untouched;
every actor of the old role stopped, each with the recorded reason; the
client's connection was closed by the role change, and kazoo reconnects to the
same session (its ephemeral node survives); every acknowledged write is there.
"""

from __future__ import annotations

import threading
from pathlib import Path

import trio
from kazoo.client import KazooClient
from kazoo.protocol.states import KazooState
from kazoo.retry import KazooRetry

from actors import ActorStarting, ActorStopped, ActorStopping

from .test_supervision import BOUND, ROOT, RecordingStore, running

ROLE = f"{ROOT}/standalone"


async def _blocking(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    return await trio.to_thread.run_sync(lambda: fn(*args, **kwargs))


async def test_role_restart_keeps_tree_sessions_and_storage(tmp_path: Path) -> None:
    store = RecordingStore()
    async with running(tmp_path, store) as r:
        peer = r.server
        zk = KazooClient(hosts=f"127.0.0.1:{r.port}", timeout=10,
                         connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.2))
        states: list[str] = []
        back = threading.Event()

        def listener(state: str) -> None:
            states.append(state)
            if state == KazooState.CONNECTED and KazooState.SUSPENDED in states:
                back.set()

        zk.add_listener(listener)
        await _blocking(zk.start, timeout=BOUND)
        try:
            await _blocking(zk.create, "/eph", b"e", ephemeral=True)
            for i in range(20):
                await _blocking(zk.create, f"/k{i}", str(i).encode())
            session = zk.client_id
            tree, tracker, storage = peer.state.tree, peer.tracker, peer.storage
            zxid = peer.last_zxid()
            old_role = {p for p in peer.tree.paths() if p == ROLE or p.startswith(f"{ROLE}/")}
            old_chain = peer.chain
            starts_before = len(r.rec.of_type(ActorStarting))

            with trio.fail_after(BOUND):
                await peer.restart_role("test: role change")

            # Every actor of the old role was asked to stop with the reason and stopped.
            asked = {e.path: e.reason for e in r.rec.of_type(ActorStopping) if e.path in old_role}
            assert set(asked) == old_role and set(asked.values()) == {"test: role change"}
            stopped = {e.path for e in r.rec.of_type(ActorStopped) if e.path in old_role}
            assert stopped == old_role
            # A fresh role runs: a new chain, the same actor paths started again.
            assert peer.chain is not None and peer.chain is not old_chain and peer.role == "standalone"
            restarted = {e.path for e in r.rec.of_type(ActorStarting)[starts_before:]}
            assert restarted == old_role
            # The peer's state is the same objects, untouched.
            assert peer.state.tree is tree and peer.tracker is tracker and peer.storage is storage
            assert peer.last_zxid() == zxid and session[0] in tracker

            # kazoo saw its connection closed, reconnects to the same session.
            assert await _blocking(back.wait, BOUND)
            assert zk.client_id[0] == session[0]
            assert KazooState.LOST not in states
            # Every acknowledged write is there, the ephemeral too (session kept).
            for i in range(20):
                data, _ = await _blocking(zk.get, f"/k{i}")
                assert data == str(i).encode()
            assert await _blocking(zk.exists, "/eph") is not None
            # The new chain serves writes.
            await _blocking(zk.create, "/after", b"a")
            assert peer.last_zxid() > zxid
        finally:
            await _blocking(zk.stop)
            await _blocking(zk.close)
    assert r.error is None
    durable = {getattr(rec, "path", None) for _hdr, rec in store.durable}
    assert {f"/k{i}" for i in range(20)} | {"/eph", "/after"} <= durable
