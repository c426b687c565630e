"""The ``trio-quorum`` command line: argument parsing only; the commands live in :mod:`trio_quorum.ops`
(``serve``, ``ensemble``, ``status``) and :mod:`trio_quorum.persistence.tools` (the dump and purge tools).

Invariants:

* Every subcommand answers ``--help`` (exit 0) and ``--version``, and names
  itself ``trio-quorum <cmd>``.
* Exit codes: 0 success, 1 a run-time failure, 2 a configuration or usage
  error (argparse's own usage errors exit 2 too).
* The storage tools and ``bench`` get their argv untouched (argparse would
  reorder their options), and parse it themselves.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .ops import EXIT_FAILED, version

__all__ = ["main", "build_parser"]

_TOOLS = {
    "log-dump": "print the transactions of a txn log file or directory (like ZooKeeper's TxnLogToolkit)",
    "snapshot-dump": "print a snapshot file, or the newest one of a data directory (like SnapshotFormatter)",
    "purge": "keep the newest N snapshots and the txn logs they need (like PurgeTxnLog)",
    "bench": "benchmark side by side with Apache ZooKeeper (see trio-quorum bench --help)",
}

_LOG_LEVEL_HELP = (
    "DEBUG, INFO (default), WARNING or ERROR; DEBUG also prints tracebacks of failures "
    "(default from $TRIO_QUORUM_LOG_LEVEL)"
)


def _add_logging(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-level", default=os.environ.get("TRIO_QUORUM_LOG_LEVEL", "INFO"), help=_LOG_LEVEL_HELP)


def build_parser() -> argparse.ArgumentParser:
    v = f"trio-quorum {version()}"
    p = argparse.ArgumentParser(
        prog="trio-quorum",
        description="A ZooKeeper-compatible coordination service on Trio.",
        epilog="Each command has its own --help. Operations guide: docs/operations.md.",
    )
    p.add_argument("--version", action="version", version=v)
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    s = sub.add_parser(
        "serve", help="run one server (standalone or an ensemble peer) in the foreground",
        description="Run one server in the foreground until Ctrl-C or SIGTERM. Without a zoo.cfg: "
        "standalone on 127.0.0.1:2181 with its data in ./trio-quorum-data. With a zoo.cfg that has "
        "server.N lines (and dataDir/myid): one peer of an ensemble. Exit 2: invalid configuration; "
        "exit 1: could not serve (port in use, unwritable dataDir, a failure).",
    )
    s.add_argument("config", nargs="?", help="a ZooKeeper zoo.cfg (default: the built-in standalone defaults)")
    s.add_argument("--version", action="version", version=v)
    _add_logging(s)
    s.add_argument(
        "--log-file", metavar="PATH",
        help="log to PATH instead of stderr, rotated (default: stderr, for the service manager to keep)",
    )
    s.add_argument("--log-max-bytes", type=int, default=50 * 1024 * 1024, metavar="N",
                   help="rotate --log-file when it reaches N bytes (default 50 MiB; 0: never)")
    s.add_argument("--log-backups", type=int, default=5, metavar="N",
                   help="rotated log files to keep (default 5)")
    s.add_argument(
        "--readonlymode", action="store_true",
        default=os.environ.get("TRIO_QUORUM_READONLYMODE", "").strip().lower() in ("1", "true", "yes"),
        help="serve read-only clients while cut off from the quorum (ZooKeeper's -Dreadonlymode.enabled=true; "
             "env TRIO_QUORUM_READONLYMODE=true)",
    )

    e = sub.add_parser(
        "ensemble", help="run a local development ensemble, one serve process per peer",
        description="Run a local ensemble on 127.0.0.1 in the foreground: one 'trio-quorum serve' "
        "process per peer, each with its own zoo.cfg and dataDir/myid under DIR. Prints the connect "
        "string; Ctrl-C or SIGTERM stops every peer. Running it again in the same DIR reuses the "
        "peers' data and ports.",
    )
    e.add_argument("--size", type=int, default=3, help="voting peers (default 3)")
    e.add_argument("--observers", type=int, default=0, help="observers (default 0)")
    e.add_argument("--base-port", type=int, metavar="PORT",
                   help="peer N uses ports PORT+3(N-1) (client), +1 (quorum), +2 (election); "
                   "default: free ports")
    e.add_argument("--dir", default="trio-quorum-ensemble", help="where the peers live (default ./%(default)s)")
    e.add_argument("--version", action="version", version=v)
    _add_logging(e)

    st = sub.add_parser(
        "status", help="print mode, zxid, connections of servers (srvr/mntr four-letter words)",
        description="Ask each server for its srvr (and mntr, when whitelisted) four-letter word and "
        "print one line per server. Exit 0 when every server serves, 1 otherwise.",
    )
    st.add_argument("servers", nargs="+", metavar="HOST:PORT",
                    help="servers (a connect string 'h1:p1,h2:p2' works too)")
    st.add_argument("--timeout", type=float, default=2.0, help="seconds per server (default 2)")
    st.add_argument("--version", action="version", version=v)

    for name, helptext in _TOOLS.items():
        t = sub.add_parser(name, help=helptext, add_help=False)
        t.add_argument("rest", nargs=argparse.REMAINDER)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``trio-quorum`` console script and ``python -m trio_quorum``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("log-dump", "snapshot-dump", "purge"):
        return _tool(argv[0].replace("-", "_") + "_main", argv[1:])
    if argv and argv[0] == "bench":
        if argv[1:] == ["--version"]:
            print(f"trio-quorum {version()}")
            return 0
        from .bench import main as bench_main

        return int(bench_main(argv[1:]))
    args = build_parser().parse_args(argv)
    if args.cmd == "serve":
        from .ops.serve import run_serve

        return run_serve(args)
    if args.cmd == "ensemble":
        from .ops.ensemble import run_ensemble

        return run_ensemble(args)
    if args.cmd == "status":
        from .ops.status import run_status

        return run_status(args)
    return 2  # unreachable: argparse requires a known subcommand


def _tool(name: str, argv: list[str]) -> int:
    try:
        from .persistence import tools
    except ImportError as exc:
        print(f"trio-quorum: storage tools are not available: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return int(getattr(tools, name)(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
