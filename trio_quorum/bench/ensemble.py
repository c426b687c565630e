"""An ensemble of one target's peers, as processes, for the ensemble figures.

``Ensemble(target, root, size)`` picks free ports and writes ``root/peerN/zoo.cfg``
and ``root/peerN/data/myid`` for ``N = 1..size``: the same keys as the standalone
``zoo.cfg`` (:func:`.servers.write_zoo_cfg`) plus ``server.N`` lines in ZooKeeper
3.5+ syntax, ``server.N=127.0.0.1:quorumPort:electionPort;127.0.0.1:clientPort``.
Both targets read the same files.  Each peer is a :class:`.servers.ServerProcess`.

Invariants:

* Only processes started here are signalled, by PID (see :mod:`.servers`).
* Every wait is bounded.  A peer says it serves through ``srvr`` (``Mode: leader`` /
  ``follower``); ZooKeeper answers "not currently serving" while it looks for a
  leader, trio-quorum refuses the connection: both read as "not serving".
* A peer keeps its ports and data directory across restarts, so a restarted peer
  rejoins as the same server.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from .client import four_letter_word, parse_srvr
from .servers import HOST, ServerFailed, ServerProcess, Target

__all__ = ["Ensemble", "SERVING"]

SERVING = frozenset({"leader", "follower", "observer"})
#: Pause between two polls of the four-letter words (bounds the resolution of waits).
POLL = 0.01


def _free_ports(n: int) -> list[int]:
    socks = []
    try:  # hold them all until every port is picked, so they differ
        for _ in range(n):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Ensemble:
    """``size`` voting peers of ``target`` under ``root`` (not started: call :meth:`start`)."""

    target: Target
    root: Path
    size: int = 3
    tick_time: int = 2000
    peers: dict[int, ServerProcess] = field(init=False)

    def __post_init__(self) -> None:
        ports = _free_ports(3 * self.size)
        lines = [
            f"server.{i + 1}={HOST}:{ports[3 * i]}:{ports[3 * i + 1]};{HOST}:{ports[3 * i + 2]}\n"
            for i in range(self.size)
        ]
        self.peers = {}
        for i in range(self.size):
            sid = i + 1
            d = self.root / f"peer{sid}"
            data = d / "data"
            data.mkdir(parents=True, exist_ok=True)
            (data / "myid").write_text(f"{sid}\n")
            cfg = {
                "tickTime": str(self.tick_time),
                "initLimit": "10",
                "syncLimit": "5",
                "dataDir": str(data),
                "forceSync": "yes",
                "4lw.commands.whitelist": "*",
                "maxClientCnxns": "0",
                "admin.enableServer": "false",
                "autopurge.purgeInterval": "0",
            }
            text = "".join(f"{k}={v}\n" for k, v in cfg.items()) + "".join(lines)
            (d / "zoo.cfg").write_text(text)
            self.peers[sid] = ServerProcess(self.target, d / "zoo.cfg", ports[3 * i + 2])

    # -- processes -------------------------------------------------------------------

    @property
    def sids(self) -> list[int]:
        return sorted(self.peers)

    def start(self) -> None:
        """Launch every peer that is not running (all within a few ms)."""
        for p in self.peers.values():
            if p.proc is None or p.proc.poll() is not None:
                p.start()

    def stop(self) -> None:
        """SIGTERM every running peer, then wait for each (bounded; SIGKILL after)."""
        import os
        import signal

        for p in self.peers.values():
            if p.proc is not None and p.proc.poll() is None:
                try:
                    os.kill(p.proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in self.peers.values():
            p.stop()

    def running(self) -> list[int]:
        return [s for s, p in self.peers.items() if p.proc is not None and p.proc.poll() is None]

    def check_alive(self, sids: list[int] | None = None) -> None:
        for s in self.sids if sids is None else sids:
            p = self.peers[s]
            if p.proc is None or p.proc.poll() is not None:
                code = None if p.proc is None else p.proc.returncode
                raise ServerFailed(f"peer {s} of {self.target.name} is not running (exit {code})")

    # -- what the peers say ----------------------------------------------------------

    def srvr(self, sid: int, timeout: float = 1.0) -> dict[str, str]:
        """Peer ``sid``'s ``srvr`` answer; ``{}`` when it does not serve or answer."""
        try:
            out = parse_srvr(four_letter_word(HOST, self.peers[sid].port, "srvr", timeout))
        except OSError:
            return {}
        return out if out.get("Mode") in SERVING else {}

    def mode(self, sid: int) -> str | None:
        return self.srvr(sid).get("Mode")

    def zxid(self, sid: int) -> int | None:
        z = self.srvr(sid).get("Zxid")
        return int(z, 16) if z else None

    def leader(self, among: list[int] | None = None) -> int | None:
        leaders = [s for s in (among or self.running()) if self.mode(s) == "leader"]
        return leaders[0] if len(leaders) == 1 else None

    def followers(self) -> list[int]:
        lead = self.leader()
        return [s for s in self.running() if s != lead]

    def endpoints(self, on: str = "spread") -> list[tuple[str, int]]:
        """Client addresses: ``spread`` every running peer, ``leader`` or ``follower`` one."""
        if on == "spread":
            return [(HOST, self.peers[s].port) for s in self.running()]
        lead = self.leader()
        if lead is None:
            raise ServerFailed(f"{self.target.name}: no leader")
        if on == "leader":
            return [(HOST, self.peers[lead].port)]
        if on == "follower":
            return [(HOST, self.peers[self.followers()[0]].port)]
        raise ValueError(f"unknown placement {on!r}")

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        """A serving peer's client port (the first running one)."""
        return self.peers[self.running()[0]].port

    def cpu_seconds(self) -> float:
        """CPU seconds of every running peer together."""
        return sum(self.peers[s].cpu_seconds() for s in self.running())

    def rss_by_peer(self) -> dict[int, int]:
        return {s: self.peers[s].rss_bytes() for s in self.running()}

    def rss_bytes(self) -> int:
        """The largest RSS of the running peers."""
        return max(self.rss_by_peer().values())

    # -- bounded waits ---------------------------------------------------------------

    def wait_serving(self, timeout: float = 90.0, sids: list[int] | None = None) -> int:
        """Until every given (default: running) peer serves and exactly one leads; the leader."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            chosen = self.running() if sids is None else sids
            self.check_alive(chosen)
            modes = {s: self.mode(s) for s in chosen}
            leaders = [s for s, m in modes.items() if m == "leader"]
            if all(m in SERVING for m in modes.values()) and len(leaders) == 1:
                return leaders[0]
            last = modes
            time.sleep(POLL)
        raise ServerFailed(f"{self.target.name} ensemble not serving after {timeout:.0f} s: {last}")

    def wait_converged(self, timeout: float = 60.0) -> int:
        """Until every running peer reports the same ``srvr`` Zxid; that zxid."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            zs = {s: self.zxid(s) for s in self.running()}
            vals = set(zs.values())
            if len(vals) == 1 and None not in vals:
                z = vals.pop()
                assert z is not None
                return z
            last = {s: hex(z) if z is not None else None for s, z in zs.items()}
            time.sleep(POLL)
        raise ServerFailed(f"{self.target.name} ensemble zxids did not converge: {last}")
