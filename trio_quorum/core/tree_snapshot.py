"""The data tree as a snapshot sees it: the walk that writes one and the
rebuild that reads one (sans-IO).

:func:`walk` is ``DataTree.serializeNode``'s pre-order walk (the root first as
``""``, each node before its children, children in about the order a Java
``HashSet`` iterates them); :func:`load` is the node half of
``DataTree.deserialize``.  ``DataTree.snapshot_nodes`` and
``DataTree.load_snapshot`` are the public entry points.

Invariants: the walk tolerates changes between ``next()`` calls (a fuzzy
snapshot: a child deleted since its parent was reached is skipped, one added
since is not visited, every node comes after its parent); a load accepts a
node only after its parent and each path once, or raises ValueError.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from operator import mul as _mul
from typing import NamedTuple

from ..protocol.consts import EPHEMERAL_CONTAINER, TTL_MASK
from ..protocol.data import ACL, OPEN_UNSAFE_ACL_ID
from .node import AclCache, DataNode

__sans_io__ = True

__all__ = ["java_string_hash", "java_hashset_order", "walk", "load", "Loaded"]

_M32 = 0xFFFFFFFF
#: _POW31[n] = (31**(n-1), ..., 31, 1) mod 2**32: the weights of an n-char string.
_POW31: dict[int, tuple[int, ...]] = {}


def _pow31(n: int) -> tuple[int, ...]:
    w = _POW31.get(n)
    if w is None:
        w = tuple(pow(31, n - 1 - i, 1 << 32) for i in range(n))
        if n <= 512:
            _POW31[n] = w
    return w


def java_string_hash(s: str) -> int:
    """Java's ``String.hashCode`` as an unsigned 32-bit int (UTF-16 code units).

    ASCII names (nearly all) take a C-speed weighted sum; snapshots hash every
    child name of the tree, so this is on the snapshot's hot path.
    """
    if s.isascii():
        h: int = sum(map(_mul, s.encode(), _pow31(len(s))))
        return h & _M32
    h = 0
    for ch in s:
        o = ord(ch)
        if o > 0xFFFF:  # surrogate pair
            o -= 0x10000
            h = (31 * h + (0xD800 | (o >> 10))) & 0xFFFFFFFF
            o = 0xDC00 | (o & 0x3FF)
        h = (31 * h + o) & 0xFFFFFFFF
    return h


def java_hashset_order(names: Iterable[str]) -> list[str]:
    """Approximate iteration order of a ``java.util.HashSet<String>`` holding ``names``.

    ZooKeeper's ``DataNode`` children set starts at capacity 8 and doubles past
    a 0.75 load factor; iteration walks buckets in index order.  Within a
    bucket Java keeps insertion order, which we do not know, so ties go by name.
    """
    lst = list(names)
    n = len(lst)
    cap = 8
    while n > cap * 3 // 4:
        cap *= 2
    mask = cap - 1
    keyed = [((h ^ (h >> 16)) & mask, name) for name, h in zip(lst, map(java_string_hash, lst), strict=True)]
    keyed.sort()
    return [name for _, name in keyed]


def walk(nodes: dict[str, DataNode], java_order: bool) -> Iterator[tuple[str, DataNode]]:
    """``DataTree.snapshot_nodes`` (see there): a lazy pre-order walk of ``nodes``.

    A stack of iterators, one per node on the current path, each over a copy
    of that node's child-name set taken when the node is yielded (with
    ``java_order`` the Java ordering of those names is computed then too), so
    each ``next()`` is short.  Children are looked up when reached.
    """
    root = nodes.get("/")
    if root is None:
        return
    yield "", root
    # (path + "/", iterator over the child names still to visit)
    stack: list[tuple[str, Iterator[str]]] = []
    if root.children:
        names = java_hashset_order(root.children) if java_order else list(root.children)
        stack.append(("/", iter(names)))
    get = nodes.get
    while stack:
        base, names_it = stack[-1]
        for name in names_it:
            path = base + name
            node = get(path)
            if node is None:
                continue  # deleted since its parent was yielded
            yield path, node
            c = node.children
            if c:
                stack.append((path + "/", iter(java_hashset_order(c) if java_order else list(c))))
            break
        else:
            stack.pop()


class Loaded(NamedTuple):
    """What :func:`load` rebuilt: the fields of a ``DataTree`` it fills in."""

    nodes: dict[str, DataNode]
    acl_cache: AclCache
    ephemerals: dict[int, set[str]]
    containers: set[str]
    ttls: set[str]
    data_size: int


def load(acl_items: Iterable[tuple[int, Iterable[ACL]]], nodes_iter: Iterable[tuple[str, DataNode]]) -> Loaded:
    """Index a snapshot's ACL map and node stream (``DataTree.load_snapshot``).

    ``node.children`` is ignored and rebuilt.  Raises ValueError when a node's
    parent was not seen first (ZooKeeper's "Invalid Datatree"), for a path
    seen twice, and for a stream without a root.
    """
    nodes: dict[str, DataNode] = {}
    cache = AclCache()
    cache.load([(ref, tuple(acl)) for ref, acl in acl_items])
    ephemerals: dict[int, set[str]] = {}
    containers: set[str] = set()
    ttls: set[str] = set()
    size = 0
    # ACL usage counted in runs of equal ids (a snapshot's nodes mostly share
    # one): the same counts as ``add_usage`` per node, one dict update per run.
    usage: dict[int, int] = {}
    run_acl = 0
    run = 0
    # The parent of the previous node (siblings come in a row in a snapshot).
    last_parent_path: str | None = None
    last_parent: DataNode | None = None
    setdefault = nodes.setdefault
    get = nodes.get
    for path, node in nodes_iter:
        node.children = None
        acl = node.acl
        if acl != run_acl:
            if run:
                usage[run_acl] = usage.get(run_acl, 0) + run
            run_acl = acl
            run = 0
        run += 1
        if not path or path == "/":
            if "/" in nodes:
                raise ValueError("snapshot holds the root twice")
            nodes["/"] = node
            size += 1 + len(node.data)
            continue
        i = path.rfind("/")
        if i < 0:
            raise ValueError(f"Invalid Datatree, unable to find parent of path {path!r}")
        parent_path = path[:i]
        if parent_path == last_parent_path:
            parent = last_parent
        else:
            parent = get(parent_path or "/")
            last_parent_path = parent_path
            last_parent = parent
        if parent is None:
            raise ValueError(f"Invalid Datatree, unable to find parent of path {path!r}")
        if setdefault(path, node) is not node:
            raise ValueError(f"snapshot holds {path!r} twice")
        size += len(path) + len(node.data)
        name = path[i + 1 :]
        children = parent.children
        if children is None:
            parent.children = {name}
        else:
            children.add(name)
        owner = node.ephemeral_owner
        if owner:
            if owner == EPHEMERAL_CONTAINER:
                containers.add(path)
            elif owner < 0 and owner & TTL_MASK == TTL_MASK:
                ttls.add(path)
            else:
                s = ephemerals.get(owner)
                if s is None:
                    ephemerals[owner] = {path}
                else:
                    s.add(path)
    if run:
        usage[run_acl] = usage.get(run_acl, 0) + run
    add_usage = cache.add_usage
    for ref, count in usage.items():
        if ref != OPEN_UNSAFE_ACL_ID:  # add_usage ignores it
            for _ in range(count):
                add_usage(ref)
    if "/" not in nodes:
        raise ValueError("snapshot has no root node")
    cache.purge_unused()
    # A fuzzy snapshot may hold nodes whose ACL id is missing from its ACL
    # section (the ACL was new mid-walk); the log replay re-sets those.  Never
    # hand such an id out again for another ACL before that happens.
    cache.reserve_ids(max(usage, default=0))
    return Loaded(nodes, cache, ephemerals, containers, ttls, size)
