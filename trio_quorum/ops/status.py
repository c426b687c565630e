"""``trio-quorum status HOST:PORT...``: each server's mode, zxid, connections and outstanding requests.

Asks ``srvr`` (allowed by default) and ``mntr`` (when whitelisted: adds the
znode count and, on a leader, its synced followers) over the client port,
one server after the other, each bounded by ``--timeout``.

Invariants: never raises for an unreachable or odd server: each gets one
line saying what it answered (``unreachable: Connection refused``, ``not
serving``, ``srvr not in 4lw.commands.whitelist``); the exit code is 0 only
when every server is serving.
"""

from __future__ import annotations

import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from . import EXIT_CONFIG, EXIT_FAILED, EXIT_OK

__all__ = ["ServerStatus", "four_letter_word", "query", "run_status", "parse_hosts"]

NOT_SERVING = "not currently serving requests"
NOT_WHITELISTED = "is not executed because it is not in the whitelist"


def four_letter_word(host: str, port: int, word: str, timeout: float = 2.0) -> str:
    """Send ``word``; return everything the server wrote before closing (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(word.encode("ascii"))
        chunks = []
        while True:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks).decode("utf-8", errors="replace")


@dataclass
class ServerStatus:
    """What one server said (``error`` set when it said nothing useful)."""

    host: str
    port: int
    mode: str | None = None
    zxid: str | None = None
    connections: str | None = None
    outstanding: str | None = None
    znodes: str | None = None
    error: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def serving(self) -> bool:
        return self.error is None and self.mode is not None


def _fields(text: str, sep: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, found, value = line.partition(sep)
        if found and key and not key.startswith(" "):
            out[key.strip()] = value.strip()
    return out


def query(host: str, port: int, timeout: float = 2.0) -> ServerStatus:
    st = ServerStatus(host, port)
    try:
        srvr = four_letter_word(host, port, "srvr", timeout)
    except OSError as exc:
        st.error = f"unreachable: {exc.strerror or exc}"
        return st
    if NOT_SERVING in srvr:
        st.error = "not serving (electing a leader, or no quorum)"
        return st
    if NOT_WHITELISTED in srvr:
        st.error = "srvr is not in its 4lw.commands.whitelist"
        return st
    f = _fields(srvr, ":")
    if "Mode" not in f:
        st.error = f"unexpected answer to srvr: {srvr.strip()[:80]!r}"
        return st
    st.mode, st.zxid = f["Mode"], f.get("Zxid")
    st.connections, st.outstanding = f.get("Connections"), f.get("Outstanding")
    st.znodes = f.get("Node count")
    try:  # mntr adds what srvr lacks, when the whitelist allows it
        m = _fields(four_letter_word(host, port, "mntr", timeout), "\t")
    except OSError:
        m = {}
    if "zk_synced_followers" in m:
        st.extra["synced followers"] = m["zk_synced_followers"]
    if "zk_znode_count" in m and st.znodes is None:
        st.znodes = m["zk_znode_count"]
    return st


def parse_hosts(specs: list[str]) -> list[tuple[str, int]]:
    """``["h1:p1,h2:p2", "h3"]`` -> ``[(h1, p1), (h2, p2), (h3, 2181)]``.

    Raises:
        ValueError: a port that is not a number.
    """
    out = []
    for spec in specs:
        for item in filter(None, spec.split("/", 1)[0].split(",")):
            host, sep, port = item.rpartition(":")
            if not sep:
                host, port = item, "2181"
            if not port.isdigit():
                raise ValueError(f"{item}: the port must be a number (HOST:PORT)")
            out.append((host.strip("[]") or "127.0.0.1", int(port)))
    return out


def format_table(rows: list[ServerStatus]) -> str:
    head = ("SERVER", "MODE", "ZXID", "CONNECTIONS", "OUTSTANDING", "ZNODES")
    table: list[tuple[str, ...]] = [head]
    for r in rows:
        if r.error:
            table.append((f"{r.host}:{r.port}", r.error))
        else:
            table.append((f"{r.host}:{r.port}", r.mode or "", r.zxid or "?", r.connections or "?",
                          r.outstanding or "?", r.znodes or "?"))
    widths = [max(len(row[i]) for row in table if len(row) > i and len(row) == len(head)) for i in range(len(head))]
    lines = []
    for row in table:
        if len(row) == len(head):
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        else:
            lines.append(f"{row[0].ljust(widths[0])}  {row[1]}")
    return "\n".join(lines)


def run_status(args: Any, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    try:
        hosts = parse_hosts(list(args.servers))
    except ValueError as exc:
        err.write(f"trio-quorum status: {exc}\n")
        return EXIT_CONFIG
    rows = [query(h, p, args.timeout) for h, p in hosts]
    out.write(format_table(rows) + "\n")
    return EXIT_OK if all(r.serving for r in rows) else EXIT_FAILED
