"""Process hygiene for the forked snapshot writer (see :mod:`.filestore`).

What a child forked from the server must do before it touches anything, and
how the parent reaps it.  Invariants: the child owns no inherited fd but
stdio (a client socket the parent closes is really closed), runs no garbage
collection (a collection would touch, so copy, every page of the tree), and
dies with the parent (a SIGKILLed server leaves no writer behind).
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal

__all__ = ["ForkUnavailable", "max_fd", "prepare_child", "reap", "unlink_quietly"]


class ForkUnavailable(Exception):
    """No ``os.fork``/``os.pidfd_open`` here: snapshots are written in the event loop instead."""


def prepare_child(parent: int) -> None:  # pragma: no cover - runs in the forked child
    """First thing in the child: no gc, default signals, no inherited fds, die with ``parent``."""
    gc.disable()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    os.closerange(3, max_fd())
    _die_with_parent(parent)


def reap(pid: int, *, kill: bool = False) -> int:
    """Reap an exited child (after its pidfd turned readable), or kill it first; its exit code."""
    if kill:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def max_fd() -> int:
    try:
        return int(os.sysconf("SC_OPEN_MAX"))
    except (ValueError, OSError):
        return 65536


def _die_with_parent(parent: int) -> None:  # pragma: no cover - runs in the forked child
    """Linux: SIGKILL this child when the parent dies."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
