"""Failover: kill -9 the server a client is connected to, in a 3-peer ensemble of either kind.

The session survives (same id, its ephemeral still there), the client is
served by another peer, and a watch set before the kill fires after it
(re-registered by setWatches on the new connection).
"""

from __future__ import annotations

import pytest
import trio

from tests.support.ensemble import KINDS, Ensemble, Kind, require_ensemble
from trio_quorum.client import EventType, SessionState, open_client, retry

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", KINDS)
async def test_session_and_watches_survive_failover(kind: Kind, tmp_path: object) -> None:
    require_ensemble(kind)
    with Ensemble(tmp_path, kind=kind, size=3) as ens:  # type: ignore[arg-type]
        hosts = ens.connect_string()
        async with open_client(hosts, session_timeout=10) as zk, open_client(hosts, session_timeout=10) as other:
            await zk.create("/eph", b"e", ephemeral=True)
            await zk.create("/data", b"0")
            _, _, watch = await zk.get_and_watch("/data")
            sid0 = zk.session_id
            assert zk.server is not None
            victim = next(s for s in ens.sids if ens.client_port(s) == zk.server[1])
            states: list[SessionState] = []

            async def follow() -> None:
                async for st in zk.session_states():
                    states.append(st)

            async with trio.open_nursery() as n:
                n.start_soon(follow)
                await trio.to_thread.run_sync(ens.kill, victim)
                with trio.fail_after(60):
                    await retry(other, lambda: other.set("/data", b"1"), attempts=200)
                    ev = await watch.wait()
                    assert ev.type is EventType.NodeDataChanged and ev.path == "/data"
                    assert await retry(zk, lambda: zk.exists("/eph"), attempts=200) is not None
                n.cancel_scope.cancel()
            assert zk.session_id == sid0
            assert zk.server is not None and zk.server[1] != ens.client_port(victim)
            assert SessionState.SUSPENDED in states and states[-1] is SessionState.CONNECTED
            assert (await other.get("/eph"))[0] == b"e"
