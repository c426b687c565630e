"""Run ``python -m trio_quorum serve cfg`` as a subprocess for integration tests.

The server is started with ``clientPort=0`` (unless a port is given) and
reports the port it bound on stderr; :class:`ServerProcess` waits for that
line (bounded), keeps draining stderr in a thread so the pipe never fills, and
stops the process it started, by PID: SIGTERM + bounded wait, then SIGKILL.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

__all__ = ["ServerProcess", "write_cfg", "four_letter_word"]

REPO = Path(__file__).resolve().parents[2]
_READY = re.compile(r"serving standalone on (\S+):(\d+)")


def write_cfg(directory: Path, *, port: int = 0, extra: str = "", data_dir: Path | None = None) -> Path:
    """A zoo.cfg for a loopback standalone server; returns its path."""
    data = data_dir or (directory / "data")
    cfg = directory / "zoo.cfg"
    cfg.write_text(
        f"tickTime=200\ndataDir={data}\nclientPort={port}\nclientPortAddress=127.0.0.1\n"
        f"minSessionTimeout=400\nmaxSessionTimeout=10000\n{extra}"
    )
    return cfg


def four_letter_word(port: int, word: str, timeout: float = 5.0) -> str:
    """Send ``word``; return everything the server wrote before closing."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(word.encode())
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            d = s.recv(65536)
            if not d:
                break
            chunks.append(d)
    return b"".join(chunks).decode()


class ServerProcess:
    """A trio-quorum server subprocess (use as a context manager)."""

    def __init__(self, cfg: Path, *, startup_timeout: float = 20.0) -> None:
        self.cfg = cfg
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.stderr_lines: list[str] = []
        self._ready = threading.Event()
        self._lines_cv = threading.Condition()
        self._eof = False
        self._reader: threading.Thread | None = None

    def start(self) -> ServerProcess:
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "trio_quorum", "serve", str(self.cfg)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=str(self.cfg.parent),
            env=env,
        )
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        if not self._ready.wait(self.startup_timeout) or not self.port:
            code = self.proc.poll()
            self.kill()
            raise RuntimeError(
                f"server did not start (exit {code}):\n" + "".join(self.stderr_lines[-40:])
            )
        return self

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._lines_cv:
                self.stderr_lines.append(line)
                self._lines_cv.notify_all()
            m = _READY.search(line)
            if m and not self.port:
                self.port = int(m.group(2))
                self._ready.set()
        self._ready.set()
        with self._lines_cv:
            self._eof = True
            self._lines_cv.notify_all()

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return "".join(self.stderr_lines)

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> bool:
        """Bounded polling of the captured stderr for ``pattern`` (a regex)."""
        rx = re.compile(pattern)
        with self._lines_cv:
            return self._lines_cv.wait_for(
                lambda: self._eof or any(rx.search(line) for line in self.stderr_lines), timeout
            ) and any(rx.search(line) for line in self.stderr_lines)

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait (bounded); returns the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(5)
        self._close_pipe()
        return code

    def _close_pipe(self) -> None:
        if self._reader is not None:
            self._reader.join(5)
        if self.proc is not None and self.proc.stderr is not None and not self._reader_alive():
            self.proc.stderr.close()

    def _reader_alive(self) -> bool:
        return self._reader is not None and self._reader.is_alive()

    def kill(self) -> None:
        """SIGKILL (no clean shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._close_pipe()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.terminate()
