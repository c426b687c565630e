"""Run Debian's Apache ZooKeeper 3.8 as a reference server or tool in tests.

Usage::

    from tests.support.apache_zk import apache_zookeeper, run_zk_tool, require_zookeeper

    def test_x(tmp_path):
        with apache_zookeeper(tmp_path / "data", extra_cfg={"snapCount": "10"}) as zk:
            client = KazooClient(hosts=zk.hosts); ...
        # the server is stopped here (SIGTERM, then SIGKILL after a bounded wait)

    res = run_zk_tool("org.apache.zookeeper.server.SnapshotFormatter", "-d", path)

* The server is ``java -cp <zookeeper.jar + slf4j-simple> ZooKeeperServerMain <cfg>``
  on a free 127.0.0.1 port; ``zookeeper.jar``'s manifest pulls its other jars
  from ``/usr/share/java``.  Its log goes to ``<cfg dir>/zookeeper.log``.
* Start-up is awaited by asking ``srvr`` until it answers; between attempts the
  helper waits for the next line of ZooKeeper's log (select with a timeout), not
  a fixed sleep; the whole wait is bounded by ``timeout``.
* Everything is skipped (``pytest.skip``) with a clear reason when Java or the
  package is missing.  Only the process this helper started is ever signalled,
  by its PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = [
    "ZK_JAR",
    "zookeeper_unavailable_reason",
    "require_zookeeper",
    "zk_classpath",
    "free_port",
    "four_letter_word",
    "ZkProcess",
    "apache_zookeeper",
    "run_zk_tool",
    "zk_java_command",
]

ZK_JAR = Path("/usr/share/java/zookeeper.jar")
_SLF4J_SIMPLE = Path("/usr/share/java/slf4j-simple.jar")


def zookeeper_unavailable_reason() -> str | None:
    """Why Apache ZooKeeper cannot be run here, or ``None`` when it can."""
    if shutil.which("java") is None:
        return "java is not installed (apt-get install default-jre-headless)"
    if not ZK_JAR.exists():
        return f"{ZK_JAR} is missing (apt-get install zookeeper)"
    return None


def require_zookeeper() -> None:
    """``pytest.skip`` the calling test when ZooKeeper is unavailable."""
    reason = zookeeper_unavailable_reason()
    if reason is not None:
        pytest.skip(f"Apache ZooKeeper unavailable: {reason}")


def zk_classpath() -> str:
    parts = [str(ZK_JAR)]
    if _SLF4J_SIMPLE.exists():
        parts.append(str(_SLF4J_SIMPLE))
    return os.pathsep.join(parts)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def four_letter_word(port: int, word: str = "srvr", timeout: float = 2.0) -> str:
    """Send a four-letter word to 127.0.0.1:port and return the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(word.encode())
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks).decode(errors="replace")


@dataclass
class ZkProcess:
    """A running Apache ZooKeeper server started by :func:`apache_zookeeper`."""

    proc: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    data_log_dir: Path
    cfg_path: Path
    log_path: Path
    stopped: bool = field(default=False)
    output: threading.Condition = field(default_factory=threading.Condition)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def hosts(self) -> str:
        """kazoo's ``hosts`` string."""
        return f"127.0.0.1:{self.port}"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM this server (by PID), wait up to ``timeout`` s, then SIGKILL; return its exit code."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        self.stopped = True
        return int(self.proc.returncode)


@contextmanager
def apache_zookeeper(
    data_dir: str | os.PathLike[str],
    *,
    data_log_dir: str | os.PathLike[str] | None = None,
    extra_cfg: Mapping[str, str] | None = None,
    java_opts: tuple[str, ...] = (),
    timeout: float = 60.0,
) -> Iterator[ZkProcess]:
    """Start Apache ZooKeeper standalone on ``data_dir`` and stop it on exit.

    Args:
        data_dir: ``dataDir`` (created if missing).
        data_log_dir: ``dataLogDir`` (defaults to ``data_dir``).
        extra_cfg: more ``zoo.cfg`` keys (e.g. ``{"snapCount": "10"}``).
        java_opts: extra JVM options (e.g. ``"-Dzookeeper.forceSync=no"``).
        timeout: bound on the start-up wait, seconds.

    Yields:
        a :class:`ZkProcess`; ``zk.hosts`` is the connect string.

    Raises:
        RuntimeError: ZooKeeper exited or did not answer ``srvr`` in time (the
            message carries the tail of its log).
    """
    require_zookeeper()
    data = Path(data_dir)
    data.mkdir(parents=True, exist_ok=True)
    logs = Path(data_log_dir) if data_log_dir is not None else data
    logs.mkdir(parents=True, exist_ok=True)
    conf = data.parent / f"{data.name}-zkconf"
    conf.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cfg = {
        "tickTime": "2000",
        "dataDir": str(data),
        "dataLogDir": str(logs),
        "clientPort": str(port),
        "clientPortAddress": "127.0.0.1",
        "admin.enableServer": "false",
        "4lw.commands.whitelist": "*",
        "maxClientCnxns": "0",
    }
    cfg.update(extra_cfg or {})
    cfg_path = conf / "zoo.cfg"
    cfg_path.write_text("".join(f"{k}={v}\n" for k, v in cfg.items()))
    log_path = conf / "zookeeper.log"
    cmd = [
        "java",
        "-Xmx256m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Dzookeeper.admin.enableServer=false",
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
        "-Dorg.slf4j.simpleLogger.showDateTime=true",
        *java_opts,
        "-cp",
        zk_classpath(),
        "org.apache.zookeeper.server.ZooKeeperServerMain",
        str(cfg_path),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    zk = ZkProcess(proc, port, data, logs, cfg_path, log_path)
    drainer = threading.Thread(target=_drain, args=(zk,), name=f"zk-log-{proc.pid}", daemon=True)
    drainer.start()
    try:
        _wait_ready(zk, timeout)
        yield zk
    finally:
        zk.stop()
        drainer.join(10)
        if proc.stdout is not None:
            proc.stdout.close()


def _drain(zk: ZkProcess) -> None:
    # copy ZooKeeper's output to its log file and wake the start-up waiter per line
    assert zk.proc.stdout is not None
    with open(zk.log_path, "ab") as out:
        for line in zk.proc.stdout:
            out.write(line)
            out.flush()
            with zk.output:
                zk.output.notify_all()
    with zk.output:
        zk.output.notify_all()


def _wait_ready(zk: ZkProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if zk.proc.poll() is not None:
            raise RuntimeError(f"ZooKeeper exited with {zk.proc.returncode}:\n{zk.log_text()[-4000:]}")
        try:
            if "Zookeeper version" in four_letter_word(zk.port, "srvr", timeout=1.0):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"ZooKeeper did not answer srvr within {timeout}s:\n{zk.log_text()[-4000:]}")
        # wait for ZooKeeper to log its next line (bounded), not a fixed sleep
        with zk.output:
            zk.output.wait(0.25)


def zk_java_command(main_class: str, *args: str, java_opts: tuple[str, ...] = (), xmx: str = "192m") -> list[str]:
    """The ``java`` command line running ``main_class`` of ZooKeeper 3.8 (Java 17), tuned to start
    fast on a small machine (serial GC, C1 only, no admin server), logging to stdout."""
    return [
        "java",
        f"-Xmx{xmx}",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Dzookeeper.admin.enableServer=false",
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
        "-Dorg.slf4j.simpleLogger.showDateTime=true",
        *java_opts,
        "-cp",
        zk_classpath(),
        main_class,
        *args,
    ]


def run_zk_tool(main_class: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run one of ZooKeeper's command-line classes (TxnLogToolkit, SnapshotFormatter, ...)."""
    require_zookeeper()
    return subprocess.run(
        ["java", "-Xmx128m", "-XX:TieredStopAtLevel=1", "-cp", zk_classpath(), main_class, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
