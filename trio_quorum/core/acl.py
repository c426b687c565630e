"""ACL checks and the built-in auth schemes (sans-IO).

``check(acl, perm, auth_ids)`` is ZooKeeper's ``PrepRequestProcessor.checkACL``:
an empty ACL list allows everything; the super id (``Id("super", "")``)
passes every check; otherwise some entry must carry the permission bit and
match one of the caller's authenticated ids (``world:anyone`` matches all,
``ip`` entries match by address prefix, other schemes by exact id).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Iterable

from ..protocol.data import ACL, Id

__sans_io__ = True

__all__ = ["SUPER_ID", "WORLD_ANYONE", "check", "digest_id", "ip_matches"]

SUPER_ID = Id("super", "")
WORLD_ANYONE = Id("world", "anyone")


def digest_id(user_password: str) -> str:
    """``DigestAuthenticationProvider.generateDigest``: ``user:base64(sha1(user:password))``."""
    user = user_password.split(":", 1)[0]
    digest = base64.b64encode(hashlib.sha1(user_password.encode("utf-8")).digest()).decode("ascii")
    return f"{user}:{digest}"


def ip_matches(pattern: str, addr: str) -> bool:
    """``IPAuthenticationProvider.matches``: ``addr`` within ``pattern`` (``a.b.c.d[/bits]``)."""
    try:
        net = ipaddress.ip_network(pattern, strict=False)
        return ipaddress.ip_address(addr) in net
    except ValueError:
        return False


def check(acl: Iterable[ACL], perm: int, auth_ids: Iterable[Id]) -> bool:
    """True when ``auth_ids`` may perform ``perm`` on a node whose ACL is ``acl``."""
    acl = tuple(acl)
    if not acl:
        return True
    ids = tuple(auth_ids)
    if SUPER_ID in ids:
        return True
    for entry in acl:
        if not entry.perms & perm:
            continue
        eid = entry.id
        if eid.scheme == "world" and eid.id == "anyone":
            return True
        for aid in ids:
            if aid.scheme != eid.scheme:
                continue
            if eid.scheme == "ip":
                if ip_matches(eid.id, aid.id):
                    return True
            elif aid.id == eid.id:
                return True
    return False
