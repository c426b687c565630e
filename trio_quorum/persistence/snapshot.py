"""Snapshot format of Apache ZooKeeper 3.8 (``FileSnap`` / ``SnapStream``), sans-IO.

Grammar of ``dataDir/version-2/snapshot.<hex zxid>`` (uncompressed, "CHECKED" mode)::

    snapshot := FileHeader sessions acls nodes seal [digest seal] [lastZxid seal]
    FileHeader := int magic "ZKSN" (0x5A4B534E) | int version 2 | long dbid (-1)
    sessions := int count, (long sessionId, int timeoutMs)*
    acls     := int count, (long aclId, vector<ACL>)*        ReferenceCountedACLCache
    nodes    := (ustring path, buffer data, long aclId, StatPersisted)* ustring "/"
                pre-order; the root's path is "" and "/" ends the list
    seal     := long Adler32(every byte before the seal) | ustring "/"
    digest   := ZxidDigest{long zxid; int digestVersion; long digest}  (3.6+)
    lastZxid := long lastProcessedZxid                                  (3.9+)

The Adler32 runs over the whole stream, so the second seal covers the first.
``FileSnap`` names the file after the tree's lastProcessedZxid when the
snapshot *started*; snapshots are fuzzy and the log is replayed over them.

ZooKeeper 3.8 with ``digest.enabled`` (the default) writes the digest section;
a digest whose zxid is 0 means "no digest to compare" and is what we write
unless a real tree digest is supplied, so ZooKeeper never reports a digest
mismatch for our snapshots.

Invariants of this module: no IO; every length read from a snapshot is bounded
by the data; a snapshot whose seal does not match raises
:class:`CorruptStorage` (the caller then falls back to an older snapshot).
"""

from __future__ import annotations

import gc
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.node import DataNode, new_node
from ..protocol.data import ACL, read_acl
from ..protocol.jute import JuteError, Reader
from .api import CorruptStorage

if TYPE_CHECKING:
    from ..core.datatree import DataTree

__sans_io__ = True

__all__ = [
    "SNAP_MAGIC",
    "SNAP_PREFIX",
    "DIGEST_VERSION",
    "ZxidDigest",
    "Snapshot",
    "encode_snapshot",
    "decode_snapshot",
    "snapshot_name",
    "looks_complete",
    "encode_snapshot_bytes",
    "load_snapshot_bytes",
    "adopt_tree",
]

SNAP_MAGIC = 0x5A4B534E  # "ZKSN"
SNAP_PREFIX = "snapshot"
DIGEST_VERSION = 2

_FILE_HEADER = struct.Struct(">iiq")
_INT = struct.Struct(">i")
_LONG = struct.Struct(">q")
_SESSION = struct.Struct(">qi")
# aclId + StatPersisted{czxid mzxid ctime mtime version cversion aversion ephemeralOwner pzxid}
_NODE_TAIL = struct.Struct(">qqqqqiiiqq")
# the same, plus the length of the next path (every node is followed by one: the end marker's "/")
_NODE_TAIL_NEXT = struct.Struct(">qqqqqiiiqqi")
_SEAL_PATH = b"\x00\x00\x00\x01/"
_DIGEST = struct.Struct(">qiq")


def snapshot_name(zxid: int) -> str:
    return f"{SNAP_PREFIX}.{zxid:x}"


def looks_complete(tail: bytes) -> bool:
    """``SnapStream.isValidCheckedStream``: the last 5 bytes are the seal's ``"/"``."""
    return tail[-5:] == _SEAL_PATH


@dataclass(frozen=True, slots=True)
class ZxidDigest:
    zxid: int
    version: int
    digest: int


@dataclass(slots=True)
class Snapshot:
    """A decoded snapshot.  The nodes are two parallel lists in snapshot order
    (``paths[i]`` is the path of ``znodes[i]``; the root's path is ``""``):
    no 1M-tuple list to allocate, fragment the heap with and free again."""

    dbid: int
    sessions: dict[int, int]
    acls: list[tuple[int, list[ACL]]]
    paths: list[str]
    znodes: list[DataNode]
    digest: ZxidDigest | None
    last_zxid: int | None

    @property
    def nodes(self) -> list[tuple[str, DataNode]]:
        """``(path, node)`` pairs in snapshot order (a new list; for tools and tests)."""
        return list(zip(self.paths, self.znodes, strict=True))

    def iter_nodes(self) -> Iterator[tuple[str, DataNode]]:
        """``(path, node)`` pairs in snapshot order, lazily (what ``DataTree.load_snapshot`` takes)."""
        return zip(self.paths, self.znodes, strict=True)


def _acl_bytes(acl: Iterable[ACL]) -> bytes:
    acl = list(acl)
    parts = [_INT.pack(len(acl))]
    for a in acl:
        s, i = a.id.scheme.encode(), a.id.id.encode()
        parts += (_INT.pack(a.perms), _INT.pack(len(s)), s, _INT.pack(len(i)), i)
    return b"".join(parts)


def encode_snapshot(
    sessions: dict[int, int],
    acls: Iterable[tuple[int, Iterable[ACL]]],
    nodes: Iterable[tuple[str, DataNode]],
    *,
    digest: ZxidDigest | None = None,
    dbid: int = -1,
    chunk_size: int = 1 << 20,
    last_zxid: int | None = None,
) -> Iterator[bytes]:
    """Yield a snapshot's bytes in chunks of about ``chunk_size``.

    ``nodes`` is consumed lazily, one chunk per ``next()``, so a caller can
    interleave serialisation with other work (the fuzzy snapshot).  ``digest``
    ``None`` writes the empty ZxidDigest ZooKeeper writes when it has none.
    ``last_zxid`` adds 3.9's lastProcessedZxid section (3.8 ignores what
    follows the digest seal), so the bytes carry their zxid.
    """
    crc = 1  # Adler32 initial value
    buf = bytearray(_FILE_HEADER.pack(SNAP_MAGIC, 2, dbid))
    buf += _INT.pack(len(sessions))
    for sid, timeout in list(sessions.items()):
        buf += _SESSION.pack(sid, timeout)
    acls = list(acls)
    buf += _INT.pack(len(acls))
    for ref, acl in acls:
        buf += _LONG.pack(ref)
        buf += _acl_bytes(acl)
    pack_int = _INT.pack
    pack_tail = _NODE_TAIL.pack
    for path, n in nodes:
        pb = path.encode()
        d = n.data
        buf += pack_int(len(pb))
        buf += pb
        buf += pack_int(len(d))
        buf += d
        buf += pack_tail(
            n.acl, n.czxid, n.mzxid, n.ctime, n.mtime, n.version, n.cversion, n.aversion, n.ephemeral_owner, n.pzxid
        )
        if len(buf) >= chunk_size:
            crc = zlib.adler32(buf, crc)
            yield bytes(buf)
            buf.clear()
    buf += _SEAL_PATH
    crc = zlib.adler32(buf, crc)
    seal = _LONG.pack(crc) + _SEAL_PATH
    crc = zlib.adler32(seal, crc)
    zd = digest or ZxidDigest(0, DIGEST_VERSION, 0)
    tail = _DIGEST.pack(zd.zxid, zd.version, zd.digest)
    crc = zlib.adler32(tail, crc)
    seal2 = _LONG.pack(crc) + _SEAL_PATH
    tail += seal2
    if last_zxid is not None:
        # each seal sums everything after the previous seal's checksum: seal2 too
        zx = _LONG.pack(last_zxid)
        crc = zlib.adler32(seal2 + zx, crc)
        tail += zx + _LONG.pack(crc) + _SEAL_PATH
    yield bytes(buf) + seal + tail


def _check_seal(data: bytes | memoryview, r: Reader, name: str, crc: list[int]) -> None:
    """Check the seal at ``r.pos``; ``crc`` is ``[adler32 so far, bytes it covers]``
    (updated: each seal only sums the bytes after the previous one, through a
    memoryview, never a copy of the file)."""
    pos = r.pos
    crc[0] = want = zlib.adler32(memoryview(data)[crc[1] : pos], crc[0])
    crc[1] = pos
    val = r.read_long()
    if r.read_ustring_nullable() != "/":
        raise CorruptStorage(f"{name}: bad seal at offset {pos}")
    if val & 0xFFFFFFFF != want or val >> 32:
        raise CorruptStorage(f"{name}: checksum mismatch at offset {pos} (CRC corruption)")


def decode_snapshot(data: bytes | memoryview, name: str = "snapshot") -> Snapshot:
    """Parse and verify a whole snapshot.

    Raises:
        CorruptStorage: wrong magic, truncated data, a bad length or a seal that
            does not match.
    """
    r = Reader(data, max_len=len(data))
    try:
        magic, version, dbid = _FILE_HEADER.unpack_from(data, r._need(_FILE_HEADER.size))
        if magic != SNAP_MAGIC:
            raise CorruptStorage(f"{name}: mismatching magic headers {magic:#x} != {SNAP_MAGIC:#x}")
        count = r.read_int()
        if count < 0 or count * _SESSION.size > r.remaining():
            raise CorruptStorage(f"{name}: bad session count {count}")
        sessions: dict[int, int] = {}
        for _ in range(count):
            sid, timeout = _SESSION.unpack_from(data, r._need(_SESSION.size))
            sessions[sid] = timeout
        count = r.read_int()
        if count < 0 or count * 12 > r.remaining():
            raise CorruptStorage(f"{name}: bad ACL cache size {count}")
        acls: list[tuple[int, list[ACL]]] = []
        for _ in range(count):
            ref = r.read_long()
            acl = r.read_vector_nullable(read_acl)
            if acl is None:
                raise CorruptStorage(f"{name}: missing acls for id {ref}")
            acls.append((ref, acl))
        paths: list[str] = []
        znodes: list[DataNode] = []
        if isinstance(data, bytes):
            # Fast path: stops (leaving r.pos at the start of that node) at
            # anything unusual, which the general loop below then reads (and
            # raises on, with its messages).
            gc_was_enabled = gc.isenabled()
            # ~1M new tracked objects and no garbage: collections would only
            # scan them (~0.3 s at 1M znodes with the server's thresholds).
            gc.disable()
            try:
                r.pos = _decode_nodes_fast(data, r.pos, paths, znodes)
            finally:
                if gc_was_enabled:
                    gc.enable()
        add_path = paths.append
        add_node = znodes.append
        unpack_tail = _NODE_TAIL.unpack_from
        tail_size = _NODE_TAIL.size
        read_path = r.read_ustring
        read_buffer = r.read_buffer
        need = r._need
        while True:
            path = read_path()
            if path == "/":
                break
            d = read_buffer()
            add_path(path)
            add_node(DataNode(d, *unpack_tail(data, need(tail_size))))
        crc = [1, 0]  # Adler32's initial value, over no bytes yet
        _check_seal(data, r, name, crc)
        digest = None
        last_zxid = None
        if r.remaining() >= 12:
            zxid, dversion = r.read_long(), r.read_int()
            if dversion < 2:
                s = r.read_ustring_nullable()
                dval = int(s, 16) if s else 0
            else:
                dval = r.read_long()
            _check_seal(data, r, name, crc)
            digest = ZxidDigest(zxid, dversion, dval)
            if r.remaining() >= 8 + len(_SEAL_PATH) + 8:
                last_zxid = r.read_long()
                _check_seal(data, r, name, crc)
    except JuteError as exc:
        raise CorruptStorage(f"{name}: {exc}") from exc
    except ValueError as exc:  # int(s, 16) on garbage
        raise CorruptStorage(f"{name}: bad digest: {exc}") from exc
    return Snapshot(dbid, sessions, acls, paths, znodes, digest, last_zxid)


def _decode_nodes_fast(data: bytes, pos: int, paths: list[str], znodes: list[DataNode]) -> int:
    """Decode the node list from ``pos`` up to, not including, the ``"/"`` end marker.

    Appends to ``paths`` and ``znodes``; returns the offset of the first node
    it did not decode: the end marker's length field, or the start of a node
    it leaves to the general decoder (a null or negative length, one past the
    end, invalid UTF-8), which reads it and raises the usual error.  Exactly
    the nodes the general decoder would build, with three shortcuts that no
    reader can observe: one ``unpack_from`` per node (tail + next path
    length), equal ints shared within a node (mzxid/pzxid with czxid, mtime
    with ctime: ~32 bytes each, 1M nodes mostly have them equal), and a data
    value equal to the previous node's shares its ``bytes`` object.
    """
    end = len(data)
    unpack_int = _INT.unpack_from
    unpack = _NODE_TAIL_NEXT.unpack_from
    tail = _NODE_TAIL.size
    tail_next = _NODE_TAIL_NEXT.size
    add_path = paths.append
    add_node = znodes.append
    startswith = data.startswith
    prev = b""
    prev_len = 0
    if pos + 4 > end:
        return pos
    (n,) = unpack_int(data, pos)
    while True:
        # pos: the node's path length field, whose value is n
        p = pos + 4
        q = p + n
        if n < 0 or q + 4 > end:
            return pos
        if n == 1 and data[p] == 0x2F:  # "/": the end of the node list
            return pos
        try:
            path = data[p:q].decode()
        except UnicodeDecodeError:
            return pos
        (dlen,) = unpack_int(data, q)
        q += 4
        if dlen <= 0:
            if dlen < -1:
                return pos
            d = b""
        else:
            if dlen == prev_len and startswith(prev, q):
                d = prev
            else:
                d = data[q : q + dlen]
                prev = d
                prev_len = dlen
            q += dlen
        if q + tail_next > end:  # the tail and the next path's length
            return pos
        acl, czxid, mzxid, ctime, mtime, version, cversion, aversion, owner, pzxid, n = unpack(data, q)
        node = new_node(
            d,
            acl,
            czxid,
            czxid if mzxid == czxid else mzxid,
            ctime,
            ctime if mtime == ctime else mtime,
            version,
            cversion,
            aversion,
            owner,
            czxid if pzxid == czxid else pzxid,
        )
        add_path(path)
        add_node(node)
        pos = q + tail


# -- whole snapshots in memory (SNAP) -------------------------------------------


def encode_snapshot_bytes(tree: DataTree, sessions_timeouts: dict[int, int], zxid: int | None = None) -> bytes:
    """A whole snapshot of ``tree`` in ZooKeeper's file format, carrying its zxid.

    ``zxid`` (default ``tree.last_processed_zxid``) is written in the trailing
    lastProcessedZxid section, which :func:`load_snapshot_bytes` returns.
    Blocking in proportion to the tree (a caller with an event loop to keep
    responsive uses :func:`encode_snapshot` chunk by chunk instead).
    """
    z = tree.last_processed_zxid if zxid is None else zxid
    return b"".join(
        encode_snapshot(dict(sessions_timeouts), tree.acl_cache.items(), tree.snapshot_nodes(java_order=False),
                        last_zxid=z)
    )


def load_snapshot_bytes(
    data: bytes, tree: DataTree, sessions: dict[int, int], zxid: int | None = None, name: str = "snapshot"
) -> int:
    """Replace ``tree``'s content and ``sessions`` with a received snapshot; return its zxid.

    The zxid is ``zxid`` if given, else the snapshot's lastProcessedZxid
    section (:func:`encode_snapshot_bytes` writes one, ZooKeeper 3.9 too).
    ``tree`` keeps its identity and watch-event ACL filter (:func:`adopt_tree`);
    nothing is changed when the data is refused.

    Raises:
        CorruptStorage: the bytes do not decode, a seal does not match, the
            tree is invalid, or no zxid is known (neither given nor carried).
    """
    snap = decode_snapshot(data, name)
    z = zxid if zxid is not None else snap.last_zxid
    if z is None:
        raise CorruptStorage(f"{name}: the snapshot does not carry its zxid and none was given")
    try:
        loaded = type(tree).load_snapshot(snap.acls, snap.iter_nodes(), z)
    except (KeyError, ValueError) as exc:
        raise CorruptStorage(f"{name}: invalid data tree: {exc}") from exc
    adopt_tree(tree, loaded)
    sessions.clear()
    sessions.update(snap.sessions)
    return z


def adopt_tree(tree: DataTree, loaded: DataTree) -> None:
    """Make ``tree`` hold what ``loaded`` holds (``DataTree.load_snapshot`` builds a new tree;
    restore fills the caller's).  The caller's watch-event ACL filter survives."""
    if loaded is not tree and loaded is not None:
        keep = tree.watch_acl_filter
        tree.__dict__.clear()
        tree.__dict__.update(loaded.__dict__)
        tree.watch_acl_filter = keep
