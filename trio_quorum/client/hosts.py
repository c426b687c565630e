"""Parse a ZooKeeper connect string: ``"h1:2181,h2:2182/chroot"`` (sans-IO).

Rules (``ConnectStringParser``): hosts separated by commas, a port defaults to
2181, IPv6 literals go in brackets (``[::1]:2181``), an optional chroot follows
the first ``/`` and must be a valid absolute path without a trailing slash
(``/`` alone means no chroot).
"""

from __future__ import annotations

__sans_io__ = True

from dataclasses import dataclass

__all__ = ["ConnectString", "parse_connect_string", "DEFAULT_PORT"]

DEFAULT_PORT = 2181


@dataclass(frozen=True, slots=True)
class ConnectString:
    hosts: tuple[tuple[str, int], ...]
    #: "" when there is none; else "/a/b"
    chroot: str


def parse_connect_string(s: str) -> ConnectString:
    """Raises ValueError on an empty host list, a bad port or a bad chroot."""
    s = s.strip()
    slash = s.find("/")
    chroot = ""
    if slash >= 0:
        chroot = s[slash:]
        s = s[:slash]
        if chroot == "/":
            chroot = ""
        elif chroot.endswith("/") or "//" in chroot or any(
                part in (".", "..") for part in chroot.split("/")[1:]):
            raise ValueError(f"invalid chroot {chroot!r}")
    hosts: list[tuple[str, int]] = []
    for item in s.split(","):
        item = item.strip()
        if not item:
            continue
        if item.startswith("["):
            end = item.find("]")
            if end < 0:
                raise ValueError(f"bad IPv6 host {item!r}")
            host, rest = item[1:end], item[end + 1:]
            port_s = rest[1:] if rest.startswith(":") else ""
        elif item.count(":") == 1:
            host, port_s = item.split(":")
        else:
            host, port_s = item, ""
        try:
            port = int(port_s) if port_s else DEFAULT_PORT
        except ValueError:
            raise ValueError(f"bad port in {item!r}") from None
        if not 0 < port < 65536 or not host:
            raise ValueError(f"bad host {item!r}")
        hosts.append((host, port))
    if not hosts:
        raise ValueError("no hosts in the connect string")
    return ConnectString(tuple(hosts), chroot)
