"""``trio-quorum ensemble``: a local development ensemble in one command, in the foreground.

Layout under ``--dir`` (default ``./trio-quorum-ensemble``), one directory per
peer: ``peerN/zoo.cfg``, ``peerN/data/myid`` and ``peerN/peer.log`` (the
peer's stderr, appended across runs).  Each peer is ``trio-quorum serve
zoo.cfg`` run with ``peerN`` as its working directory (``dataDir=data`` is
relative, as ZooKeeper resolves it).  Running again in the same directory
reuses the peers' files (data and ports) when the size and observers match;
a different layout is refused rather than overwritten.

Invariants:

* Only processes started here are signalled, by PID: each peer runs in its
  own session, so its process group id is its PID; signals go to that group
  (reaching a forked snapshot writer too).  Once a peer has exited and been
  reaped, what is left of its group is SIGKILLed once and never signalled again.
* SIGINT/SIGTERM (and SIGHUP) stop every peer: SIGTERM to all at once, a
  bounded wait (``STOP_TIMEOUT``), then SIGKILL.  A second signal SIGKILLs
  at once.  On Linux each peer also gets SIGTERM from the kernel if this
  process dies without stopping them (``PR_SET_PDEATHSIG``): no orphans
  even after a SIGKILL of ``ensemble``.
* The foreground loop polls each peer's ``srvr`` (a process tells nothing
  else) at most every ``POLL_INTERVAL`` and prints each change of mode.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from . import EXIT_CONFIG, EXIT_FAILED, EXIT_OK
from .status import NOT_SERVING, four_letter_word

__all__ = ["Peer", "plan", "run_ensemble"]

POLL_INTERVAL = 0.5
STOP_TIMEOUT = 20.0
_PR_SET_PDEATHSIG = 1


@dataclass
class Peer:
    sid: int
    role: str  # "participant" | "observer"
    client_port: int
    quorum_port: int
    election_port: int
    directory: Path
    proc: subprocess.Popen[bytes] | None = None
    mode: str | None = None
    swept: bool = False

    def server_line(self) -> str:
        role = ":observer" if self.role == "observer" else ""
        return (f"server.{self.sid}=127.0.0.1:{self.quorum_port}:{self.election_port}{role}"
                f";127.0.0.1:{self.client_port}")


def _free_ports(n: int) -> list[int]:
    socks = []
    try:  # hold every socket until all are picked, so the ports differ
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _existing(root: Path) -> dict[int, tuple[str, int, int, int]] | None:
    """The server.N lines of an earlier run (peer1/zoo.cfg), or ``None``."""
    cfg = root / "peer1" / "zoo.cfg"
    if not cfg.exists():
        return None
    from ..config import parse_properties

    found: dict[int, tuple[str, int, int, int]] = {}
    for _, key, value in parse_properties(cfg.read_text()):
        if key.startswith("server.") and key[7:].isdigit():
            addr, _, client = value.partition(";")
            parts = addr.split(":")
            found[int(key[7:])] = (
                "observer" if parts[-1] == "observer" else "participant",
                int(client.rpartition(":")[2]), int(parts[1]), int(parts[2]),
            )
    return found


def plan(root: Path, size: int, observers: int, base_port: int | None) -> list[Peer]:
    """The peers, reusing an earlier run's files in ``root`` when its layout matches.

    Raises:
        ValueError: a bad size, or ``root`` holds an ensemble of another layout.
    """
    if size < 1 or observers < 0:
        raise ValueError("--size must be at least 1 and --observers at least 0")
    if size < 2:
        raise ValueError("--size must be at least 2 (for one server: trio-quorum serve)")
    n = size + observers
    roles = ["participant"] * size + ["observer"] * observers
    old = _existing(root)
    if old is not None:
        if sorted(old) != list(range(1, n + 1)) or [old[s][0] for s in sorted(old)] != roles:
            raise ValueError(
                f"{root} holds an ensemble of another layout ({len(old)} peers); "
                "remove it or pass another --dir"
            )
        return [Peer(s, old[s][0], old[s][1], old[s][2], old[s][3], root / f"peer{s}") for s in sorted(old)]
    if base_port is not None:
        ports = list(range(base_port, base_port + 3 * n))
        if ports[-1] > 65535:
            raise ValueError(f"--base-port {base_port}: the last port {ports[-1]} is above 65535")
    else:
        ports = _free_ports(3 * n)
    return [
        Peer(i + 1, roles[i], ports[3 * i], ports[3 * i + 1], ports[3 * i + 2], root / f"peer{i + 1}")
        for i in range(n)
    ]


def write_files(peers: list[Peer]) -> None:
    lines = (
        "# A local development ensemble written by 'trio-quorum ensemble' (127.0.0.1 only).\n"
        "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=data\n"
        "# every four-letter word: this is a development ensemble on 127.0.0.1\n"
        "4lw.commands.whitelist=*\n"
    )
    servers = "".join(p.server_line() + "\n" for p in peers)
    for p in peers:
        (p.directory / "data").mkdir(parents=True, exist_ok=True)
        (p.directory / "data" / "myid").write_text(f"{p.sid}\n")
        kind = "peerType=observer\n" if p.role == "observer" else ""
        (p.directory / "zoo.cfg").write_text(lines + kind + servers)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _start(p: Peer, log_level: str) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # The peers import this very package, wherever it was imported from.
    pkg_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([pkg_root, *filter(None, [env.get("PYTHONPATH")])])
    with open(p.directory / "peer.log", "ab") as log:
        log.write(f"=== trio-quorum ensemble: start of peer {p.sid} at {time.ctime()} ===\n".encode())
        log.flush()
        p.proc = subprocess.Popen(
            [sys.executable, "-m", "trio_quorum", "serve", "zoo.cfg", "--log-level", log_level],
            cwd=p.directory, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: pgid == pid
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
    p.swept = False


def _signal(p: Peer, sig: int) -> None:
    if p.proc is None or p.swept:
        return
    try:
        os.killpg(p.proc.pid, sig)
    except ProcessLookupError:
        pass


def _reap(p: Peer) -> None:
    """After the peer's exit: SIGKILL what is left of its group (a snapshot writer), once."""
    if p.proc is None or p.proc.poll() is None or p.swept:
        return
    _signal(p, signal.SIGKILL)
    p.swept = True


class _Stop(Exception):
    pass


def stop_all(peers: list[Peer], timeout: float = STOP_TIMEOUT) -> dict[int, int | None]:
    """SIGTERM every running peer, wait (bounded), SIGKILL the late ones; their exit codes."""
    for p in peers:
        if p.proc is not None and p.proc.poll() is None:
            _signal(p, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    codes: dict[int, int | None] = {}
    for p in peers:
        if p.proc is None:
            continue
        try:
            codes[p.sid] = p.proc.wait(max(0.1, deadline - time.monotonic()))
        except (subprocess.TimeoutExpired, _Stop):  # too slow, or a second signal: no more waiting
            _signal(p, signal.SIGKILL)
            codes[p.sid] = p.proc.wait(10)
        _reap(p)
    return codes


def _mode(p: Peer) -> str | None:
    try:
        answer = four_letter_word("127.0.0.1", p.client_port, "srvr", 1.0)
    except OSError:
        return None
    if NOT_SERVING in answer:
        return "looking"
    for line in answer.splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None


def run_ensemble(args: Any, out: TextIO | None = None) -> int:
    out = out or sys.stderr
    root = Path(args.dir).resolve()
    try:
        peers = plan(root, args.size, args.observers, args.base_port)
    except ValueError as exc:
        print(f"trio-quorum ensemble: {exc}", file=out)
        return EXIT_CONFIG
    from .startup import StartupFailure, _check_port

    try:
        for p in peers:
            for what, port in (("client", p.client_port), ("quorum", p.quorum_port),
                               ("election", p.election_port)):
                _check_port(f"peer {p.sid} {what} port", "127.0.0.1", port, "--base-port")
    except StartupFailure as failure:
        print(failure.line.replace("trio-quorum:", "trio-quorum ensemble:", 1), file=out)
        return EXIT_FAILED
    write_files(peers)
    connect = ",".join(f"127.0.0.1:{p.client_port}" for p in peers)

    stop_reason: list[str] = []

    def on_signal(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if stop_reason:  # a second signal: SIGKILL now (raised into the stopping wait)
            raise _Stop(name)
        stop_reason.append(name)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        for p in peers:
            _start(p, args.log_level)
        print(f"trio-quorum ensemble: {args.size} voters" + (f" + {args.observers} observers" if args.observers
              else "") + f" under {root}", file=out)
        for p in peers:
            assert p.proc is not None
            print(f"  peer {p.sid} ({p.role}): pid {p.proc.pid}, client 127.0.0.1:{p.client_port}, quorum "
                  f"{p.quorum_port}, election {p.election_port}, log {p.directory / 'peer.log'}", file=out)
        print(f"  connect string: {connect}\n  status: trio-quorum status {connect}\n"
              "  stop: Ctrl-C or SIGTERM (stops every peer)", file=out, flush=True)
        _watch(peers, stop_reason, out)
        print(f"trio-quorum ensemble: {stop_reason[0]} received, stopping every peer", file=out, flush=True)
        codes = stop_all(peers)
    except _Stop:
        codes = stop_all(peers, timeout=0)
    finally:
        for p in peers:  # whatever happened above, no peer outlives us
            if p.proc is not None and p.proc.poll() is None:
                _signal(p, signal.SIGKILL)
                p.proc.wait(10)
            _reap(p)
        for s, h in old.items():
            signal.signal(s, h)
    bad = {sid: c for sid, c in codes.items() if c not in (0, None)}
    print(f"trio-quorum ensemble: stopped ({'every peer exited 0' if not bad else f'exit codes {bad}'})",
          file=out, flush=True)
    return EXIT_OK if not bad else EXIT_FAILED


def _watch(peers: list[Peer], stop_reason: list[str], out: TextIO) -> None:
    announced = False
    while not stop_reason:
        for p in peers:
            if stop_reason:
                return
            if p.proc is not None and p.proc.poll() is not None and not p.swept:
                _reap(p)
                print(f"trio-quorum ensemble: peer {p.sid} exited with status {p.proc.returncode} "
                      f"(see {p.directory / 'peer.log'}); the others keep running", file=out, flush=True)
                p.mode = "exited"
                continue
            if p.swept:
                continue
            mode = _mode(p)
            if mode != p.mode and mode is not None:
                print(f"  peer {p.sid}: {mode}", file=out, flush=True)
                p.mode = mode
        if not announced and all(p.mode in ("leader", "follower", "observer") for p in peers):
            leader = next((p.sid for p in peers if p.mode == "leader"), None)
            print(f"trio-quorum ensemble: serving, leader is peer {leader}", file=out, flush=True)
            announced = True
        deadline = time.monotonic() + POLL_INTERVAL
        while not stop_reason and time.monotonic() < deadline:
            time.sleep(0.05)
