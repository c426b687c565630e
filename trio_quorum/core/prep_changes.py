"""Prep's outstanding changes: the nodes as they will be once every prepared
txn is applied (ZooKeeper's ``ChangeRecord`` list), sans-IO.

Prep runs ahead of the tree, so it reads a path here first and falls back to
the tree only for paths no prepared txn touched (:meth:`Outstanding._record`).
:class:`Outstanding` is the part of :class:`~trio_quorum.core.prep.Prep` that
keeps them; the per-op txn builders (:mod:`trio_quorum.core.prep_ops`) read
and add records through it.

Invariants:

* Records are kept in zxid order; ``by_path[p]`` is the newest record for
  ``p``.  Records are never mutated once added: :meth:`Outstanding._put` makes a new
  one for every change, and is the one place records are made and added.
* While a multi is being prepared, ``_undo`` logs every ``by_path`` entry an
  add replaced, so a failed multi leaves the changes exactly as they were.
* :meth:`Outstanding.released` drops the records of applied zxids only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ..protocol.consts import Err, KeeperError
from ..protocol.data import ACL, OPEN_ACL_UNSAFE, Id
from .acl import check as acl_check
from .node import AclCache, DataNode
from .paths import path_error

__sans_io__ = True

__all__ = ["ChangeRecord", "Outstanding", "TreeView", "parse_stats_track"]

_QUOTA_ROOT = "/zookeeper/quota"


class TreeView(Protocol):
    """What prep reads of the data tree (``trio_quorum.core.datatree.DataTree``)."""

    nodes: dict[str, DataNode]
    acl_cache: AclCache
    ephemerals: dict[int, set[str]]
    last_processed_zxid: int



@dataclass(slots=True, eq=False, repr=False)
class ChangeRecord:
    """A node as it will be once every prepared txn is applied (``ChangeRecord``).

    ``exists`` False marks a pending delete.  ``zxid`` -1 means "read from the
    tree" (such a record is never stored).  Prep stores records through
    :meth:`Outstanding._put` only, which makes them.
    """

    zxid: int
    path: str
    exists: bool
    data: bytes = b""
    acl: tuple[ACL, ...] = ()
    version: int = 0
    cversion: int = 0
    aversion: int = 0
    ephemeral_owner: int = 0
    child_count: int = 0

    def __repr__(self) -> str:
        if not self.exists:
            return f"ChangeRecord({self.zxid:#x}, {self.path!r}, deleted)"
        return (
            f"ChangeRecord({self.zxid:#x}, {self.path!r}, v={self.version}, cv={self.cversion}, "
            f"av={self.aversion}, owner={self.ephemeral_owner:#x}, children={self.child_count})"
        )


_new = object.__new__


def parse_stats_track(data: bytes) -> dict[str, int]:
    """Parse a quota node's ``StatsTrack`` text (``count=1,bytes=10[,countHardLimit=..]``)."""
    out: dict[str, int] = {}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return out
    for part in text.split(","):
        k, eq, v = part.partition("=")
        if eq:
            try:
                out[k.strip()] = int(v.strip())
            except ValueError:
                continue
    return out



class Outstanding:
    """The outstanding changes of a :class:`~trio_quorum.core.prep.Prep` (its base)."""

    tree: TreeView
    skip_acl: bool
    enforce_quota: bool
    _changes: deque[ChangeRecord]
    by_path: dict[str, ChangeRecord]
    _undo: list[tuple[str, ChangeRecord | None]] | None

    def released(self, zxid: int) -> int:
        """The tree has applied every txn up to ``zxid``: drop their records.

        Returns how many records were dropped.
        """
        q = self._changes
        by_path = self.by_path
        if q and q[-1].zxid <= zxid:
            # All of them (the common case): every record of by_path is in q.
            n = len(q)
            q.clear()
            by_path.clear()
            return n
        n = 0
        while q and q[0].zxid <= zxid:
            c = q.popleft()
            if by_path.get(c.path) is c:
                del by_path[c.path]
            n += 1
        return n

    def outstanding(self) -> int:
        """Number of outstanding change records (a metric)."""
        return len(self._changes)

    def record_for(self, path: str) -> ChangeRecord | None:
        """The node at ``path`` as prep sees it (``None`` if absent or pending delete)."""
        try:
            return self._record(path)
        except KeeperError:
            return None

    # -- outstanding changes ----------------------------------------------------

    def _record(self, path: str) -> ChangeRecord:
        """``getRecordForPath``: the newest view of ``path``, or NONODE.

        A record built from the tree has zxid -1; it is only read (a change
        of the node is a new record, :meth:`_put`).
        """
        rec = self.by_path.get(path)
        if rec is not None:
            if not rec.exists:
                raise KeeperError(Err.NONODE, path)
            return rec
        node = self.tree.nodes.get(path)
        if node is None:
            raise KeeperError(Err.NONODE, path)
        c = node.children
        return ChangeRecord(
            -1,
            path,
            True,
            node.data,
            self.tree.acl_cache.get(node.acl),
            node.version,
            node.cversion,
            node.aversion,
            node.ephemeral_owner,
            0 if c is None else len(c),
        )

    def _validate_known(self, path: str) -> None:
        """``validatePath`` for ops on an existing node: a path the tree or the
        outstanding changes hold was validated when it was created, so only
        unknown paths pay for the full check (same answers, cheaper)."""
        if (
            path not in self.by_path
            and path not in self.tree.nodes
            and path_error(path) is not None
        ):
            raise KeeperError(Err.BADARGUMENTS, path)

    def _exists(self, path: str) -> bool:
        rec = self.by_path.get(path)
        if rec is not None:
            return rec.exists
        return path in self.tree.nodes

    def _put(
        self, zxid: int, path: str, exists: bool, data: bytes = b"", acl: tuple[ACL, ...] = (),
        version: int = 0, cversion: int = 0, aversion: int = 0, ephemeral_owner: int = 0, child_count: int = 0,
    ) -> None:
        """Add the record of ``path`` as of ``zxid`` (a pending delete when not
        ``exists``): the one place records are made and added.

        The record's slots are stored here rather than through
        ``ChangeRecord(...)``: prep makes one or two per write, and the
        constructor call would cost as much again as the rest of this.  (At
        most three names per assignment: up to three, no tuple is made.)
        """
        rec: ChangeRecord = _new(ChangeRecord)
        rec.zxid, rec.path, rec.exists = zxid, path, exists
        rec.data, rec.acl, rec.version = data, acl, version
        rec.cversion, rec.aversion = cversion, aversion
        rec.ephemeral_owner, rec.child_count = ephemeral_owner, child_count
        self._changes.append(rec)
        by_path = self.by_path
        undo = self._undo
        if undo is not None:
            undo.append((path, by_path.get(path)))
        by_path[path] = rec

    def _child_removed(self, parent: ChangeRecord, zxid: int) -> None:
        """The parent's record once one of its children is deleted."""
        self._put(
            zxid, parent.path, True, parent.data, parent.acl, parent.version, parent.cversion,
            parent.aversion, parent.ephemeral_owner, parent.child_count - 1,
        )

    def _check_acl(
        self, acl: tuple[ACL, ...], perm: int, auth_ids: Sequence[Id], path: str
    ) -> None:
        if acl is OPEN_ACL_UNSAFE or self.skip_acl:
            return
        if not acl_check(acl, perm, auth_ids):
            raise KeeperError(Err.NOAUTH, path)

    # -- ops ------------------------------------------------------------------

    def _rollback(self, undo: list[tuple[str, ChangeRecord | None]]) -> None:
        q = self._changes
        for path, prev in reversed(undo):
            q.pop()
            if prev is None:
                self.by_path.pop(path, None)
            else:
                self.by_path[path] = prev

    # -- quotas ---------------------------------------------------------------

    def _check_quota(self, path: str, last_data: bytes | None, data: bytes) -> None:
        """``ZooKeeperServer.checkQuota``: hard limits of the nearest quota'd ancestor."""
        nodes = self.tree.nodes
        if path == "/zookeeper" or path.startswith("/zookeeper/"):
            return
        prefix = path
        limits = None
        while prefix and prefix != "/":
            limits = nodes.get(f"{_QUOTA_ROOT}{prefix}/zookeeper_limits")
            if limits is not None:
                break
            prefix = prefix[: prefix.rfind("/")]
        if limits is None:
            return
        lim = parse_stats_track(limits.data)
        stats_node = nodes.get(f"{_QUOTA_ROOT}{prefix}/zookeeper_stats")
        if stats_node is None:
            return
        cur = parse_stats_track(stats_node.data)
        count_diff = 1 if last_data is None else 0
        bytes_diff = len(data) - (0 if last_data is None else len(last_data))
        hard_count = lim.get("countHardLimit", -1)
        if count_diff and hard_count > -1 and cur.get("count", 0) + count_diff > hard_count:
            raise KeeperError(Err.QUOTAEXCEEDED, prefix)
        hard_bytes = lim.get("byteHardLimit", -1)
        if bytes_diff and hard_bytes > -1 and cur.get("bytes", 0) + bytes_diff > hard_bytes:
            raise KeeperError(Err.QUOTAEXCEEDED, prefix)


