"""The operations of a ZooKeeper session, with kazoo's names and return shapes, and watches.

:class:`Operations` adds to :class:`~.session.SessionDriver` one coroutine
per request of the client protocol.  Paths are the user's (relative to the
chroot); errors are the typed exceptions of :mod:`.errors`.

Watches are async iterators, each fed by an :class:`~.session.EventQueue`
the core routes notifications to:

* ``watch_data(path)`` / ``watch_children(path)``: the current value, then
  the value after each change (one-shot watches re-armed after each event,
  like kazoo's ``DataWatch`` / ``ChildrenWatch``: changes between two reads
  coalesce).
* ``get_and_watch`` / ``exists_and_watch`` / ``get_children_and_watch``: a
  value and a one-shot :class:`Watch` (``await w.wait()`` -> the event).
* ``add_watch(path, mode)``: a persistent (or recursive) watch, as an async
  context manager yielding the event iterator; leaving it removes the watch.

Leaving an iterator (break, cancellation, ``aclose``) unregisters its queue
at once, synchronously; the server-side one-shot watch is left to fire into
nothing, as the Java client does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

from ..core.paths import path_error
from ..protocol.consts import AddWatchMode, EventType, OpCode, WatcherType
from ..protocol.data import ACL, OPEN_ACL_UNSAFE, Stat
from ..protocol.records import (
    AddWatchRequest,
    CreateRequest,
    CreateTTLRequest,
    DeleteRequest,
    ExistsRequest,
    GetACLRequest,
    GetAllChildrenNumberRequest,
    GetChildren2Request,
    GetChildrenRequest,
    GetDataRequest,
    GetEphemeralsRequest,
    MultiRequest,
    RemoveWatchesRequest,
    SetACLRequest,
    SetDataRequest,
    SyncRequest,
)
from .core import WatchedEvent, WatchKind, add_watch_kind
from .errors import (
    BadArgumentsError,
    MarshallingError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    ZookeeperError,
)
from .session import EventQueue, SessionDriver
from .transaction import MultiRead, Transaction, create_mode

__all__ = ["Operations", "Watch", "DataEvent", "ChildrenEvent"]


@dataclass(frozen=True, slots=True)
class DataEvent:
    """One step of ``watch_data``: the node's data and stat (both ``None`` when
    it does not exist) and the event that led here (``None`` for the first)."""

    data: bytes | None
    stat: Stat | None
    event: WatchedEvent | None


@dataclass(frozen=True, slots=True)
class ChildrenEvent:
    """One step of ``watch_children``: the child names and the event that led here."""

    children: list[str]
    event: WatchedEvent | None


class Watch:
    """A one-shot watch: ``await w.wait()`` returns its event; ``w.cancel()`` forgets it."""

    def __init__(self, driver: SessionDriver, queue: EventQueue) -> None:
        self._driver = driver
        self._queue = queue

    async def wait(self) -> WatchedEvent:
        try:
            ev: WatchedEvent = await self._queue.get()
        except StopAsyncIteration:
            from .errors import ClientClosedError

            raise ClientClosedError() from None
        finally:
            self.cancel()
        return ev

    def cancel(self) -> None:
        self._driver._forget(self._queue)


class Operations(SessionDriver):
    """Every request of the client protocol (see the module docstring)."""

    # ------------------------------------------------------------ paths

    def _full(self, path: str) -> str:
        err = path_error(path)
        if err is not None:
            raise BadArgumentsError(f"{path!r}: {err}")
        if not self.chroot:
            return path
        return self.chroot if path == "/" else self.chroot + path

    def _rel(self, path: str) -> str:
        r = self._strip(path)
        return r if r is not None else path

    # ------------------------------------------------------------ writes

    async def create(self, path: str, value: bytes = b"", acl: Sequence[ACL] | None = None, *,
                     ephemeral: bool = False, sequence: bool = False, makepath: bool = False,
                     include_data: bool = False, container: bool = False, ttl: int = 0) -> Any:
        """Create a znode; return its path (``(path, stat)`` with ``include_data``).

        ``container`` makes a container node, ``ttl`` (ms) a TTL node (the
        server must have extended types enabled); ``makepath`` creates missing
        parents (as plain persistent nodes).
        """
        if not isinstance(value, bytes | bytearray):
            raise TypeError("value must be bytes")
        op, flags = create_mode(ephemeral, sequence, container, ttl)
        full = self._full(path)
        acls = tuple(acl) if acl else OPEN_ACL_UNSAFE
        if op == OpCode.createTTL:
            rec: Any = CreateTTLRequest(full, bytes(value), acls, flags, ttl)
        else:
            rec = CreateRequest(full, bytes(value), acls, flags)
            if include_data and op == OpCode.create:
                op = OpCode.create2
        while True:
            try:
                rsp = await self._call(op, rec, full)
                break
            except NoNodeError:
                if not makepath or path.rfind("/") <= 0:
                    raise
                await self.ensure_path(path[: path.rfind("/")], acl)
                makepath = False  # once: a parent deleted again is the caller's problem
        created = self._rel(rsp.path)
        if include_data:
            stat: Stat | None = getattr(rsp, "stat", None)
            if stat is None:
                stat = await self.exists(created)
            return created, stat
        return created

    async def ensure_path(self, path: str, acl: Sequence[ACL] | None = None) -> None:
        """Create ``path`` and its missing parents (persistent, empty); existing ones are fine."""
        parts = [p for p in path.split("/") if p]
        # walk up only as far as needed: most calls find the parent there
        for i in range(len(parts)):
            sub = "/" + "/".join(parts[: i + 1])
            try:
                await self.create(sub, b"", acl)
            except NodeExistsError:
                pass

    async def delete(self, path: str, version: int = -1, recursive: bool = False) -> None:
        """Delete a znode (``recursive``: its subtree first, children before parents)."""
        if recursive:
            try:
                children = await self.get_children(path)
            except NoNodeError:
                return
            for c in children:
                await self.delete(f"{path.rstrip('/')}/{c}", recursive=True)
            try:
                await self._call(OpCode.delete, DeleteRequest(self._full(path), version), self._full(path))
            except NoNodeError:
                pass
            except NotEmptyError:  # something appeared meanwhile: go again
                await self.delete(path, version, recursive=True)
            return
        full = self._full(path)
        await self._call(OpCode.delete, DeleteRequest(full, version), full)

    async def set(self, path: str, value: bytes, version: int = -1) -> Stat:
        """Set a znode's data; return its new stat."""
        full = self._full(path)
        rsp = await self._call(OpCode.setData, SetDataRequest(full, bytes(value), version), full)
        stat: Stat = rsp.stat
        return stat

    set_data = set

    async def set_acls(self, path: str, acls: Sequence[ACL], version: int = -1) -> Stat:
        full = self._full(path)
        rsp = await self._call(OpCode.setACL, SetACLRequest(full, tuple(acls), version), full)
        stat: Stat = rsp.stat
        return stat

    set_acl = set_acls

    async def check(self, path: str, version: int) -> None:
        """Raise BadVersionError unless ``path`` is at ``version`` (NoNodeError if missing).

        Sent as a one-op multi: ZooKeeper 3.8 serves check only inside a multi.
        """
        (res,) = await self.transaction().check(path, version).commit()
        if isinstance(res, ZookeeperError):
            raise res

    def transaction(self) -> Transaction:
        return Transaction(self._submit_multi, self._full, self._rel)

    def multi_read(self) -> MultiRead:
        return MultiRead(self._submit_multi, self._full)

    async def _submit_multi(self, op: int, req: MultiRequest) -> Any:
        return await self._call(op, req)

    # ------------------------------------------------------------ reads

    async def exists(self, path: str) -> Stat | None:
        """The znode's stat, or ``None`` when it does not exist."""
        full = self._full(path)
        try:
            rsp = await self._call(OpCode.exists, ExistsRequest(full, False), full)
        except NoNodeError:
            return None
        stat: Stat = rsp.stat
        return stat

    async def get(self, path: str) -> tuple[bytes, Stat]:
        """``(data, stat)``; a node created with null data reads as ``b""``."""
        full = self._full(path)
        rsp = await self._call(OpCode.getData, GetDataRequest(full, False), full)
        return (rsp.data if rsp.data is not None else b""), rsp.stat

    async def get_children(self, path: str, include_data: bool = False) -> Any:
        """The child names (``(names, stat)`` with ``include_data``: getChildren2)."""
        full = self._full(path)
        if include_data:
            rsp = await self._call(OpCode.getChildren2, GetChildren2Request(full, False), full)
            return list(rsp.children), rsp.stat
        rsp = await self._call(OpCode.getChildren, GetChildrenRequest(full, False), full)
        return list(rsp.children)

    async def get_acls(self, path: str) -> tuple[list[ACL], Stat]:
        full = self._full(path)
        rsp = await self._call(OpCode.getACL, GetACLRequest(full), full)
        return list(rsp.acl), rsp.stat

    get_acl = get_acls

    async def sync(self, path: str) -> str:
        """Wait until the server this client talks to has every write the leader committed
        before; returns the path."""
        full = self._full(path)
        rsp = await self._call(OpCode.sync, SyncRequest(full), full)
        return self._rel(rsp.path)

    async def get_ephemerals(self, prefix: str = "/") -> list[str]:
        """Paths of this session's ephemeral nodes under ``prefix``."""
        full = self._full(prefix)
        rsp = await self._call(OpCode.getEphemerals, GetEphemeralsRequest(full), full)
        return [self._rel(p) for p in rsp.ephemerals]

    async def get_all_children_number(self, path: str) -> int:
        """How many nodes are below ``path`` (all depths)."""
        full = self._full(path)
        rsp = await self._call(OpCode.getAllChildrenNumber, GetAllChildrenNumberRequest(full), full)
        return int(rsp.total_number)

    async def whoami(self) -> list[tuple[str, str]]:
        """``[(scheme, user), ...]``: the identities this session is authenticated as."""
        rsp = await self._call(OpCode.whoAmI)
        return [(s, u) for s, u in rsp.client_info]

    # ------------------------------------------------------------ watches

    async def exists_and_watch(self, path: str) -> tuple[Stat | None, Watch]:
        """The stat (or ``None``) and a watch for its creation, change or deletion."""
        full = self._full(path)
        q = self._queue()
        try:
            rsp = await self._call(OpCode.exists, ExistsRequest(full, True), full, (WatchKind.EXIST, q))
            stat: Stat | None = rsp.stat
        except NoNodeError:
            stat = None
        except BaseException:
            self._forget(q)
            raise
        return stat, Watch(self, q)

    async def get_and_watch(self, path: str) -> tuple[bytes, Stat, Watch]:
        """``(data, stat)`` and a watch for its next change or deletion."""
        full = self._full(path)
        q = self._queue()
        try:
            rsp = await self._call(OpCode.getData, GetDataRequest(full, True), full, (WatchKind.DATA, q))
        except BaseException:
            self._forget(q)
            raise
        return (rsp.data if rsp.data is not None else b""), rsp.stat, Watch(self, q)

    async def get_children_and_watch(self, path: str) -> tuple[list[str], Watch]:
        """The child names and a watch for the next change of the list (or deletion)."""
        full = self._full(path)
        q = self._queue()
        try:
            rsp = await self._call(OpCode.getChildren, GetChildrenRequest(full, True), full, (WatchKind.CHILD, q))
        except BaseException:
            self._forget(q)
            raise
        return list(rsp.children), Watch(self, q)

    async def watch_data(self, path: str) -> AsyncIterator[DataEvent]:
        """The node's data now, then after each change (see the module docstring).

        Never ends by itself: a deleted node yields ``DataEvent(None, None, ev)``
        and the watch waits for it to come back.
        """
        event: WatchedEvent | None = None
        while True:
            data: bytes | None
            try:
                data, stat, w = await self.get_and_watch(path)
            except NoNodeError:
                st, w = await self.exists_and_watch(path)
                if st is not None:  # created in between: read it
                    w.cancel()
                    continue
                data, stat = None, None
            try:
                yield DataEvent(data, stat, event)
                event = await w.wait()
            finally:
                w.cancel()

    async def watch_children(self, path: str) -> AsyncIterator[ChildrenEvent]:
        """The child names now, then after each change; ends when the node is deleted.

        Raises:
            NoNodeError: the node does not exist at the start.
        """
        event: WatchedEvent | None = None
        while True:
            try:
                children, w = await self.get_children_and_watch(path)
            except NoNodeError:
                if event is None:
                    raise
                return
            try:
                yield ChildrenEvent(children, event)
                event = await w.wait()
            finally:
                w.cancel()
            if event.type is EventType.NodeDeleted:
                return

    @asynccontextmanager
    async def add_watch(self, path: str, mode: AddWatchMode = AddWatchMode.PERSISTENT
                        ) -> AsyncIterator[AsyncIterator[WatchedEvent]]:
        """A persistent watch (``PERSISTENT_RECURSIVE``: on the whole subtree).

        ``async with zk.add_watch("/app", AddWatchMode.PERSISTENT_RECURSIVE) as events:
        async for ev in events: ...``; leaving the block removes it (the server's
        watch too, when no other watcher of this client needs it).
        """
        full = self._full(path)
        q = self._queue()
        kind = add_watch_kind(mode)
        try:
            await self._call(OpCode.addWatch, AddWatchRequest(full, int(mode)), full, (kind, q))
            yield _iterate(q)
        finally:
            removed = self._forget(q)
            if any(last for _, _, last in removed) and self.connected:
                wtype = WatcherType.PersistentRecursive if kind is WatchKind.PERSISTENT_RECURSIVE \
                    else WatcherType.Persistent
                with trio.move_on_after(max(self.session_timeout, 1.0)) as scope:
                    scope.shield = True
                    try:
                        try:
                            await self._call(OpCode.removeWatches, RemoveWatchesRequest(full, int(wtype)), full)
                        except MarshallingError:
                            # ZooKeeper 3.8 takes only Children/Data/Any here: Any, if nothing
                            # else of ours watches this path
                            if not any(self._core.has_watches(k, full) for k in WatchKind):
                                await self._call(OpCode.removeWatches,
                                                 RemoveWatchesRequest(full, int(WatcherType.Any)), full)
                    except ZookeeperError:
                        pass  # gone already (or the connection is): nothing left to remove

    async def remove_watches(self, path: str, watcher_type: WatcherType = WatcherType.Any) -> None:
        """removeWatches: the server forgets this session's watches of that type on ``path``;
        this client ends the iterators of those watches.

        Raises:
            NoWatcherError: the server has no such watch.
        """
        full = self._full(path)
        await self._call(OpCode.removeWatches, RemoveWatchesRequest(full, int(watcher_type)), full)
        kinds = {
            WatcherType.Children: (WatchKind.CHILD,),
            WatcherType.Data: (WatchKind.DATA, WatchKind.EXIST),
            WatcherType.Persistent: (WatchKind.PERSISTENT,),
            WatcherType.PersistentRecursive: (WatchKind.PERSISTENT_RECURSIVE,),
        }.get(watcher_type, tuple(WatchKind))
        for kind in kinds:
            for q in self._core.watchers(kind, full):
                if isinstance(q, EventQueue):
                    self._forget(q)


async def _iterate(q: EventQueue) -> AsyncIterator[WatchedEvent]:
    while True:
        try:
            ev: WatchedEvent = await q.get()
        except StopAsyncIteration:
            return
        yield ev
