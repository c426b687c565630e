"""Fixtures of the client tests: the same test functions run against two servers.

* ``trio-quorum``: a standalone :class:`~trio_quorum.server.peer.Peer` on a
  MemStore, in the test's own Trio run (``clientPort=0``), per test.
* ``zookeeper``: Apache ZooKeeper 3.8 (``tests/support/apache_zk.py``), one
  process per test session, started on first use; each test gets its own
  chroot so tests never see each other's znodes.  Skipped, with the reason,
  where Java or the package is missing.

Both servers have TTL nodes enabled and a 100 ms container sweep.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import trio

from tests.support.apache_zk import ZkProcess, apache_zookeeper, zookeeper_unavailable_reason
from trio_quorum.client import open_client
from trio_quorum.config import parse_config
from trio_quorum.persistence.memstore import MemStore
from trio_quorum.server.peer import Peer

SERVERS = ("trio-quorum", "zookeeper")
BOUND = 20.0


class LazyZooKeeper:
    """Starts Apache ZooKeeper on the first ``get()``; stopped at the end of the session."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.stack = ExitStack()
        self.zk: ZkProcess | None = None

    def get(self) -> ZkProcess:
        reason = zookeeper_unavailable_reason()
        if reason is not None:
            pytest.skip(f"Apache ZooKeeper unavailable: {reason}")
        if self.zk is None:
            self.zk = self.stack.enter_context(apache_zookeeper(
                self.root / "data",
                java_opts=("-Dzookeeper.extendedTypesEnabled=true", "-Dznode.container.checkIntervalMs=100",
                           "-Dzookeeper.forceSync=no"),
                extra_cfg={"minSessionTimeout": "400", "maxSessionTimeout": "60000"},
            ))
        return self.zk


@pytest.fixture(scope="session")
def lazy_zookeeper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LazyZooKeeper]:
    lazy = LazyZooKeeper(tmp_path_factory.mktemp("apache-zk"))
    with lazy.stack:
        yield lazy


class InProcessServer:
    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.port = 0


async def _run_trio_quorum(tmp_path: Path, nursery: trio.Nursery, extra: str = "") -> InProcessServer:
    cfg, _ = parse_config(
        f"tickTime=100\ndataDir={tmp_path / 'data'}\nclientPort=0\nclientPortAddress=127.0.0.1\n"
        "minSessionTimeout=200\nmaxSessionTimeout=60000\nextendedTypesEnabled=true\n"
        f"znode.container.checkIntervalMs=100\n{extra}",
        cwd=str(tmp_path),
    )
    srv = InProcessServer(Peer(cfg, MemStore()))
    with trio.fail_after(BOUND):
        srv.port = await nursery.start(srv.peer.run)
    return srv


@pytest.fixture(params=SERVERS)
def server_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def hosts(server_kind: str, lazy_zookeeper: LazyZooKeeper, tmp_path: Path) -> AsyncIterator[str]:
    """A connect string to a fresh namespace on the parametrized server."""
    if server_kind == "zookeeper":
        zk = lazy_zookeeper.get()
        chroot = f"/t-{uuid.uuid4().hex[:12]}"
        async with open_client(zk.hosts) as setup:
            await setup.create(chroot)
        yield zk.hosts + chroot
        return
    async with trio.open_nursery() as nursery:
        srv = await _run_trio_quorum(tmp_path, nursery)
        yield f"127.0.0.1:{srv.port}"
        srv.peer.shutdown("test finished")
