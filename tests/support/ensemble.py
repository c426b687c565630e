"""Start, stop, kill and pause a real ensemble: trio-quorum peers or Apache ZooKeeper 3.8 peers.

Usage::

    from tests.support.ensemble import Ensemble, require_ensemble

    def test_x(tmp_path):
        require_ensemble("zookeeper")  # skips, with the reason, when it cannot run here
        with Ensemble(tmp_path, kind="zookeeper", size=3) as ens:  # started and serving
            leader = ens.leader()
            ens.kill(leader)                     # SIGKILL
            new = ens.wait_leader(timeout=30, exclude=(leader,))
            ens.start_peer(leader)               # same ports, same data
            ens.wait_serving(timeout=30)

Layout, one directory per peer (``<root>/peerN``): ``zoo.cfg``, ``data/myid`` and
``peer.log`` (stdout + stderr of every run of that peer, appended, each run
headed by a ``=== start ... ===`` line).  Each process runs with that directory
as its working directory and is given ``zoo.cfg`` with the *relative*
``dataDir=data``, as ``trio-quorum serve zoo.cfg`` / ``zkServer.sh`` would be
run by hand (ZooKeeper resolves ``dataDir`` with ``new File(path)``, against
the working directory; so does trio-quorum).

Every peer's lines use ZooKeeper 3.5+ syntax,
``server.N=127.0.0.1:quorumPort:electionPort[:observer];127.0.0.1:clientPort``,
with all ports picked free at construction (kept across restarts of a peer).

Invariants:

* Only processes started here are ever signalled: each peer runs in its own
  session (``start_new_session``), so its process group id is its PID, and
  signals go to that group (``os.killpg``) — this reaches a trio-quorum
  peer's forked snapshot writer too.  Once a peer's process has exited, what
  is left of its group is SIGKILLed once, at once, and that group is never
  signalled again (its id could be reused).  Nothing is looked up by name.
* Every wait is bounded by an explicit timeout.  The ``srvr`` four-letter word
  on the client port is how a peer says it serves (``Mode: leader`` /
  ``follower`` / ``observer``); a process cannot tell us otherwise, so the
  waits poll it, at most every ``POLL_INTERVAL`` seconds, and between polls
  they wait on the processes' exit (a peer that dies ends the wait at once,
  with its log in the error).
* ``__exit__`` stops every peer still running, whatever the test did: SIGKILL to
  all and a bounded wait (``close(graceful=True)``: SIGCONT + SIGTERM, a bounded
  wait, then SIGKILL).

trio-quorum peers run as ``trio-quorum serve zoo.cfg`` (:func:`trio_quorum_command`:
the console script next to this interpreter), in the foreground, this checkout
first on ``PYTHONPATH``.  ``serve`` once refused ensemble configurations (exit
2, "replication is not available"); a peer that still does raises
:class:`ReplicationUnavailable` — a failure, no longer a skip.
:func:`require_ensemble` skips only when Apache ZooKeeper (or Java) is missing.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from signal import SIGCONT, SIGKILL, SIGSTOP, SIGTERM
from typing import Literal

import pytest
from kazoo.client import KazooClient
from kazoo.retry import KazooRetry

from .apache_zk import zk_java_command, zookeeper_unavailable_reason

__all__ = [
    "Kind",
    "KINDS",
    "SERVING_MODES",
    "POLL_INTERVAL",
    "Ensemble",
    "EnsembleError",
    "ReplicationUnavailable",
    "ensemble_unavailable_reason",
    "require_ensemble",
    "srvr",
    "four_letter_word",
    "trio_quorum_command",
    "connection_retry",
    "op_retry",
    "kazoo_client",
    "StateLog",
]

Kind = Literal["trio-quorum", "zookeeper"]
KINDS: tuple[Kind, ...] = ("zookeeper", "trio-quorum")
SERVING_MODES = frozenset({"leader", "follower", "observer"})
#: Longest pause between two polls of a peer's four-letter words.
POLL_INTERVAL = 0.05

REPO = Path(__file__).resolve().parents[2]
REFUSAL = "replication is not available"
_ZK_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"


class EnsembleError(RuntimeError):
    """A peer died, or the ensemble did not reach the awaited state in time (the message has the logs)."""


class ReplicationUnavailable(EnsembleError):
    """trio-quorum refused the ensemble configuration (exit 2, "replication is not available")."""


def four_letter_word(port: int, word: str = "srvr", timeout: float = 2.0) -> str:
    """Send ``word`` to 127.0.0.1:port; return all the server wrote before closing (bounded)."""
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(word.encode())
        chunks = []
        while time.monotonic() < deadline:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks).decode(errors="replace")


def srvr(port: int, timeout: float = 2.0) -> dict[str, str]:
    """The ``srvr`` answer as ``{"Mode": "leader", "Zxid": "0x...", ...}``; ``{}`` when not serving
    (ZooKeeper answers "This ZooKeeper instance is not currently serving requests" while LOOKING)."""
    out: dict[str, str] = {}
    for line in four_letter_word(port, "srvr", timeout).splitlines():
        key, sep, value = line.partition(":")
        if sep and key and not key.startswith(" "):
            out[key.strip()] = value.strip()
    return out if "Mode" in out else {}


def trio_quorum_command(*args: str) -> list[str]:
    """``trio-quorum ARGS...`` as an operator runs it: the ``trio-quorum`` console script installed
    next to this interpreter, or ``python -m trio_quorum`` where no script is installed.  Either
    way the code imported is this checkout's (``start_peer`` puts it first on ``PYTHONPATH``,
    which precedes an editable install's finder)."""
    script = Path(sys.executable).parent / "trio-quorum"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script), *args]
    return [sys.executable, "-m", "trio_quorum", *args]


def _free_ports(n: int) -> list[int]:
    # Hold all the sockets until every port is picked, so the n ports differ.
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class PeerSpec:
    """One peer of the ensemble: its ports, role, directory, and its current process."""

    sid: int
    role: Literal["participant", "observer"]
    quorum_port: int
    election_port: int
    client_port: int
    directory: Path
    proc: subprocess.Popen[bytes] | None = None
    paused: bool = False
    #: The current process has exited and its group was swept: never signal that group again.
    swept: bool = False
    runs: int = 0
    exit_codes: list[int] = field(default_factory=list)

    @property
    def cfg_path(self) -> Path:
        return self.directory / "zoo.cfg"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def log_path(self) -> Path:
        return self.directory / "peer.log"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def server_line(self) -> str:
        role = ":observer" if self.role == "observer" else ""
        return (
            f"server.{self.sid}=127.0.0.1:{self.quorum_port}:{self.election_port}{role}"
            f";127.0.0.1:{self.client_port}"
        )


class Ensemble:
    """An ensemble of ``size`` voting peers plus ``observers`` observers (a context manager).

    Args:
        root: a directory for the peers' directories (created if missing).
        kind: ``"zookeeper"`` (one JVM ``QuorumPeerMain`` per peer) or
            ``"trio-quorum"`` (``python -m trio_quorum serve zoo.cfg`` per peer).
        size: voting peers (sids 1..size); observers get the next sids.
        observers: observers (ZooKeeper's ``:observer`` role).
        tick_time, init_limit, sync_limit: zoo.cfg keys (small: fast tests).
        extra_cfg: more zoo.cfg keys, written into every peer's file.
        java_opts: extra JVM options (ZooKeeper only).

    ``with Ensemble(...) as ens`` starts every peer and waits until it serves
    (:meth:`wait_serving`, ``start_timeout``); ``start(wait=False)`` only launches.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        kind: Kind = "zookeeper",
        size: int = 3,
        observers: int = 0,
        tick_time: int = 500,
        init_limit: int = 10,
        sync_limit: int = 5,
        extra_cfg: Mapping[str, str] | None = None,
        java_opts: Iterable[str] = (),
        start_timeout: float = 60.0,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        if size < 1 or observers < 0:
            raise ValueError("size >= 1 and observers >= 0")
        self.root = Path(root)
        self.kind: Kind = kind
        self.start_timeout = start_timeout
        self.java_opts = tuple(java_opts)
        ports = _free_ports(3 * (size + observers))
        self.peers: dict[int, PeerSpec] = {}
        for i in range(size + observers):
            sid = i + 1
            q, e, c = ports[3 * i : 3 * i + 3]
            role: Literal["participant", "observer"] = "participant" if sid <= size else "observer"
            self.peers[sid] = PeerSpec(sid, role, q, e, c, self.root / f"peer{sid}")
        cfg = {
            "tickTime": str(tick_time),
            "initLimit": str(init_limit),
            "syncLimit": str(sync_limit),
            "dataDir": "data",  # relative: resolved against each peer's working directory
            "4lw.commands.whitelist": "*",
            "maxClientCnxns": "0",
            "maxSessionTimeout": str(max(20 * tick_time, 20000)),
        }
        if kind == "zookeeper":
            # no admin HTTP server (it would need one more free port per peer)
            cfg["admin.enableServer"] = "false"
        cfg.update(extra_cfg or {})
        lines = "".join(f"{k}={v}\n" for k, v in cfg.items())
        servers = "".join(p.server_line() + "\n" for p in self.peers.values())
        for p in self.peers.values():
            p.data_dir.mkdir(parents=True, exist_ok=True)
            (p.data_dir / "myid").write_text(f"{p.sid}\n")
            peer_type = "peerType=observer\n" if p.role == "observer" else ""
            p.cfg_path.write_text(lines + peer_type + servers)

    # -- what the ensemble is ------------------------------------------------------------

    @property
    def sids(self) -> list[int]:
        return sorted(self.peers)

    @property
    def participants(self) -> list[int]:
        return [s for s in self.sids if self.peers[s].role == "participant"]

    @property
    def observers(self) -> list[int]:
        return [s for s in self.sids if self.peers[s].role == "observer"]

    def client_port(self, sid: int) -> int:
        return self.peers[sid].client_port

    def connect_string(self, sids: Iterable[int] | None = None) -> str:
        """kazoo's ``hosts`` for ``sids`` (default: every peer)."""
        chosen = self.sids if sids is None else list(sids)
        return ",".join(f"127.0.0.1:{self.peers[s].client_port}" for s in chosen)

    @property
    def hosts(self) -> str:
        return self.connect_string()

    def logs(self, sid: int) -> str:
        try:
            return self.peers[sid].log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def running(self) -> list[int]:
        """Sids whose process is alive (paused ones included)."""
        return [s for s in self.sids if self.peers[s].running()]

    def live(self) -> list[int]:
        """Sids whose process is alive and not paused."""
        return [s for s in self.running() if not self.peers[s].paused]

    # -- processes -----------------------------------------------------------------------

    def _command(self) -> list[str]:
        if self.kind == "zookeeper":
            return zk_java_command(_ZK_MAIN, "zoo.cfg", java_opts=self.java_opts)
        return trio_quorum_command("serve", "zoo.cfg")

    def pid(self, sid: int) -> int:
        """The PID of peer ``sid``'s current process (it must have been started)."""
        proc = self.peers[sid].proc
        if proc is None:
            raise EnsembleError(f"peer {sid} never started")
        return proc.pid

    def start_peer(self, sid: int) -> None:
        """Launch peer ``sid`` (it must not be running); does not wait for it to serve."""
        p = self.peers[sid]
        if p.running():
            raise EnsembleError(f"peer {sid} is already running (pid {p.proc.pid if p.proc else '?'})")
        self._reap(p)
        p.runs += 1
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if self.kind == "trio-quorum":
            env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
        with open(p.log_path, "ab") as log:
            log.write(f"=== start #{p.runs} of peer {sid} ({self.kind}) at {time.time():.3f} ===\n".encode())
            log.flush()
            p.proc = subprocess.Popen(
                self._command(),
                cwd=p.directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: pgid == pid
            )
        p.paused = False
        p.swept = False

    def start(self, *, wait: bool = True, timeout: float | None = None) -> Ensemble:
        """Launch every peer not running; with ``wait``, :meth:`wait_serving` (bounded)."""
        for sid in self.sids:
            if not self.peers[sid].running():
                self.start_peer(sid)
        if wait:
            self.wait_serving(self.start_timeout if timeout is None else timeout)
        return self

    def _signal(self, p: PeerSpec, sig: int) -> None:
        if p.proc is None or p.swept:
            return
        try:
            os.killpg(p.proc.pid, sig)  # the group we created for it (start_new_session)
        except ProcessLookupError:
            pass

    def _reap(self, p: PeerSpec) -> None:
        """Once the process has exited: record its status and SIGKILL what is left of its group
        (a forked snapshot writer), once — right after the exit, while the group is still ours."""
        if p.proc is None or p.proc.poll() is None or p.swept:
            return
        try:
            os.killpg(p.proc.pid, SIGKILL)
        except ProcessLookupError:
            pass
        p.swept = True
        p.paused = False
        p.exit_codes.append(p.proc.returncode)

    def kill(self, sid: int, signal: int = SIGKILL, *, timeout: float = 15.0) -> int | None:
        """Send ``signal`` to peer ``sid``'s process group.  For SIGKILL, wait (bounded) for the
        exit and return the status; otherwise return ``None`` at once."""
        p = self.peers[sid]
        if not p.running():
            raise EnsembleError(f"peer {sid} is not running")
        self._signal(p, signal)
        if signal != SIGKILL:
            return None
        assert p.proc is not None
        code = p.proc.wait(timeout)
        self._reap(p)
        return code

    def stop(self, sid: int, timeout: float = 15.0) -> int:
        """SIGTERM peer ``sid`` (resuming it if paused), wait up to ``timeout``, then SIGKILL."""
        p = self.peers[sid]
        assert p.proc is not None, f"peer {sid} never started"
        if p.proc.poll() is None:
            self._signal(p, SIGTERM)
            self._signal(p, SIGCONT)
            try:
                p.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(p, SIGKILL)
                p.proc.wait(timeout)
        self._reap(p)
        return int(p.proc.returncode)

    def pause(self, sid: int) -> None:
        """SIGSTOP peer ``sid`` (its sockets stay open: a hung peer, not a dead one)."""
        p = self.peers[sid]
        if not p.running():
            raise EnsembleError(f"peer {sid} is not running")
        self._signal(p, SIGSTOP)
        p.paused = True

    def resume(self, sid: int) -> None:
        """SIGCONT peer ``sid``."""
        p = self.peers[sid]
        self._signal(p, SIGCONT)
        p.paused = False

    def close(self, timeout: float = 15.0, *, graceful: bool = False) -> None:
        """Stop every peer still running, all at once, then a bounded wait each.

        By default with SIGKILL: a teardown, not a check (a trio-quorum peer takes 2-4 s to
        exit on SIGTERM; tests/test_ensemble_stop.py checks that, and :meth:`stop` is the clean
        stop of one peer).  ``graceful``: SIGTERM (+ SIGCONT), then SIGKILL after ``timeout``."""
        for p in self.peers.values():
            if p.running():
                self._signal(p, SIGTERM if graceful else SIGKILL)
                self._signal(p, SIGCONT)
        deadline = time.monotonic() + timeout
        for p in self.peers.values():
            if p.proc is None:
                continue
            try:
                p.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._signal(p, SIGKILL)
                p.proc.wait(10)
            self._reap(p)

    def __enter__(self) -> Ensemble:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what the peers say --------------------------------------------------------------

    def srvr(self, sid: int, timeout: float = 2.0) -> dict[str, str]:
        """Peer ``sid``'s ``srvr`` answer (``{}``: not serving or not answering)."""
        try:
            return srvr(self.peers[sid].client_port, timeout)
        except OSError:
            return {}

    def mode(self, sid: int) -> str | None:
        """``leader`` / ``follower`` / ``observer`` (or ``standalone``); ``None`` when not serving."""
        return self.srvr(sid).get("Mode")

    def zxid(self, sid: int) -> int | None:
        z = self.srvr(sid).get("Zxid")
        return int(z, 16) if z else None

    def modes(self, sids: Iterable[int] | None = None) -> dict[int, str | None]:
        return {s: self.mode(s) for s in (self.live() if sids is None else sids)}

    def leader(self) -> int | None:
        """The sid of the one live peer whose mode is leader; ``None`` when there is none or several."""
        leaders = [s for s, m in self.modes().items() if m == "leader"]
        return leaders[0] if len(leaders) == 1 else None

    def last_logged_zxid(self, sid: int) -> int:
        """The highest zxid in peer ``sid``'s txn logs, read from its files (both kinds write
        ZooKeeper's format): what it logged, acknowledged or not — ``srvr`` shows only what it
        applied.  0 when nothing is logged.  Safe on a running peer: a half-written last entry
        reads as a torn tail, which ends the scan."""
        from trio_quorum.persistence.files import list_logs, scan_log_file

        version2 = str(self.peers[sid].data_dir / "version-2")
        last = 0
        if not os.path.isdir(version2):
            return last
        for _zxid, path in list_logs(version2):
            for entry in scan_log_file(path).entries:
                last = max(last, entry.hdr.zxid)
        return last

    def wait_logged(self, sid: int, above: int, timeout: float = 30.0) -> int:
        """Wait until peer ``sid`` has logged a zxid above ``above``; return its last logged zxid."""

        def check() -> tuple[bool, object]:
            z = self.last_logged_zxid(sid)
            return z > above, z

        got = self._poll(f"peer {sid} logged a zxid above {above:#x}", timeout, [sid], check)
        assert isinstance(got, int)
        return got

    def sessions(self, sid: int) -> set[int]:
        """Session ids of the client connections peer ``sid`` holds (from its ``cons``)."""
        try:
            text = four_letter_word(self.peers[sid].client_port, "cons")
        except OSError:
            return set()
        return {int(m, 16) for m in re.findall(r"sid=0x([0-9a-fA-F]+)", text)}

    def session_peer(self, session_id: int) -> int | None:
        """The live peer holding a connection of ``session_id`` (its ``cons`` lists ``sid=0x..``)."""
        needle = f"sid=0x{session_id & 0xFFFFFFFFFFFFFFFF:x},"
        for s in self.live():
            try:
                if needle in four_letter_word(self.peers[s].client_port, "cons"):
                    return s
            except OSError:
                continue
        return None

    # -- bounded waits (they poll the four-letter words: see the module header) ----------

    def _check_alive(self, sids: Iterable[int]) -> None:
        for s in sids:
            p = self.peers[s]
            if p.proc is not None and p.proc.poll() is not None:
                self._reap(p)
                log = self.logs(s)
                if self.kind == "trio-quorum" and p.proc.returncode == 2 and REFUSAL in log:
                    raise ReplicationUnavailable(_last_line_with(log, REFUSAL))
                raise EnsembleError(
                    f"peer {s} exited with status {p.proc.returncode}:\n{_tail(log)}"
                )

    def _pause_between_polls(self, sids: Iterable[int]) -> None:
        # Wait on a live process's exit rather than sleeping blind: if it dies, we stop waiting.
        procs = [self.peers[s].proc for s in sids if self.peers[s].running()]
        try:
            if procs and procs[0] is not None:
                procs[0].wait(POLL_INTERVAL)
            else:
                time.sleep(POLL_INTERVAL)
        except subprocess.TimeoutExpired:
            pass

    def _poll(
        self, what: str, timeout: float, sids: Iterable[int], check: Callable[[], tuple[bool, object]]
    ) -> object:
        watched = list(sids)
        deadline = time.monotonic() + timeout
        last: object = None
        while True:
            self._check_alive(watched)
            ok, last = check()
            if ok:
                return last
            if time.monotonic() >= deadline:
                raise EnsembleError(
                    f"{self.kind} ensemble: {what} not reached within {timeout}s (last: {last!r})\n"
                    + self._log_digest()
                )
            self._pause_between_polls(watched)

    def poll(self, what: str, timeout: float, check: Callable[[], tuple[bool, object]]) -> object:
        """Poll ``check() -> (done, value)`` (it should ask the peers, e.g. a four-letter word)
        until done, at most every ``POLL_INTERVAL`` s, up to ``timeout`` s; return the value.
        A live peer that dies meanwhile ends the wait with its log (:class:`EnsembleError`)."""
        return self._poll(what, timeout, self.live(), check)

    def wait_serving(self, timeout: float = 60.0) -> int:
        """Wait until every live peer answers ``srvr`` with a serving mode and exactly one of them
        is the leader; return the leader's sid."""

        def check() -> tuple[bool, object]:
            modes = self.modes()
            leaders = [s for s, m in modes.items() if m == "leader"]
            ok = bool(modes) and all(m in SERVING_MODES for m in modes.values()) and len(leaders) == 1
            return ok, (leaders[0] if ok else modes)

        leader = self._poll("every live peer serving, one leader", timeout, self.live(), check)
        assert isinstance(leader, int)
        return leader

    def wait_leader(self, timeout: float = 60.0, *, exclude: Iterable[int] = ()) -> int:
        """Wait until exactly one live peer, not in ``exclude``, says leader; return its sid."""
        excluded = set(exclude)

        def check() -> tuple[bool, object]:
            modes = self.modes()
            leaders = [s for s, m in modes.items() if m == "leader"]
            ok = len(leaders) == 1 and leaders[0] not in excluded
            return ok, (leaders[0] if ok else modes)

        leader = self._poll(f"one leader not in {sorted(excluded)}", timeout, self.live(), check)
        assert isinstance(leader, int)
        return leader

    def wait_mode(self, sid: int, modes: Iterable[str], timeout: float = 60.0) -> str:
        """Wait until peer ``sid``'s ``srvr`` Mode is one of ``modes``; return it."""
        wanted = set(modes)

        def check() -> tuple[bool, object]:
            m = self.mode(sid)
            return m in wanted, m

        got = self._poll(f"peer {sid} in mode {sorted(wanted)}", timeout, [sid], check)
        assert isinstance(got, str)
        return got

    def wait_answering(self, sid: int, timeout: float = 60.0) -> None:
        """Wait until peer ``sid`` answers a four-letter word at all (serving or not): its
        process is up — for ZooKeeper, the JVM has started — so that a bound on what it does
        next (rejoin, sync) does not include its start-up time on a loaded machine."""

        def check() -> tuple[bool, object]:
            try:
                return bool(four_letter_word(self.peers[sid].client_port, "srvr")), None
            except OSError as exc:
                return False, repr(exc)

        self._poll(f"peer {sid} answering srvr", timeout, [sid], check)

    def wait_not_serving(self, sids: Iterable[int], timeout: float = 60.0) -> None:
        """Wait until every one of ``sids`` is alive and answers ``srvr`` without a serving mode
        (ZooKeeper's "not currently serving requests": LOOKING, no quorum)."""
        chosen = list(sids)

        def check() -> tuple[bool, object]:
            modes = {s: self.mode(s) for s in chosen}
            return all(m is None for m in modes.values()), modes

        self._poll(f"peers {chosen} not serving", timeout, chosen, check)

    def wait_zxid_converged(self, timeout: float = 60.0, sids: Iterable[int] | None = None) -> int:
        """Wait until the given (default: live) peers all report the same ``srvr`` Zxid; return it."""
        chosen = self.live() if sids is None else list(sids)

        def check() -> tuple[bool, object]:
            zxids = {s: self.zxid(s) for s in chosen}
            values = set(zxids.values())
            ok = len(values) == 1 and None not in values
            return ok, (values.pop() if ok else {s: hex(z) if z is not None else None for s, z in zxids.items()})

        got = self._poll(f"one Zxid on peers {chosen}", timeout, chosen, check)
        assert isinstance(got, int)
        return got

    def _log_digest(self, lines: int = 25) -> str:
        out = []
        for s in self.sids:
            p = self.peers[s]
            state = "never started" if p.proc is None else (
                f"exit {p.proc.returncode}" if p.proc.poll() is not None else
                ("paused" if p.paused else "running")
            )
            out.append(f"--- peer {s} ({p.role}, {state}), {p.log_path} ---\n{_tail(self.logs(s), lines)}")
        return "\n".join(out)


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _last_line_with(text: str, needle: str) -> str:
    return next((line for line in reversed(text.splitlines()) if needle in line), needle)


# -- can it run here? ---------------------------------------------------------------------


def ensemble_unavailable_reason(kind: Kind) -> str | None:
    """Why an ensemble of ``kind`` cannot run here, or ``None``."""
    if kind == "zookeeper":
        reason = zookeeper_unavailable_reason()
        return None if reason is None else f"Apache ZooKeeper unavailable: {reason}"
    return None  # trio-quorum serves ensembles (a refusal now fails: ReplicationUnavailable)


def require_ensemble(kind: Kind) -> None:
    """``pytest.skip`` the calling test when an ensemble of ``kind`` cannot run here."""
    reason = ensemble_unavailable_reason(kind)
    if reason is not None:
        pytest.skip(reason)


# -- kazoo clients of an ensemble ---------------------------------------------------------------


def connection_retry() -> KazooRetry:
    """Reconnect quickly (kazoo's default backoff reaches seconds); unbounded tries, each
    bounded by kazoo's connect timeout."""
    return KazooRetry(max_tries=-1, delay=0.05, backoff=1.5, max_delay=0.5)


def op_retry(deadline: float = 30.0) -> KazooRetry:
    """Retries connection loss only, up to ``deadline`` s; an expired session is an error, never
    retried.  Callers of non-idempotent operations decide what a retried create's
    ``NodeExistsError`` means."""
    return KazooRetry(max_tries=-1, delay=0.05, backoff=1.3, max_delay=0.5, deadline=deadline, ignore_expire=False)


@contextmanager
def kazoo_client(hosts: str, *, timeout: float = 10.0, randomize: bool = True, start_timeout: float = 30.0) -> Iterator[KazooClient]:
    """A started kazoo client (session ``timeout`` s, quick reconnects), stopped and closed on exit."""
    zk = KazooClient(hosts=hosts, timeout=timeout, connection_retry=connection_retry(), randomize_hosts=randomize)
    zk.start(timeout=start_timeout)
    try:
        yield zk
    finally:
        zk.stop()
        zk.close()


class StateLog:
    """kazoo's connection states, in order, with a bounded wait for a given sequence."""

    def __init__(self) -> None:
        self.states: list[str] = []
        self._cv = threading.Condition()

    def __call__(self, state: str) -> None:  # a kazoo state listener (kazoo's thread)
        with self._cv:
            self.states.append(state)
            self._cv.notify_all()

    def wait_for(self, *sequence: str, timeout: float) -> list[str]:
        """Wait until ``sequence`` occurs in order (not necessarily adjacent); return all states."""

        def seen() -> bool:
            it = iter(self.states)
            return all(any(s == want for s in it) for want in sequence)

        with self._cv:
            assert self._cv.wait_for(seen, timeout), f"states {self.states}, wanted {sequence} in order"
            return list(self.states)
