"""An active session outlives its timeout: every request and ping touches it.

Regression test: requests used to reach the pipeline without touching the
session, so a busy client was expired exactly one timeout after connecting.
"""

from __future__ import annotations

import time

from kazoo.client import KazooClient, KazooState

from tests.support.server import ServerProcess, write_cfg


def test_busy_and_idle_sessions_are_not_expired(tmp_path):
    with ServerProcess(write_cfg(tmp_path)) as server:
        busy = KazooClient(hosts=server.hosts, timeout=1.0)
        idle = KazooClient(hosts=server.hosts, timeout=1.0)
        busy.start(timeout=10)
        idle.start(timeout=10)
        try:
            states: list[KazooState] = []
            busy.add_listener(states.append)
            idle.add_listener(states.append)
            sessions = (busy.client_id[0], idle.client_id[0])
            idle.create("/idle-eph", ephemeral=True)
            # Keep the busy session working for three of its timeouts (bounded by
            # wall time and count); the idle one lives on kazoo's pings alone.
            deadline = time.monotonic() + 3 * busy._session_timeout / 1000
            n = 0
            while time.monotonic() < deadline and n < 200_000:
                busy.exists("/")
                n += 1
            assert states == []
            assert (busy.client_id[0], idle.client_id[0]) == sessions
            assert busy.exists("/idle-eph") is not None
            assert "Expiring session" not in server.log_text()
        finally:
            for c in (busy, idle):
                c.stop()
                c.close()
