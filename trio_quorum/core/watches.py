"""Server-side watch tables: ZooKeeper's ``WatchManager`` pair (sans-IO).

ZooKeeper's ``DataTree`` keeps two watch managers, one for *data* watches
(getData, exists, addWatch) and one for *child* watches (getChildren,
addWatch PERSISTENT).  :class:`WatchManager` holds both tables and the rules
that tie them together, so the tree calls one :meth:`WatchManager.trigger`
per change.

A watcher is any hashable object (the server uses the client connection).
Each (table, path, watcher) entry carries a small set of mode flags, as in
ZooKeeper 3.9's ``WatchStats``: ``STANDARD`` (one-shot), ``PERSISTENT`` and
``PERSISTENT_RECURSIVE``.  A standard watch and a persistent watch on the same
path by the same watcher coexist (3.8.0 let a later getData(watch) downgrade a
persistent watch to one-shot; 3.9 fixed that, and we follow 3.9).

Rules (reference section 2.3; ``WatchManager.triggerWatch``):

* Triggering fires every watcher registered on the exact path, and every
  PERSISTENT_RECURSIVE watcher on the path or an ancestor; a STANDARD flag is
  consumed when it fires, persistent ones stay.
* Recursive watches live in the data table only, so they never receive
  NodeChildrenChanged.
* A watcher is notified once per event however many ways it is registered;
  delete sends NodeDeleted to data *and* child watchers of the path (once),
  then NodeChildrenChanged to the parent's child watchers.
* ZooKeeper's server sends no event for removeWatches; the *client* library
  synthesises DataWatchRemoved / ChildWatchRemoved / PersistentWatchRemoved.

Invariants: ``_data[path][w]`` is non-zero iff ``path in _wdata[w]`` (same
for the child tables); empty inner dicts/sets are removed at once;
``_recursive`` counts entries carrying PERSISTENT_RECURSIVE.  Triggering a
path nobody watches costs two dict lookups.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Protocol

from ..protocol.consts import AddWatchMode, EventType, WatcherType

__sans_io__ = True

__all__ = [
    "STANDARD",
    "PERSISTENT",
    "PERSISTENT_RECURSIVE",
    "WatchEvent",
    "WatchManager",
    "WatchesSummary",
    "parent_path",
]

STANDARD = 1
PERSISTENT = 2
PERSISTENT_RECURSIVE = 4

#: (watcher, event type, path): one notification to deliver.
WatchEvent = tuple[Hashable, int, str]

_NODE_CREATED = int(EventType.NodeCreated)
_NODE_DELETED = int(EventType.NodeDeleted)
_NODE_DATA_CHANGED = int(EventType.NodeDataChanged)
_NODE_CHILDREN_CHANGED = int(EventType.NodeChildrenChanged)

_Table = dict[str, dict[Hashable, int]]
_Reverse = dict[Hashable, set[str]]


class _HasZxids(Protocol):
    mzxid: int
    pzxid: int


def parent_path(path: str) -> str:
    """``/a/b`` -> ``/a``; ``/a`` -> ``/``."""
    i = path.rfind("/")
    return path[:i] if i > 0 else "/"


class WatchesSummary(tuple[int, int, int]):
    """(connections, paths, total watches) like ZooKeeper's ``WatchesSummary``."""

    __slots__ = ()

    @property
    def num_connections(self) -> int:
        return self[0]

    @property
    def num_paths(self) -> int:
        return self[1]

    @property
    def total_watches(self) -> int:
        return self[2]


def _add(table: _Table, rev: _Reverse, path: str, watcher: Hashable, flag: int) -> bool:
    ws = table.get(path)
    if ws is None:
        ws = table[path] = {}
    old = ws.get(watcher, 0)
    ws[watcher] = old | flag
    if not old:
        paths = rev.get(watcher)
        if paths is None:
            paths = rev[watcher] = set()
        paths.add(path)
    return not old & flag


def _unwatch(table: _Table, rev: _Reverse, path: str, watcher: Hashable) -> None:
    ws = table[path]
    del ws[watcher]
    if not ws:
        del table[path]
    paths = rev[watcher]
    paths.discard(path)
    if not paths:
        del rev[watcher]


class WatchManager:
    """Data and child watch tables with ZooKeeper's trigger rules."""

    __slots__ = ("_data", "_child", "_wdata", "_wchild", "_recursive")

    def __init__(self) -> None:
        self._data: _Table = {}
        self._child: _Table = {}
        self._wdata: _Reverse = {}
        self._wchild: _Reverse = {}
        self._recursive = 0

    # ------------------------------------------------------------ register

    def add_data_watch(self, path: str, watcher: Hashable) -> None:
        """One-shot data watch (getData / exists with watch=true)."""
        _add(self._data, self._wdata, path, watcher, STANDARD)

    def add_child_watch(self, path: str, watcher: Hashable) -> None:
        """One-shot child watch (getChildren with watch=true)."""
        _add(self._child, self._wchild, path, watcher, STANDARD)

    def add_watch(self, path: str, watcher: Hashable, mode: int) -> None:
        """addWatch: ``mode`` is :class:`~trio_quorum.protocol.consts.AddWatchMode`.

        Raises ValueError for an unknown mode (the caller answers BADARGUMENTS).
        """
        if mode == AddWatchMode.PERSISTENT:
            _add(self._data, self._wdata, path, watcher, PERSISTENT)
            _add(self._child, self._wchild, path, watcher, PERSISTENT)
        elif mode == AddWatchMode.PERSISTENT_RECURSIVE:
            if _add(self._data, self._wdata, path, watcher, PERSISTENT_RECURSIVE):
                self._recursive += 1
        else:
            raise ValueError(f"unknown addWatch mode {mode}")

    # ------------------------------------------------------------ trigger

    def trigger(self, path: str, event_type: int, zxid: int = -1) -> list[WatchEvent]:
        """Fire the watches a change of ``path`` triggers and return the events.

        ``event_type`` is the change: NodeCreated (also fires the parent's
        NodeChildrenChanged), NodeDeleted (data and child watchers of the path
        once, then the parent's NodeChildrenChanged), NodeDataChanged, or
        NodeChildrenChanged (child watchers of ``path``).  ``zxid`` is the
        change's zxid; every event of one change shares it, so it is not
        repeated per event (the caller sends it in the notification header).
        """
        if not self._data and not self._child:
            return []
        out: list[WatchEvent] = []
        if event_type == _NODE_DELETED:
            seen = self._fire(self._data, self._wdata, path, _NODE_DELETED, out, None)
            self._fire(self._child, self._wchild, path, _NODE_DELETED, out, seen)
            self._fire(
                self._child, self._wchild, parent_path(path), _NODE_CHILDREN_CHANGED, out, None
            )
        elif event_type == _NODE_CREATED:
            self._fire(self._data, self._wdata, path, _NODE_CREATED, out, None)
            self._fire(
                self._child, self._wchild, parent_path(path), _NODE_CHILDREN_CHANGED, out, None
            )
        elif event_type == _NODE_CHILDREN_CHANGED:
            self._fire(self._child, self._wchild, path, _NODE_CHILDREN_CHANGED, out, None)
        else:
            self._fire(self._data, self._wdata, path, event_type, out, None)
        return out

    def _fire(
        self,
        table: _Table,
        rev: _Reverse,
        path: str,
        event_type: int,
        out: list[WatchEvent],
        suppress: dict[Hashable, None] | None,
    ) -> dict[Hashable, None] | None:
        """One table's ``triggerWatch``; returns the watchers it chose."""
        fired: dict[Hashable, None] | None = None
        ws = table.get(path)
        if ws is not None:
            fired = {}
            done: list[Hashable] = []
            for w, flags in ws.items():
                fired[w] = None
                if flags & STANDARD:
                    flags &= ~STANDARD
                    if flags:
                        ws[w] = flags
                    else:
                        done.append(w)
            for w in done:
                _unwatch(table, rev, path, w)
        if self._recursive and table is self._data and event_type != _NODE_CHILDREN_CHANGED:
            p = path
            while p != "/":
                p = parent_path(p)
                ws = table.get(p)
                if ws is None:
                    continue
                for w, flags in ws.items():
                    if flags & PERSISTENT_RECURSIVE:
                        if fired is None:
                            fired = {}
                        fired[w] = None
        if fired:
            for w in fired:
                if suppress is None or w not in suppress:
                    out.append((w, event_type, path))
        return fired

    # ------------------------------------------------------------ remove / check

    def remove_watcher(self, watcher: Hashable) -> None:
        """Drop every watch of ``watcher`` (its connection closed)."""
        for table, rev in ((self._data, self._wdata), (self._child, self._wchild)):
            paths = rev.pop(watcher, None)
            if not paths:
                continue
            for p in paths:
                ws = table.get(p)
                if ws is None:
                    continue
                flags = ws.pop(watcher, 0)
                if flags & PERSISTENT_RECURSIVE:
                    self._recursive -= 1
                if not ws:
                    del table[p]

    def _remove_mode(
        self, table: _Table, rev: _Reverse, path: str, watcher: Hashable, mask: int
    ) -> bool:
        ws = table.get(path)
        if ws is None:
            return False
        old = ws.get(watcher, 0)
        if not old & mask:
            return False
        new = old & ~mask
        if old & PERSISTENT_RECURSIVE and not new & PERSISTENT_RECURSIVE:
            self._recursive -= 1
        if new:
            ws[watcher] = new
        else:
            _unwatch(table, rev, path, watcher)
        return True

    def remove_watches(self, path: str, watcher_type: int, watcher: Hashable) -> bool:
        """removeWatches (``DataTree.removeWatch``): True if something was removed.

        ``watcher_type`` is :class:`~trio_quorum.protocol.consts.WatcherType`.  The
        caller answers NOWATCHER on False.  Raises ValueError for an unknown type.
        """
        d, c, wd, wc = self._data, self._child, self._wdata, self._wchild
        all_modes = STANDARD | PERSISTENT | PERSISTENT_RECURSIVE
        if watcher_type == WatcherType.Children:
            return self._remove_mode(c, wc, path, watcher, STANDARD)
        if watcher_type == WatcherType.Data:
            return self._remove_mode(d, wd, path, watcher, STANDARD)
        if watcher_type == WatcherType.Any:
            r1 = self._remove_mode(c, wc, path, watcher, all_modes)
            r2 = self._remove_mode(d, wd, path, watcher, all_modes)
            return r1 or r2
        if watcher_type == WatcherType.Persistent:
            r1 = self._remove_mode(c, wc, path, watcher, PERSISTENT)
            r2 = self._remove_mode(d, wd, path, watcher, PERSISTENT)
            return r1 or r2
        if watcher_type == WatcherType.PersistentRecursive:
            return self._remove_mode(d, wd, path, watcher, PERSISTENT_RECURSIVE)
        raise ValueError(f"unknown watcher type {watcher_type}")

    def check_watches(self, path: str, watcher_type: int, watcher: Hashable) -> bool:
        """checkWatches (``DataTree.containsWatcher``): is such a watch registered?"""
        d = self._data.get(path, {}).get(watcher, 0)
        c = self._child.get(path, {}).get(watcher, 0)
        # ZooKeeper 3.8 looks the watcher up in the child or data table whatever
        # its mode, so a persistent watch answers a Children or Data check too.
        if watcher_type == WatcherType.Children:
            return bool(c)
        if watcher_type == WatcherType.Data:
            return bool(d)
        if watcher_type == WatcherType.Any:
            return bool(d or c)
        if watcher_type == WatcherType.Persistent:
            return bool(d & PERSISTENT)
        if watcher_type == WatcherType.PersistentRecursive:
            return bool(d & PERSISTENT_RECURSIVE)
        raise ValueError(f"unknown watcher type {watcher_type}")

    # ------------------------------------------------------------ reconnect

    def set_watches(
        self,
        nodes: Mapping[str, _HasZxids] | Callable[[str], _HasZxids | None],
        relative_zxid: int,
        data_watches: Iterable[str],
        exist_watches: Iterable[str],
        child_watches: Iterable[str],
        watcher: Hashable,
        persistent_watches: Iterable[str] = (),
        persistent_recursive_watches: Iterable[str] = (),
    ) -> list[WatchEvent]:
        """``DataTree.setWatches``: re-register a reconnecting client's watches.

        ``nodes`` is the tree's node map (or a ``get_node`` function).  Returns
        the events to send at once for changes the client missed:

        * data watch: node gone -> NodeDeleted; ``mzxid > relative_zxid`` ->
          NodeDataChanged; otherwise re-registered.
        * exist watch: node exists -> NodeCreated; otherwise re-registered.
        * child watch: node gone -> NodeDeleted; ``pzxid > relative_zxid`` ->
          NodeChildrenChanged; otherwise re-registered.
        * persistent and persistent-recursive: re-registered, no event.
        """
        get = nodes if callable(nodes) else nodes.get
        out: list[WatchEvent] = []
        for path in data_watches:
            n = get(path)
            if n is None:
                out.append((watcher, _NODE_DELETED, path))
            elif n.mzxid > relative_zxid:
                out.append((watcher, _NODE_DATA_CHANGED, path))
            else:
                self.add_data_watch(path, watcher)
        for path in exist_watches:
            if get(path) is not None:
                out.append((watcher, _NODE_CREATED, path))
            else:
                self.add_data_watch(path, watcher)
        for path in child_watches:
            n = get(path)
            if n is None:
                out.append((watcher, _NODE_DELETED, path))
            elif n.pzxid > relative_zxid:
                out.append((watcher, _NODE_CHILDREN_CHANGED, path))
            else:
                self.add_child_watch(path, watcher)
        for path in persistent_watches:
            self.add_watch(path, watcher, AddWatchMode.PERSISTENT)
        for path in persistent_recursive_watches:
            self.add_watch(path, watcher, AddWatchMode.PERSISTENT_RECURSIVE)
        return out

    # ------------------------------------------------------------ monitoring

    def watch_count(self) -> int:
        """Data + child watch entries (``DataTree.getWatchCount``, mntr zk_watch_count)."""
        return sum(len(ws) for ws in self._data.values()) + sum(
            len(ws) for ws in self._child.values()
        )

    def recursive_count(self) -> int:
        return self._recursive

    def summary(self) -> WatchesSummary:
        """``wchs``: connections / paths / watches of the *data* table, as ZooKeeper reports."""
        return WatchesSummary(
            (len(self._wdata), len(self._data), sum(len(p) for p in self._wdata.values()))
        )

    def by_watcher(self) -> dict[Hashable, set[str]]:
        """``wchc``: watcher -> watched paths (data table, as ZooKeeper's report)."""
        return {w: set(p) for w, p in self._wdata.items()}

    def by_path(self) -> dict[str, set[Hashable]]:
        """``wchp``: path -> watchers (data table, as ZooKeeper's report)."""
        return {p: set(ws) for p, ws in self._data.items()}

    def child_by_path(self) -> dict[str, set[Hashable]]:
        """Child-table view (not part of ZooKeeper's reports; for tests and the live view)."""
        return {p: set(ws) for p, ws in self._child.items()}

    def watches_of(self, watcher: Hashable) -> tuple[set[str], set[str]]:
        """(data paths, child paths) watched by ``watcher``."""
        return set(self._wdata.get(watcher, ())), set(self._wchild.get(watcher, ()))
