"""``trio-quorum`` command line: ``serve [zoo.cfg]`` plus the storage tools.

``serve`` runs one server in the foreground (no fork, no daemon).  SIGTERM or
Ctrl-C cancels the root scope with a reason; the server closes its storage
(flush + fsync) on the way out and the process exits 0.  An invalid
configuration prints the error (key and line) and exits with status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence

__all__ = ["main"]

log = logging.getLogger("trio_quorum")

EXIT_CONFIG = 2


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s [%(name)s] %(message)s",
    )


def _serve(args: argparse.Namespace) -> int:
    import trio

    from .config import ConfigError, default_config
    from .server.configfile import load_config
    from .server.standalone import serve_standalone

    _setup_logging(args.log_level)
    try:
        if args.config:
            cfg, warnings = load_config(args.config)
        else:
            cfg, warnings = default_config(os.getcwd()), []
    except ConfigError as exc:
        print(f"trio-quorum: invalid configuration: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    for w in warnings:
        log.warning("%s: %s", args.config, w)
    if not cfg.standalone:
        print(
            "trio-quorum: server.N lines found: replicated mode is not available in this build; "
            "remove them (or keep one) to run standalone",
            file=sys.stderr,
        )
        return EXIT_CONFIG

    async def main() -> None:
        with trio.CancelScope() as root:

            async def watch_signals() -> None:
                with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for signum in signals:
                        log.info("received %s, shutting down", signal.Signals(signum).name)
                        root.cancel(reason=f"signal {signal.Signals(signum).name}")
                        return

            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch_signals)
                port = await nursery.start(serve_standalone, cfg)
                if not args.config:
                    print(
                        f"trio-quorum: standalone server on {cfg.client_port_address}:{port}, data in "
                        f"{cfg.data_dir}\n  connect: zkCli.sh -server {cfg.client_port_address}:{port}"
                        f"  |  KazooClient('{cfg.client_port_address}:{port}')\n  stop: Ctrl-C",
                        file=sys.stderr,
                        flush=True,
                    )

    try:
        trio.run(main)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        log.error("cannot serve: %s", exc)
        return 1
    log.info("server stopped")
    return 0


def _tool(name: str, argv: list[str]) -> int:
    try:
        from .persistence import tools
    except ImportError as exc:
        print(f"trio-quorum: storage tools are not available: {exc}", file=sys.stderr)
        return 1
    fn = getattr(tools, name, None)
    if fn is None:
        print(f"trio-quorum: storage tool {name} is not available", file=sys.stderr)
        return 1
    return int(fn(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``trio-quorum`` console script and ``python -m trio_quorum``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="trio-quorum", description="A ZooKeeper-compatible server on Trio.")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run one server in the foreground")
    s.add_argument("config", nargs="?", help="zoo.cfg (default: standalone on 127.0.0.1:2181)")
    s.add_argument("--log-level", default=os.environ.get("TRIO_QUORUM_LOG_LEVEL", "INFO"))
    for name, helptext in (
        ("log-dump", "print a txn log file (like ZooKeeper's TxnLogToolkit)"),
        ("snapshot-dump", "print a snapshot file (like SnapshotFormatter)"),
        ("purge", "keep the newest N snapshots and the logs they need: purge DATADIR -n N"),
    ):
        t = sub.add_parser(name, help=helptext, add_help=False)
        t.add_argument("rest", nargs=argparse.REMAINDER)
    # argparse would reorder options of the tool subcommands; hand them their argv untouched.
    if argv and argv[0] in ("log-dump", "snapshot-dump", "purge"):
        return _tool(argv[0].replace("-", "_") + "_main", argv[1:])
    args = p.parse_args(argv)
    if args.cmd == "serve":
        return _serve(args)
    return 2  # unreachable: argparse requires a known subcommand


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
