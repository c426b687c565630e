"""Value parsers for the key table (:mod:`.keys`): text in, typed value out.

A value parser is ``(text, entry) -> value``; it raises :class:`BadValue`
with a message that does not repeat the key or line (the caller adds both
from ``entry``), and may add warnings through ``entry.warn``.  Parsers are
pure: relative paths resolve against ``entry.cwd``, never the process's.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .model import ALL_4LW, QuorumServer

__sans_io__ = True

__all__ = [
    "BadValue",
    "Entry",
    "ValueParser",
    "IndexParser",
    "address",
    "boolean",
    "choice",
    "integer",
    "long_index",
    "path",
    "port",
    "resolve",
    "server_line",
    "text",
]

LONG_MAX = 2**63 - 1
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


class BadValue(Exception):
    """An invalid value; ``args[0]`` says why (without the key or line)."""


@dataclass(slots=True)
class Entry:
    """One ``key=value`` line being parsed."""

    key: str  # as written
    name: str  # without a ``zookeeper.`` prefix
    line: int
    cwd: str
    #: The parsed ``N`` of an indexed key (``server.N``), else ``None``.
    index: Any = None
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        self.warnings.append(f"line {self.line}: {self.key}: {message}")


ValueParser = Callable[[str, Entry], Any]
IndexParser = Callable[[str], Any]


def integer(lo: int | None = None, hi: int | None = None) -> ValueParser:
    def parse(value: str, entry: Entry) -> int:
        try:
            v = int(value.strip(), 10)
        except ValueError:
            raise BadValue(f"{value!r} is not an integer") from None
        if lo is not None and v < lo:
            raise BadValue(f"{v} is below the minimum of {lo}")
        if hi is not None and v > hi:
            raise BadValue(f"{v} is above the maximum of {hi}")
        return v

    return parse


port = integer(0, 65535)


def boolean(value: str, entry: Entry) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise BadValue(f"{value!r} is not a boolean (true/false, yes/no)")


def text(value: str, entry: Entry) -> str:
    return value


def nonempty(what: str) -> ValueParser:
    def parse(value: str, entry: Entry) -> str:
        if not value:
            raise BadValue(f"empty {what}")
        return value

    return parse


def resolve(cwd: str, p: str) -> str:
    """``p`` against ``cwd`` (ZooKeeper's ``new File(p)``: relative to the working directory)."""
    return posixpath.normpath(posixpath.join(cwd, p))


def path(value: str, entry: Entry) -> str:
    if not value:
        raise BadValue("empty path")
    return resolve(entry.cwd, value)


def address(value: str, entry: Entry) -> str:
    """A host name or IP address; IPv6 may come in brackets."""
    if not value:
        raise BadValue("empty address")
    return value.strip("[]")


def choice(*options: str) -> ValueParser:
    def parse(value: str, entry: Entry) -> str:
        v = value.strip().lower()
        if v not in options:
            raise BadValue(f"{value!r} is not one of {', '.join(options)}")
        return v

    return parse


def long_index(lo: int = 0) -> IndexParser:
    """The ``N`` of ``server.N``/``group.N``/``weight.N``: a Java long, at least ``lo``."""

    def parse(index: str) -> int:
        try:
            v = int(index, 10)
        except ValueError:
            raise BadValue(f"{index!r} is not a number") from None
        if not lo <= v <= LONG_MAX:
            raise BadValue(f"{v} is not between {lo} and {LONG_MAX}")
        return v

    return parse


def _split_colons(spec: str) -> list[str]:
    """``a:b:c`` split on the colons outside ``[...]`` (IPv6 hosts come in brackets)."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in spec:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == ":" and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


_SERVER_FORM = "host:quorumPort:electionPort[:participant|:observer][;[clientAddr:]clientPort]"


def _port_of(what: str, value: str) -> int:
    try:
        return int(port(value, _NO_ENTRY))
    except BadValue as exc:
        raise BadValue(f"{what}: {exc.args[0]}") from None


def server_line(value: str, entry: Entry) -> QuorumServer:
    """``server.N``'s value (``entry.index`` is N), in ZooKeeper 3.8's grammar."""
    sid: int = entry.index
    server_part, *client_parts = value.split(";")
    if len(client_parts) > 1:
        raise BadValue(f"{value!r} does not have the form {_SERVER_FORM}")
    addresses: list[tuple[str, int, int]] = []
    role: str | None = None
    for spec in server_part.split("|"):
        parts = _split_colons(spec.strip())
        if len(parts) not in (3, 4):
            raise BadValue(f"{value!r} does not have the form {_SERVER_FORM}")
        host = parts[0].strip().strip("[]")
        if not host:
            raise BadValue("empty host")
        qport = _port_of("quorum port", parts[1].strip())
        eport = _port_of("election port", parts[2].strip())
        if qport == eport:
            raise BadValue(f"quorum and election port must be different (both {qport})")
        if len(parts) == 4:
            r = parts[3].strip().lower()
            if r not in ("participant", "observer"):
                raise BadValue(f"unrecognised peer type {parts[3]!r} (participant or observer)")
            if role is not None and r != role:
                raise BadValue(f"the addresses have different roles ({role}, {r})")
            role = r
        addresses.append((host, qport, eport))
    client_host: str | None = None
    client_port: int | None = None
    if client_parts:
        cparts = _split_colons(client_parts[0].strip())
        if len(cparts) > 2:
            raise BadValue(f"{value!r} does not have the form {_SERVER_FORM}")
        # A port alone means every interface, as ZooKeeper's QuorumServer reads it.
        client_host = cparts[0].strip().strip("[]") if len(cparts) == 2 else "0.0.0.0"
        client_port = _port_of("client port", cparts[-1].strip())
    host, qport, eport = addresses[0]
    return QuorumServer(
        sid, host, qport, eport, role or "participant", client_host, client_port,
        tuple(addresses) if len(addresses) > 1 else (),
    )


def fourlw_whitelist(value: str, entry: Entry) -> frozenset[str]:
    words = {w.strip() for w in value.split(",") if w.strip()}
    if "*" in words:
        return ALL_4LW
    unknown = sorted(w for w in words if w not in ALL_4LW)
    if unknown:
        entry.warn(f"unknown four-letter words ignored: {', '.join(unknown)}")
    # srvr is always on, as in ZooKeeper.
    return frozenset(w for w in words if w in ALL_4LW) | {"srvr"}


def snap_retain_count(value: str, entry: Entry) -> int:
    n: int = integer()(value, entry)
    if n < 3:
        entry.warn(f"{n} is below the minimum of 3; using 3")
        n = 3
    return n


def election_alg(value: str, entry: Entry) -> int:
    n: int = integer()(value, entry)
    if n != 3:
        raise BadValue(f"election algorithm {n} is not supported (only 3, fast leader election)")
    return n


def super_digest(value: str, entry: Entry) -> str:
    if ":" not in value:
        raise BadValue("expected user:base64digest")
    return value


def local_sessions(value: str, entry: Entry) -> bool:
    on = boolean(value, entry)
    if on:
        entry.warn("local sessions are not supported; all sessions are global")
    return on


def unsupported(message: str) -> ValueParser:
    def parse(value: str, entry: Entry) -> str:
        raise BadValue(message)

    return parse


def validated(parser: ValueParser) -> ValueParser:
    """Check the value with ``parser`` but keep the text (for keys kept only in ``raw``)."""

    def parse(value: str, entry: Entry) -> str:
        parser(value, entry)
        return value

    return parse


_NO_ENTRY = Entry(key="", name="", line=0, cwd="/")
