"""Targets (what to benchmark) and the launcher that runs them as processes.

Both targets read the *same* generated ``zoo.cfg``; that is the point of the
comparison.  A :class:`Target` is data: a name, how to build its command line from
a config path, and a check that says why it cannot run.  An ensemble is N
:class:`ServerProcess`es, one ``zoo.cfg`` each (:mod:`.ensemble`).

Invariants:

* Every process is started by us, in its own session, and stopped by its PID only
  (SIGTERM, a bounded wait, then SIGKILL).  Other people's servers are never touched.
* Every wait is bounded in time; a server that dies while we wait is reported with
  the tail of its log.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .client import SyncClient, four_letter_word, parse_srvr

__all__ = [
    "Target",
    "TARGETS",
    "ServerFailed",
    "ServerProcess",
    "write_zoo_cfg",
    "free_port",
    "ZK_CLASSPATH",
]

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]

#: Debian's zookeeper.jar names its dependencies in its manifest's Class-Path;
#: slf4j-nop silences the "no binding" warning and keeps logging off the hot path.
ZK_CLASSPATH = ["/usr/share/java/zookeeper.jar", "/usr/share/java/slf4j-nop.jar"]
ZK_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
JVM_FLAGS = ["-Xmx2g", "-Xms256m"]


class ServerFailed(RuntimeError):
    """A server process did not become ready (it exited, or the wait timed out)."""


@dataclass(frozen=True)
class Target:
    """A server implementation under test.

    Attributes:
        name: short id used in the JSON (``zookeeper``, ``trio-quorum``).
        title: what the tables call it.
        kind: ``zookeeper`` (a JVM running QuorumPeerMain) or ``trio-quorum``.
    """

    name: str
    title: str
    kind: str

    def command(self, cfg_path: Path) -> list[str]:
        if self.kind == "zookeeper":
            return ["java", *JVM_FLAGS, "-cp", ":".join(ZK_CLASSPATH), ZK_MAIN, str(cfg_path)]
        if self.kind == "trio-quorum":
            return [sys.executable, "-m", "trio_quorum", "serve", str(cfg_path)]
        raise ValueError(f"unknown target kind {self.kind!r}")

    def unavailable_reason(self) -> str | None:
        """Why this target cannot even be started, or None if it is worth a try."""
        if self.kind == "zookeeper":
            missing = [p for p in ZK_CLASSPATH[:1] if not Path(p).exists()]
            if missing:
                return f"Apache ZooKeeper is not installed ({missing[0]} missing; apt-get install zookeeper)"
            if not _which("java"):
                return "no java on PATH"
            return None
        if self.kind == "trio-quorum":
            if importlib.util.find_spec("trio_quorum.__main__") is None:
                return (
                    "`python -m trio_quorum serve` does not exist yet (no trio_quorum/__main__.py)"
                )
            return None
        return f"unknown target kind {self.kind!r}"


TARGETS: dict[str, Target] = {
    "zookeeper": Target("zookeeper", "Apache ZooKeeper 3.8", "zookeeper"),
    "trio-quorum": Target("trio-quorum", "trio-quorum", "trio-quorum"),
}


def _which(prog: str) -> str | None:
    for d in os.environ.get("PATH", "").split(os.pathsep):
        p = Path(d) / prog
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1 (racy, but good enough on loopback)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def write_zoo_cfg(
    directory: Path,
    client_port: int,
    *,
    tick_time: int = 2000,
    servers: Sequence[tuple[int, int, int]] = (),
    my_id: int | None = None,
    extra: dict[str, str] | None = None,
) -> Path:
    """Write ``directory/zoo.cfg`` (and ``data/``) for one node; return the cfg path.

    Args:
        client_port: the client port, bound on 127.0.0.1.
        tick_time: ZooKeeper's tick in ms (session timeouts are 2..20 ticks).
        servers: for an ensemble, ``(sid, quorum_port, election_port)`` per node;
            empty for standalone.
        my_id: this node's sid (written to ``data/myid``) when ``servers`` is given.
    """
    data = directory / "data"
    data.mkdir(parents=True, exist_ok=True)
    lines = {
        "tickTime": str(tick_time),
        "initLimit": "10",
        "syncLimit": "5",
        "dataDir": str(data),
        "clientPort": str(client_port),
        "clientPortAddress": HOST,
        "forceSync": "yes",
        "4lw.commands.whitelist": "*",
        "maxClientCnxns": "0",
        "admin.enableServer": "false",
        "autopurge.purgeInterval": "0",
    }
    lines.update(extra or {})
    text = "".join(f"{k}={v}\n" for k, v in lines.items())
    for sid, qport, eport in servers:
        text += f"server.{sid}={HOST}:{qport}:{eport}\n"
    if servers:
        if my_id is None:
            raise ValueError("an ensemble node needs my_id")
        (data / "myid").write_text(f"{my_id}\n")
    cfg = directory / "zoo.cfg"
    cfg.write_text(text)
    return cfg


def _last_error_line(path: Path) -> str:
    """The line of a log most likely to say what went wrong (the last exception line)."""
    try:
        lines = [ln.strip(" |+-\t") for ln in path.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [ln for ln in lines if ln]
    for ln in reversed(lines):
        head = ln.split(":", 1)[0]
        if head.endswith(("Error", "Exception", "Exit", "Interrupt")) and " " not in head:
            return ln
    return lines[-1] if lines else "(empty log)"


def _log_tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


@dataclass
class ServerProcess:
    """One server process of a target, from one zoo.cfg.

    Call :meth:`start`, then :meth:`wait_ready`; :meth:`stop` always, in a finally.
    """

    target: Target
    cfg_path: Path
    port: int
    host: str = HOST
    log_path: Path = field(init=False)
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.log_path = self.cfg_path.parent / "server.log"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("not started")
        return self.proc.pid

    def start(self) -> None:
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        if self.target.kind == "trio-quorum":
            # the server runs the code next to this harness, not whatever is installed
            env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.target.command(self.cfg_path),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cfg_path.parent,
                env=env,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 60.0, probe_path: str | None = None) -> dict[str, str]:
        """Poll ``srvr`` (every 20 ms, at most ``timeout`` s) until the server serves.

        If ``probe_path`` is given, also wait until a fresh session can getData it.
        Returns the parsed ``srvr`` answer.
        """
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        last_err = "no answer yet"
        srvr: dict[str, str] | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerFailed(
                    f"{self.target.name} exited with status {self.proc.returncode} before it was ready:"
                    f" {_last_error_line(self.log_path)}\nlog tail:\n{_log_tail(self.log_path)}"
                )
            try:
                if srvr is None:
                    parsed = parse_srvr(four_letter_word(self.host, self.port, "srvr", timeout=1.0))
                    if "Mode" in parsed and "not currently serving" not in str(parsed):
                        srvr = parsed
                if srvr is not None:
                    if probe_path is None:
                        return srvr
                    c = SyncClient(self.host, self.port, timeout_ms=10000, io_timeout=2.0)
                    try:
                        c.get_data(probe_path)
                    finally:
                        c.close()
                    return srvr
            except (OSError, ValueError) as exc:  # refused, reset, timeout, garbage
                last_err = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # ZkError from the probe: not ready yet
                last_err = f"{type(exc).__name__}: {exc}"
            time.sleep(0.02)
        raise ServerFailed(
            f"{self.target.name} not ready after {timeout:.0f} s ({last_err}); log tail:\n{_log_tail(self.log_path)}"
        )

    def endpoints(self, on: str = "spread") -> list[tuple[str, int]]:
        """Client addresses for a load (one server: always itself; see ``Ensemble.endpoints``)."""
        return [(self.host, self.port)]

    def rss_bytes(self) -> int:
        """Resident set size of the server process (``VmRSS`` in /proc/PID/status)."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS line")

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far."""
        with open(f"/proc/{self.pid}/stat") as f:
            stat = f.read()
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def stop(self, grace: float = 15.0) -> float | None:
        """SIGTERM by PID, wait up to ``grace`` s, then SIGKILL.  Returns the exit time or None."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        t0 = time.monotonic()
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=grace)
        except ProcessLookupError:
            pass
        return time.monotonic() - t0

    def kill(self) -> None:
        """SIGKILL by PID (crash, no shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)
