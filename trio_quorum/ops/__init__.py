"""Operator-facing commands behind the ``trio-quorum`` CLI (IO shells; no protocol logic).

* :mod:`.startup` — what ``serve`` checks and says before and while starting:
  logging (stderr or a rotating ``--log-file``), the start banner, the
  pre-flight checks of dataDir and ports, and one-line start-up failures.
* :mod:`.serve` — the ``serve`` command: one server in the foreground.
* :mod:`.ensemble` — ``ensemble``: a local development ensemble, one
  ``trio-quorum serve`` process per peer, in the foreground.
* :mod:`.status` — ``status``: mode, zxid, connections of servers (``srvr``/``mntr``).

Exit codes shared by every command: 0 success, 1 a run-time failure (port in
use, unwritable directory, a server that failed), 2 a configuration or usage
error.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2

__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_CONFIG", "version"]


def version() -> str:
    """The installed distribution's version (the source tree's when not installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("trio-quorum")
    except PackageNotFoundError:
        return "0.1.0"
