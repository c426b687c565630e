"""Plain records of the protocol shared by every layer: Id, ACL, Stat, TTL owner helpers (sans-IO).

The tree's own node and ACL cache live in ``core/node.py``.
"""

from __future__ import annotations

__sans_io__ = True

import struct
from typing import NamedTuple

from .consts import EPHEMERAL_CONTAINER, Perm
from .jute import Reader, Writer

__all__ = [
    "Id",
    "ACL",
    "Stat",
    "OPEN_ACL_UNSAFE",
    "CREATOR_ALL_ACL",
    "READ_ACL_UNSAFE",
    "OPEN_UNSAFE_ACL_ID",
    "STAT_STRUCT",
    "read_acl",
    "write_acl",
    "read_stat",
    "write_stat",
    "is_ttl_owner",
    "ttl_owner",
    "ttl_of_owner",
]


class Id(NamedTuple):
    scheme: str
    id: str


class ACL(NamedTuple):
    perms: int
    id: Id


OPEN_ACL_UNSAFE: tuple[ACL, ...] = (ACL(Perm.ALL, Id("world", "anyone")),)
CREATOR_ALL_ACL: tuple[ACL, ...] = (ACL(Perm.ALL, Id("auth", "")),)
READ_ACL_UNSAFE: tuple[ACL, ...] = (ACL(Perm.READ, Id("world", "anyone")),)

#: ``ReferenceCountedACLCache.OPEN_UNSAFE_ACL_ID``: the id meaning OPEN_ACL_UNSAFE.
OPEN_UNSAFE_ACL_ID = -1


def read_acl(r: Reader) -> ACL:
    perms = r.read_int()
    return ACL(perms, Id(r.read_ustring(), r.read_ustring()))


def write_acl(w: Writer, acl: ACL) -> None:
    w.write_int(acl.perms)
    w.write_ustring(acl.id.scheme)
    w.write_ustring(acl.id.id)


#: Stat on the wire: czxid mzxid ctime mtime version cversion aversion ephemeralOwner dataLength numChildren pzxid
STAT_STRUCT = struct.Struct(">qqqqiiiqiiq")


class Stat(NamedTuple):
    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    version: int
    cversion: int
    aversion: int
    ephemeralOwner: int
    dataLength: int
    numChildren: int
    pzxid: int


def read_stat(r: Reader) -> Stat:
    pos = r._need(STAT_STRUCT.size)
    return Stat(*STAT_STRUCT.unpack_from(r.data, pos))


def write_stat(w: Writer, st: Stat) -> None:
    w.buf += STAT_STRUCT.pack(*st)


def is_ttl_owner(owner: int) -> bool:
    """True when an ``ephemeralOwner`` encodes a TTL (high byte 0xFF, not the container marker)."""
    return owner != EPHEMERAL_CONTAINER and (owner & 0xFF00000000000000) == 0xFF00000000000000


def ttl_owner(ttl_ms: int) -> int:
    """The signed ``ephemeralOwner`` ZooKeeper stores for a TTL node (``EphemeralType.TTL``)."""
    v = 0xFF00000000000000 | (ttl_ms & 0xFFFFFFFFFF)
    return v - (1 << 64)


def ttl_of_owner(owner: int) -> int:
    return owner & 0xFFFFFFFFFF
