"""Quota bookkeeping of the data tree: ZooKeeper's ``StatsTrack`` text and the
``/zookeeper/quota`` statistics (sans-IO).

A path ``p`` has a quota when ``/zookeeper/quota<p>/zookeeper_limits`` exists
(ZooKeeper's ``PathTrie``); its ``zookeeper_stats`` sibling counts the nodes
and data bytes of ``p``'s subtree.  :class:`QuotaStats` is the part of
:class:`~trio_quorum.core.datatree.DataTree` that keeps those counts.

Invariants:

* ``quota_paths`` holds exactly the paths with a ``zookeeper_limits`` node
  (rebuilt by :meth:`QuotaStats._setup_quota` after a load).
* Stats nodes change data without touching version/mzxid, as in ZooKeeper,
  and a stats node ZooKeeper could not parse is left alone rather than
  failing the txn that moved it.
"""

from __future__ import annotations

import re

from .node import DataNode

__sans_io__ = True

__all__ = ["QUOTA_ROOT", "LIMIT_NODE", "STAT_NODE", "QuotaStats", "parse_stats_track", "format_stats_track"]

QUOTA_ROOT = "/zookeeper/quota"
LIMIT_NODE = "zookeeper_limits"
STAT_NODE = "zookeeper_stats"

_PAIRS_SEPARATOR = re.compile("[,;]+")


def parse_stats_track(text: str) -> dict[str, int]:
    """Parse ``StatsTrack`` text (``count=N,bytes=M[=;countHardLimit=..]``).

    Raises ValueError on text ZooKeeper could not parse either.
    """
    out: dict[str, int] = {}
    if not text:
        return out
    for pair in _PAIRS_SEPARATOR.split(text):
        kv = pair.split("=")
        while kv and kv[-1] == "":  # Java's String.split drops trailing empties
            kv.pop()
        if len(kv) < 2:
            if kv and pair.endswith("="):
                out[kv[0]] = -1
                continue
            raise ValueError(f"bad quota pair {pair!r}")
        out[kv[0]] = int(kv[1]) if kv[1] else -1
    return out


def format_stats_track(stats: dict[str, int]) -> str:
    """``StatsTrack.toString``: count and bytes first, other keys sorted after ``=``."""
    s = f"count={stats.get('count', -1)},bytes={stats.get('bytes', -1)}"
    extra = sorted(k for k in stats if k not in ("count", "bytes"))
    if extra:
        s += "=" + "".join(f";{k}={stats[k]}" for k in extra)
    return s


class QuotaStats:
    """The tree's quota statistics (a base of ``DataTree``, which owns the fields)."""

    nodes: dict[str, DataNode]
    quota_paths: set[str]
    _data_size: int

    def _quota_node_created(self, parent_name: str, child_name: str) -> None:
        """A node was created below ``QUOTA_ROOT``: a new limit or stats node."""
        if child_name == LIMIT_NODE:
            real = parent_name[len(QUOTA_ROOT) :]
            if real and real != "/":
                self.quota_paths.add(real)
        elif child_name == STAT_NODE:
            self._update_quota_for_path(parent_name[len(QUOTA_ROOT) :])

    def _quota_moved(self, path: str, bytes_diff: int, count_diff: int) -> None:
        """``path`` gained ``count_diff`` nodes and ``bytes_diff`` data bytes."""
        prefix = self._max_prefix_with_quota(path)
        if prefix is not None:
            self._update_quota_stat(prefix, bytes_diff, count_diff)

    def _max_prefix_with_quota(self, path: str) -> str | None:
        """``getMaxPrefixWithQuota``: the longest quota path that is ``path`` or its ancestor."""
        qp = self.quota_paths
        p = path
        while True:
            if p in qp:
                return p
            i = p.rfind("/")
            if i <= 0:
                return None
            p = p[:i]

    def _update_quota_stat(self, prefix: str, bytes_diff: int, count_diff: int) -> None:
        stat_path = QUOTA_ROOT + prefix + "/" + STAT_NODE
        node = self.nodes.get(stat_path)
        if node is None:
            return
        try:
            st = parse_stats_track(node.data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return  # ZooKeeper would throw; a bad stats node must not break the txn
        st["count"] = st.get("count", -1) + count_diff
        st["bytes"] = st.get("bytes", -1) + bytes_diff
        self._set_raw_data(node, format_stats_track(st).encode())

    def _update_quota_for_path(self, path: str) -> None:
        """Recount ``path``'s subtree into its ``zookeeper_stats`` node."""
        stat_node = self.nodes.get(QUOTA_ROOT + path + "/" + STAT_NODE)
        if stat_node is None:
            return
        count = 0
        nbytes = 0
        node = self.nodes.get(path)
        if node is not None:
            stack = [(path, node)]
            while stack:
                p, n = stack.pop()
                count += 1
                nbytes += len(n.data)
                for c in n.children or ():
                    cp = (p if p != "/" else "") + "/" + c
                    cn = self.nodes.get(cp)
                    if cn is not None:
                        stack.append((cp, cn))
        self._set_raw_data(stat_node, f"count={count},bytes={nbytes}".encode())

    def _set_raw_data(self, node: DataNode, data: bytes) -> None:
        # Quota stats change data without touching version/mzxid, as ZooKeeper does.
        self._data_size += len(data) - len(node.data)
        node.data = data

    def _setup_quota(self) -> None:
        """After a load: find every ``zookeeper_limits`` leaf and recount its path."""
        self.quota_paths.clear()
        quota = self.nodes.get(QUOTA_ROOT)
        if quota is None:
            return
        stack = [(QUOTA_ROOT, quota)]
        suffix = "/" + LIMIT_NODE
        while stack:
            p, n = stack.pop()
            if not n.children:
                if p.endswith(suffix):
                    real = p[len(QUOTA_ROOT) : p.index(suffix)]
                    if real and real != "/":
                        self.quota_paths.add(real)
                        self._update_quota_for_path(real)
                continue
            for c in n.children:
                cp = p + "/" + c
                cn = self.nodes.get(cp)
                if cn is not None:
                    stack.append((cp, cn))
