"""``trio-quorum`` command line: ``serve [zoo.cfg]`` plus the storage tools.

``serve`` runs one server in the foreground (no fork, no daemon).  SIGTERM or
Ctrl-C stops the supervision tree gracefully with the reason "SIGTERM received"
(children before parents, client port first, storage closed last with a flush
+ fsync) and the process exits 0; a second signal cancels everything at once
(storage is still closed, shielded and bounded).  An invalid configuration
prints the error (key and line) and exits with status 2; a server that fails
(a vital actor crashed, see ``server/peer.py``) or cannot bind prints
why and exits with status 1.

``serve --readonlymode`` (or ``TRIO_QUORUM_READONLYMODE=true`` in the
environment) is ZooKeeper's ``-Dreadonlymode.enabled=true`` system property:
a peer cut off from its quorum serves read-only clients (same as
``readonlymode.enabled=true`` in zoo.cfg, which trio-quorum also reads;
ZooKeeper itself only reads the system property).
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
EXIT_FAILED = 1


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s [%(name)s] %(message)s",
    )


def _serve(args: argparse.Namespace) -> int:
    import trio

    from actors import ChildStartFailed

    from .config import ConfigError, default_config
    from .server.configfile import load_config
    from .server.peer import Peer, ServerFailed, open_storage

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
    if args.readonlymode:
        from .config import ALL_4LW

        cfg.read_only_mode_enabled = True
        if cfg.fourlw_whitelist != ALL_4LW:  # as the system property does: isro is always allowed
            cfg.fourlw_whitelist = cfg.fourlw_whitelist | {"isro"}
    class Announce(trio.TaskStatus[int]):
        """``task_status`` for :meth:`Peer.run`: prints how to connect once serving."""

        def started(self, value: int | None = None) -> None:
            if not args.config:
                print(
                    f"trio-quorum: standalone server on {cfg.client_port_address}:{value}, data in "
                    f"{cfg.data_dir}\n  connect: zkCli.sh -server {cfg.client_port_address}:{value}"
                    f"  |  KazooClient('{cfg.client_port_address}:{value}')\n  stop: Ctrl-C",
                    file=sys.stderr,
                    flush=True,
                )

    async def main() -> None:
        server = Peer(cfg, open_storage(cfg))
        hard = trio.CancelScope()

        async def watch_signals() -> None:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for signum in signals:
                    name = signal.Signals(signum).name
                    if not server.stopping:
                        log.info("received %s, shutting down", name)
                        server.shutdown(f"{name} received")
                    else:  # impatient: a second signal cancels everything now
                        log.warning("received %s again, cancelling", name)
                        hard.cancel(reason=f"{name} received twice")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_signals)
            try:
                with hard:
                    await server.run(task_status=Announce())
            finally:
                nursery.cancel_scope.cancel(reason="server stopped")

    try:
        trio.run(main)
    except BaseException as raised:  # trio's strict groups wrap what main raised
        err = _single(raised)
        if isinstance(err, KeyboardInterrupt):
            pass
        elif isinstance(err, ServerFailed):
            print(f"trio-quorum: fatal: {err}", file=sys.stderr)
            return EXIT_FAILED
        elif isinstance(err, (ChildStartFailed, OSError)):
            why = err.__cause__ if isinstance(err, ChildStartFailed) and err.__cause__ else err
            log.error("cannot serve: %s", why)
            print(f"trio-quorum: cannot serve: {why}", file=sys.stderr)
            return EXIT_FAILED
        else:
            raise
    log.info("server stopped")
    return 0


def _single(exc: BaseException) -> BaseException:
    """The one exception inside (nested) single-member groups, else ``exc``."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


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
    s.add_argument(
        "--readonlymode", action="store_true",
        default=os.environ.get("TRIO_QUORUM_READONLYMODE", "").strip().lower() in ("1", "true", "yes"),
        help="serve read-only clients while cut off from the quorum (ZooKeeper's -Dreadonlymode.enabled=true; "
             "env TRIO_QUORUM_READONLYMODE=true)",
    )
    for name, helptext in (
        ("log-dump", "print a txn log file (like ZooKeeper's TxnLogToolkit)"),
        ("snapshot-dump", "print a snapshot file (like SnapshotFormatter)"),
        ("purge", "keep the newest N snapshots and the logs they need: purge DATADIR -n N"),
        ("bench", "benchmark side by side with Apache ZooKeeper (see bench --help)"),
    ):
        t = sub.add_parser(name, help=helptext, add_help=False)
        t.add_argument("rest", nargs=argparse.REMAINDER)
    # argparse would reorder options of the tool subcommands; hand them their argv untouched.
    if argv and argv[0] in ("log-dump", "snapshot-dump", "purge"):
        return _tool(argv[0].replace("-", "_") + "_main", argv[1:])
    if argv and argv[0] == "bench":
        from .bench import main as bench_main

        return bench_main(argv[1:])
    args = p.parse_args(argv)
    if args.cmd == "serve":
        return _serve(args)
    return 2  # unreachable: argparse requires a known subcommand


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
