"""``trio-quorum serve [zoo.cfg]``: one server (standalone, or one peer of an ensemble) in the foreground.

No fork, no daemon: a service manager (systemd, docs/operations.md) keeps it
running.  SIGTERM or SIGINT stops the supervision tree gracefully with the
reason "SIGTERM received" (children before parents, the client port first,
storage closed last with a flush + fsync) and the process exits 0; a second
signal cancels everything at once (storage is still closed, shielded and
bounded).

Invariants (with :mod:`.startup`): every way of not serving ends in one line
naming what failed and what to do, exit 2 for the configuration (every
problem of a zoo.cfg is listed first, each with its key and line) and 1 for
run-time failures; tracebacks only at ``--log-level DEBUG``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

from ..config import ConfigError, ServerConfig, default_config
from . import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, version
from .startup import StartupFailure, banner, describe_failure, preflight, setup_logging

__all__ = ["run_serve", "load"]

log = logging.getLogger("trio_quorum")


def load(config: str | None) -> tuple[ServerConfig, list[str], str]:
    """The configuration (``config`` = a zoo.cfg path, or ``None`` for the built-in defaults),
    its warnings, and how to name its source in messages.

    Raises:
        StartupFailure: every problem of the file, then the one line of what to do (exit 2).
    """
    from ..server.configfile import load_config

    if not config:
        return default_config(os.getcwd()), [], "<defaults>"
    try:
        cfg, warnings = load_config(config)
    except ConfigError as exc:
        problems = exc.problems
        if len(problems) == 1:
            raise StartupFailure(
                f"trio-quorum: invalid configuration: {problems[0]}; fix it in {config} and start again "
                "(every key: docs/configuration.md)",
                EXIT_CONFIG,
            ) from None
        listing = "".join(f"  {p}\n" for p in problems)
        raise StartupFailure(
            f"trio-quorum: invalid configuration: {config}: {len(problems)} problems:\n{listing}"
            f"trio-quorum: {config}: fix the {len(problems)} problems above and start again "
            "(every key: docs/configuration.md)",
            EXIT_CONFIG,
        ) from None
    return cfg, warnings, config


def run_serve(args: Any) -> int:
    """The ``serve`` command (``args``: the parsed options of cli.py's ``serve`` parser)."""
    debug = str(args.log_level).upper() == "DEBUG"
    try:
        setup_logging(args.log_level, args.log_file, args.log_max_bytes, args.log_backups)
        cfg, warnings, source = load(args.config)
        for w in warnings:
            log.warning("%s: %s", source, w)
        if getattr(args, "readonlymode", False):
            from ..config import ALL_4LW

            # ZooKeeper's -Dreadonlymode.enabled=true: isro is then always allowed.
            cfg.read_only_mode_enabled = True
            if cfg.fourlw_whitelist != ALL_4LW:
                cfg.fourlw_whitelist = cfg.fourlw_whitelist | {"isro"}
        preflight(cfg, source)
        return _run(cfg, source, debug)
    except StartupFailure as failure:
        print(failure.line, file=sys.stderr, flush=True)
        return failure.code


def _run(cfg: ServerConfig, source: str, debug: bool) -> int:
    import trio

    from ..server.peer import Peer, ServerFailed, open_storage

    class Announce(trio.TaskStatus[int]):
        """``task_status`` for :meth:`Peer.run`: says where it listens once the port is bound."""

        def started(self, value: int | None = None) -> None:
            text = banner(cfg, source, value, version())
            print(text, file=sys.stderr, flush=True)
            if _logs_to_file():  # the file keeps what was printed too
                log.info("%s", text)

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
            log.error("fatal: %s", err)
            print(
                f"trio-quorum: the server failed: {err}; everything acknowledged is in dataDir "
                f"{cfg.data_dir}: start it again to recover (the log above says why)",
                file=sys.stderr,
            )
            return EXIT_FAILED
        else:
            failure = describe_failure(err, cfg, source)
            if debug or failure is None and not isinstance(err, Exception):
                raise
            if failure is None:
                log.error("unexpected error: %r", err, exc_info=err)
                failure = StartupFailure(
                    f"trio-quorum: unexpected error: {err!r}; run with --log-level DEBUG for the traceback"
                )
            log.error("cannot serve: %s", failure.line.removeprefix("trio-quorum: "))
            print(failure.line, file=sys.stderr)
            return failure.code
    log.info("server stopped")
    return EXIT_OK


def _logs_to_file() -> bool:
    import logging.handlers

    return any(isinstance(h, logging.handlers.RotatingFileHandler) for h in logging.getLogger().handlers)


def _single(exc: BaseException) -> BaseException:
    """The one exception inside (nested) single-member groups, else ``exc``."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
