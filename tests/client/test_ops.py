"""Every operation of the client, against trio-quorum and Apache ZooKeeper (the ``hosts`` fixture)."""

from __future__ import annotations

import pytest
import trio

from trio_quorum.client import (
    ACL,
    OPEN_ACL_UNSAFE,
    BadArgumentsError,
    BadVersionError,
    EventType,
    Id,
    NoAuthError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    Perm,
    RolledBack,
    RuntimeInconsistency,
    SessionState,
    Stat,
    ZookeeperError,
    open_client,
)

BOUND = 20.0


async def test_create_get_set_delete_shapes(hosts: str) -> None:
    async with open_client(hosts) as zk:
        assert await zk.create("/a", b"one") == "/a"
        data, stat = await zk.get("/a")
        assert data == b"one" and isinstance(stat, Stat) and stat.version == 0 and stat.dataLength == 3
        st = await zk.set("/a", b"two")
        assert st.version == 1 and st.mzxid > stat.mzxid
        assert (await zk.get("/a"))[0] == b"two"
        assert (await zk.exists("/a")) == st
        assert await zk.exists("/missing") is None
        await zk.delete("/a", version=1)
        assert await zk.exists("/a") is None


async def test_errors_are_typed(hosts: str) -> None:
    async with open_client(hosts) as zk:
        await zk.create("/e", b"")
        await zk.create("/e/c", b"")
        with pytest.raises(NodeExistsError) as exc:
            await zk.create("/e")
        assert exc.value.path == "/e" and isinstance(exc.value, ZookeeperError)
        with pytest.raises(NoNodeError):
            await zk.get("/nope")
        with pytest.raises(NoNodeError):
            await zk.create("/nope/child")
        with pytest.raises(BadVersionError):
            await zk.set("/e", b"x", version=7)
        with pytest.raises(NotEmptyError):
            await zk.delete("/e")
        with pytest.raises(BadArgumentsError):
            await zk.get("no-slash")
        with pytest.raises(BadVersionError):
            await zk.check("/e", 3)
        await zk.check("/e", 0)


async def test_create_modes(hosts: str) -> None:
    async with open_client(hosts) as zk:
        path, stat = await zk.create("/eph", b"e", ephemeral=True, include_data=True)
        assert path == "/eph" and stat.ephemeralOwner == zk.session_id
        seq = await zk.create("/s-", sequence=True)
        seq2 = await zk.create("/s-", sequence=True)
        assert seq.startswith("/s-") and len(seq) == len("/s-") + 10
        assert int(seq2[-10:]) > int(seq[-10:])
        eseq = await zk.create("/es-", ephemeral=True, sequence=True)
        assert sorted(await zk.get_ephemerals()) == sorted(["/eph", eseq])
        assert await zk.get_ephemerals("/es") == [eseq]
        ttl_path, ttl_stat = await zk.create("/ttl", b"t", ttl=60_000, include_data=True)
        assert ttl_path == "/ttl" and ttl_stat.ephemeralOwner != zk.session_id
        c = await zk.create("/cont", container=True)
        assert c == "/cont"
        assert await zk.exists("/cont") is not None  # (a container's stat shows ephemeralOwner 0)
        await zk.create("/deep/er/path", b"d", makepath=True)
        assert (await zk.get("/deep/er/path"))[0] == b"d"
        with pytest.raises(ValueError):
            await zk.create("/bad", container=True, ephemeral=True)


async def test_container_is_swept_when_its_last_child_goes(hosts: str) -> None:
    async with open_client(hosts) as zk:
        await zk.create("/box", container=True)
        await zk.create("/box/x")
        stat, watch = await zk.exists_and_watch("/box")
        assert stat is not None
        await zk.delete("/box/x")
        with trio.fail_after(BOUND):
            ev = await watch.wait()
        assert ev.type is EventType.NodeDeleted and ev.path == "/box"


async def test_children_acls_counts_sync_whoami(hosts: str) -> None:
    async with open_client(hosts) as zk:
        await zk.create("/p")
        for n in ("b", "a", "c"):
            await zk.create(f"/p/{n}")
        await zk.create("/p/a/x")
        assert sorted(await zk.get_children("/p")) == ["a", "b", "c"]
        names, stat = await zk.get_children("/p", include_data=True)
        assert sorted(names) == ["a", "b", "c"] and stat.numChildren == 3
        assert await zk.get_all_children_number("/p") == 4
        acls, st = await zk.get_acls("/p")
        assert acls == list(OPEN_ACL_UNSAFE) and st.aversion == 0
        read_only = [ACL(Perm.READ, Id("world", "anyone"))]
        st2 = await zk.set_acls("/p/b", read_only)
        assert st2.aversion == 1
        with pytest.raises(NoAuthError):
            await zk.set("/p/b", b"x")
        assert await zk.sync("/p") == "/p"
        assert ("ip", "127.0.0.1") in await zk.whoami()


async def test_digest_auth(hosts: str) -> None:
    async with open_client(hosts, auth=[("digest", "alice:secret")]) as alice:
        await alice.create("/mine", b"m", acl=[ACL(Perm.ALL, Id("auth", ""))])
        assert ("digest", "alice") in await alice.whoami()
        assert (await alice.get("/mine"))[0] == b"m"
    async with open_client(hosts) as other:
        with pytest.raises(NoAuthError):
            await other.get("/mine")
        await other.add_auth("digest", "alice:secret")
        assert (await other.get("/mine"))[0] == b"m"


async def test_transaction(hosts: str) -> None:
    async with open_client(hosts) as zk:
        await zk.create("/t", b"0")
        t = zk.transaction()
        t.create("/t/a", b"a").set_data("/t", b"1").check("/t", 1).delete("/t/a")
        res0 = await t.commit()
        assert res0[0] == "/t/a" and res0[1].version == 1 and res0[2:] == [True, True]
        async with zk.transaction() as t2:
            t2.create("/t/b")
            t2.create("/t/b")
        assert isinstance(t2.results[0], RolledBack)
        assert isinstance(t2.results[1], NodeExistsError)
        assert await zk.exists("/t/b") is None
        t3 = zk.transaction().check("/t", 99).create("/t/c")
        res = await t3.commit()
        assert isinstance(res[0], BadVersionError) and isinstance(res[1], RuntimeInconsistency)


async def test_multi_read(hosts: str) -> None:
    async with open_client(hosts) as zk:
        await zk.create("/m", b"x")
        await zk.create("/m/k")
        res = await zk.multi_read().get("/m").get_children("/m").get("/none").commit()
        assert res[0][0] == b"x" and isinstance(res[0][1], Stat)
        assert res[1] == ["k"]
        assert isinstance(res[2], NoNodeError)


async def test_pipelined_requests_complete_in_order(hosts: str) -> None:
    async with open_client(hosts) as zk:
        for i in range(20):
            await zk.create(f"/n{i}", str(i).encode())
        got: dict[int, bytes] = {}

        async def read(i: int) -> None:
            got[i] = (await zk.get(f"/n{i % 20}"))[0]

        with trio.fail_after(BOUND):
            async with trio.open_nursery() as n:
                for i in range(500):
                    n.start_soon(read, i)
        assert got == {i: str(i % 20).encode() for i in range(500)}
        assert not zk._core.pending


async def test_chroot_paths_are_relative(hosts: str) -> None:
    async with open_client(hosts) as zk:
        await zk.create("/app")
    async with open_client(hosts + "/app" if "/" not in hosts else hosts + "/app") as app:
        assert await app.create("/x", ephemeral=True) == "/x"
        assert await app.create("/s", sequence=True) != "/s"
        assert await app.get_ephemerals() == ["/x"]
        assert await app.sync("/") == "/"
        stat, w = await app.exists_and_watch("/y")
        assert stat is None
        await app.create("/y")
        with trio.fail_after(BOUND):
            ev = await w.wait()
        assert ev.path == "/y" and ev.type is EventType.NodeCreated
        assert (await app.transaction().create("/z").commit()) == ["/z"]
    async with open_client(hosts) as zk:
        assert "x" not in await zk.get_children("/app")  # ephemeral gone with its session
        assert "y" in await zk.get_children("/app")


async def test_session_states_and_close(hosts: str) -> None:
    seen: list[SessionState] = []
    async with open_client(hosts) as zk:
        assert zk.state is SessionState.CONNECTED and zk.session_id != 0
        assert zk.session_timeout > 0

        async def follow() -> None:
            async for st in zk.session_states():
                seen.append(st)

        zk_nursery_ready = trio.Event()
        async with trio.open_nursery() as n:
            n.start_soon(follow)
            await trio.testing.wait_all_tasks_blocked()
            zk_nursery_ready.set()
            n.cancel_scope.cancel()
    assert seen == [SessionState.CONNECTED]
    assert zk.state is SessionState.CLOSED
    from trio_quorum.client import ClientClosedError

    with pytest.raises(ClientClosedError):
        await zk.get("/")
