"""The data tree's node and ACL cache (sans-IO).

Memory matters here: a tree of a million znodes holds a million ``DataNode``s,
so the node is a slotted object, children sets are created lazily, and ACL
lists are interned through :class:`AclCache` (ZooKeeper's
``ReferenceCountedACLCache``) so every node stores one small int.
"""

from __future__ import annotations

__sans_io__ = True

from ..protocol.consts import EPHEMERAL_CONTAINER, TTL_MASK
from ..protocol.data import ACL, OPEN_ACL_UNSAFE, OPEN_UNSAFE_ACL_ID, STAT_STRUCT, Stat

__all__ = ["DataNode", "AclCache", "new_node"]

_pack_stat = STAT_STRUCT.pack  # every write's reply packs one


class DataNode:
    """One znode. ``acl`` is an id into the tree's :class:`AclCache`.

    Fields hold ZooKeeper's *persisted* values (``StatPersisted``, what a
    snapshot stores): ``cversion`` counts child creations and
    ``ephemeral_owner`` keeps the container/TTL markers.  :meth:`stat` and
    :meth:`stat_bytes` translate to what clients see.

    ``children`` holds child *names* (not paths) and is ``None`` while empty.
    """

    __slots__ = (
        "data",
        "acl",
        "czxid",
        "mzxid",
        "ctime",
        "mtime",
        "version",
        "cversion",
        "aversion",
        "ephemeral_owner",
        "pzxid",
        "children",
    )

    def __init__(
        self,
        data: bytes,
        acl: int,
        czxid: int,
        mzxid: int,
        ctime: int,
        mtime: int,
        version: int = 0,
        cversion: int = 0,
        aversion: int = 0,
        ephemeral_owner: int = 0,
        pzxid: int = 0,
    ) -> None:
        self.data = data
        self.acl = acl
        self.czxid = czxid
        self.mzxid = mzxid
        self.ctime = ctime
        self.mtime = mtime
        self.version = version
        self.cversion = cversion
        self.aversion = aversion
        self.ephemeral_owner = ephemeral_owner
        self.pzxid = pzxid
        self.children: set[str] | None = None

    def num_children(self) -> int:
        c = self.children
        return 0 if c is None else len(c)

    def client_ephemeral_owner(self) -> int:
        """``ephemeralOwner`` as clients see it: 0 for containers and TTL nodes
        (``DataNode.getClientEphemeralOwner``); the stored value otherwise."""
        eo = self.ephemeral_owner
        if eo < 0 and (eo == EPHEMERAL_CONTAINER or eo & TTL_MASK == TTL_MASK):
            return 0
        return eo

    def stat(self) -> Stat:
        """The client-visible Stat (``DataNode.copyStat``).

        ``self.cversion`` is the persisted count of child *creations*; clients
        see ``cversion * 2 - numChildren`` (every create has a delete except
        for the children still present), and ``ephemeralOwner`` 0 for
        containers and TTL nodes.
        """
        c = self.children
        n = 0 if c is None else len(c)
        return Stat(
            self.czxid,
            self.mzxid,
            self.ctime,
            self.mtime,
            self.version,
            self.cversion * 2 - n,
            self.aversion,
            self.client_ephemeral_owner(),
            len(self.data),
            n,
            self.pzxid,
        )

    def stat_bytes(self) -> bytes:
        """The 68-byte wire Stat (same values as :meth:`stat`), packed in one call."""
        c = self.children
        n = 0 if c is None else len(c)
        eo = self.ephemeral_owner
        if eo < 0 and (eo == EPHEMERAL_CONTAINER or eo & TTL_MASK == TTL_MASK):
            eo = 0
        return _pack_stat(
            self.czxid,
            self.mzxid,
            self.ctime,
            self.mtime,
            self.version,
            self.cversion * 2 - n,
            self.aversion,
            eo,
            len(self.data),
            n,
            self.pzxid,
        )


class AclCache:
    """Interns ACL lists as longs, reference counted (``ReferenceCountedACLCache``).

    Id ``-1`` is OPEN_ACL_UNSAFE and is never stored; other ids count up from 1.
    Snapshots write :meth:`items` and restore through :meth:`load`.
    """

    __slots__ = ("_by_id", "_by_acl", "_refs", "_next")

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[ACL, ...]] = {}
        self._by_acl: dict[tuple[ACL, ...], int] = {}
        self._refs: dict[int, int] = {}
        self._next = 0

    def intern(self, acl: tuple[ACL, ...] | list[ACL]) -> int:
        """Return the id for ``acl`` and count one more use of it."""
        key = tuple(acl)
        if key == OPEN_ACL_UNSAFE:
            return OPEN_UNSAFE_ACL_ID
        ref = self._by_acl.get(key)
        if ref is None:
            self._next += 1
            ref = self._next
            self._by_acl[key] = ref
            self._by_id[ref] = key
            self._refs[ref] = 0
        self._refs[ref] += 1
        return ref

    def get(self, ref: int) -> tuple[ACL, ...]:
        if ref == OPEN_UNSAFE_ACL_ID:
            return OPEN_ACL_UNSAFE
        try:
            return self._by_id[ref]
        except KeyError:
            raise KeyError(f"ACL id {ref} is not in the cache") from None

    def add_usage(self, ref: int) -> None:
        if ref == OPEN_UNSAFE_ACL_ID:
            return
        if ref in self._refs:
            self._refs[ref] += 1

    def release(self, ref: int) -> None:
        """Count one use fewer; drop the entry when nothing uses it."""
        if ref == OPEN_UNSAFE_ACL_ID or ref not in self._refs:
            return
        n = self._refs[ref] - 1
        if n <= 0:
            del self._refs[ref]
            acl = self._by_id.pop(ref)
            self._by_acl.pop(acl, None)
        else:
            self._refs[ref] = n

    def items(self) -> list[tuple[int, tuple[ACL, ...]]]:
        """(id, acl list) pairs in id order, for a snapshot."""
        return sorted(self._by_id.items())

    def load(self, items: list[tuple[int, list[ACL] | tuple[ACL, ...]]]) -> None:
        """Replace the cache with a snapshot's entries (reference counts start at 0;
        the tree adds one per node as it loads them)."""
        self._by_id.clear()
        self._by_acl.clear()
        self._refs.clear()
        self._next = 0
        for ref, acl in items:
            key = tuple(acl)
            self._by_id[ref] = key
            self._by_acl[key] = ref
            self._refs[ref] = 0
            self._next = max(self._next, ref)

    def reserve_ids(self, upto: int) -> None:
        """Never allocate an id <= ``upto`` (ids some node may still hold)."""
        if upto > self._next:
            self._next = upto

    def purge_unused(self) -> None:
        """Drop entries no node uses (after a snapshot load)."""
        for ref in [r for r, n in self._refs.items() if n <= 0]:
            del self._refs[ref]
            self._by_acl.pop(self._by_id.pop(ref), None)

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, ref: object) -> bool:
        return ref == OPEN_UNSAFE_ACL_ID or ref in self._by_id


#: ``DataNode(...)`` is ``_new(DataNode)`` + this: the same ``__init__`` called
#: as a plain function, which skips the class call (~25 ns of a node's ~100).
_init_node = DataNode.__init__
_new = object.__new__


def new_node(
    data: bytes,
    acl: int,
    czxid: int,
    mzxid: int,
    ctime: int,
    mtime: int,
    version: int,
    cversion: int,
    aversion: int,
    ephemeral_owner: int,
    pzxid: int,
) -> DataNode:
    """``DataNode(...)`` with every field given, for the loops that make many
    (a create, a snapshot restore)."""
    node: DataNode = _new(DataNode)
    _init_node(node, data, acl, czxid, mzxid, ctime, mtime, version, cversion, aversion, ephemeral_owner, pzxid)
    return node
