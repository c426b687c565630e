from __future__ import annotations

from trio_quorum.client import open_client


async def test_smoke(hosts: str) -> None:
    async with open_client(hosts) as zk:
        assert await zk.create("/a", b"x") == "/a"
        data, stat = await zk.get("/a")
        assert data == b"x"
