"""What ``serve`` says and checks around start-up: logging, the banner, pre-flight, failures.

Invariants:

* Every start-up failure ends in ONE line on stderr,
  ``trio-quorum: <the thing (key, path, host:port)>: <what is wrong>; <what to do>``,
  and an exit code: :data:`EXIT_CONFIG` (2) for the configuration (a bad
  value, a dataDir that is a file), :data:`EXIT_FAILED` (1) for the run-time
  environment (a port in use, a directory this user cannot write).
* Tracebacks are logged only at ``--log-level DEBUG``: at other levels the
  handlers drop ``exc_info`` (the message itself, naming what failed, stays).
* Pre-flight checks run before the server starts, so the common failures are
  reported with the key they come from; the server's own errors (a race lost
  to another process, a disk failing later) are mapped by :func:`describe_failure`.
"""

from __future__ import annotations

import errno
import logging
import logging.handlers
import os
import socket
import sys
from collections.abc import Iterator

from ..config import ServerConfig
from . import EXIT_CONFIG, EXIT_FAILED

__all__ = [
    "StartupFailure",
    "banner",
    "describe_failure",
    "preflight",
    "setup_logging",
]

LOG_FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"


class StartupFailure(Exception):
    """A failure to start: ``str()`` is the one line to print, ``code`` the exit status."""

    def __init__(self, line: str, code: int = EXIT_FAILED) -> None:
        super().__init__(line)
        self.line = line
        self.code = code


class _NoTracebacks(logging.Filter):
    """Drop ``exc_info`` from records (the message stays): tracebacks are for DEBUG runs."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


def setup_logging(level: str, log_file: str | None = None, max_bytes: int = 0, backups: int = 5) -> None:
    """Log to stderr, or to ``log_file`` rotated at ``max_bytes`` keeping ``backups`` old files.

    Raises:
        StartupFailure: an unknown level, or a log file that cannot be opened.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise StartupFailure(
            f"trio-quorum: --log-level {level}: unknown level; use DEBUG, INFO, WARNING or ERROR",
            EXIT_CONFIG,
        )
    handler: logging.Handler
    if log_file:
        try:
            handler = logging.handlers.RotatingFileHandler(
                log_file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
            )
        except OSError as exc:
            raise StartupFailure(
                f"trio-quorum: --log-file {log_file}: {exc.strerror or exc}; "
                "choose a writable path (or log to stderr without --log-file)",
                EXIT_FAILED,
            ) from None
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    if numeric > logging.DEBUG:
        handler.addFilter(_NoTracebacks())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)


# -- pre-flight ------------------------------------------------------------------------------


def _directories(cfg: ServerConfig, source: str) -> Iterator[tuple[str, str]]:
    """(key, path) of the directories the server writes."""
    key_where = "dataDir" if source == "<defaults>" else f"dataDir in {source}"
    yield key_where, cfg.data_dir
    if cfg.data_log_dir and os.path.abspath(cfg.data_log_dir) != os.path.abspath(cfg.data_dir):
        yield key_where.replace("dataDir", "dataLogDir"), cfg.data_log_dir


def _check_directory(key: str, path: str) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise StartupFailure(
            f"trio-quorum: {key}: {path} is a file, not a directory; point {key.split()[0]} at a directory",
            EXIT_CONFIG,
        )
    probe = os.path.join(path, "version-2", f".trio-quorum-write-test.{os.getpid()}")
    try:
        os.makedirs(os.path.dirname(probe), exist_ok=True)
        with open(probe, "wb"):
            pass
        os.unlink(probe)
    except OSError as exc:
        who = f"user {os.getuid()}" if hasattr(os, "getuid") else "this user"
        raise StartupFailure(
            f"trio-quorum: cannot serve: {key}: cannot write {exc.filename or path}: {exc.strerror or exc}; "
            f"make {path} writable by {who} or point {key.split()[0]} elsewhere",
            EXIT_FAILED,
        ) from None


def _listen_addresses(cfg: ServerConfig) -> Iterator[tuple[str, str, int]]:
    """(what, host, port) of every socket the server will listen on."""
    if cfg.client_port:
        yield "clientPort", cfg.client_port_address, cfg.client_port
    q = cfg.quorum
    if q is not None:
        me = q.me
        host = "0.0.0.0" if q.quorum_listen_on_all_ips else me.host
        yield f"server.{me.sid} quorum port", host, me.quorum_port
        yield f"server.{me.sid} election port", host, me.election_port


def _check_port(what: str, host: str, port: int, source: str) -> None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupFailure(
            f"trio-quorum: {what} {host}:{port}: cannot resolve {host} ({exc.strerror}); "
            f"fix the address in {source}",
            EXIT_CONFIG,
        ) from None
    for family, kind, proto, _, addr in infos:
        with socket.socket(family, kind, proto) as s:
            # As the server binds (SO_REUSEADDR): a port in TIME_WAIT is not "in use".
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(addr)
            except OSError as exc:
                raise StartupFailure(_bind_failure(what, host, port, exc, source), EXIT_FAILED) from None


def _bind_failure(what: str, host: str, port: int, exc: OSError, source: str) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"trio-quorum: cannot serve: {what} {host}:{port}: address already in use; stop what listens there "
            f"(ss -ltnp 'sport = :{port}') or choose another port in {source}"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"trio-quorum: cannot serve: {what} {host}:{port}: {host} is not an address of this machine; fix it in {source}"
    if exc.errno == errno.EACCES:
        return f"trio-quorum: cannot serve: {what} {host}:{port}: permission denied (ports below 1024 need privileges); choose a port >= 1024 in {source}"
    return f"trio-quorum: cannot serve: {what} {host}:{port}: cannot listen: {exc.strerror or exc}"


def preflight(cfg: ServerConfig, source: str) -> None:
    """Check what the server will need before starting it (``source``: the zoo.cfg, or ``<defaults>``).

    Raises:
        StartupFailure: the first problem, as its one line and exit code.
    """
    where = "zoo.cfg" if source == "<defaults>" else source
    for key, path in _directories(cfg, source):
        _check_directory(key, path)
    for what, host, port in _listen_addresses(cfg):
        _check_port(what, host, port, where)


# -- what it says ----------------------------------------------------------------------------


def _shown(host: str, port: int) -> str:
    if host in ("0.0.0.0", "::", ""):
        return f"{host or '0.0.0.0'}:{port} (all interfaces)"
    return f"{host}:{port}"


def banner(cfg: ServerConfig, source: str, port: int | None, version: str) -> str:
    """The lines printed once the server has bound its port: where it listens, its data, its 4lw."""
    reach = cfg.client_port_address if cfg.client_port_address not in ("0.0.0.0", "::", "") else "127.0.0.1"
    q = cfg.quorum
    if q is None:
        what = "standalone server"
    else:
        what = f"peer {q.my_id} ({q.me.role}) of an ensemble of {len(q.voters)} voters"
        if q.observers:
            what += f" and {len(q.observers)} observers"
    words = "*" if cfg.fourlw_whitelist >= _all_words() else ",".join(sorted(cfg.fourlw_whitelist)) or "(none)"
    lines = [
        f"trio-quorum {version}: {what}, configuration from {source}",
        f"  client port: {_shown(cfg.client_port_address, port or 0)}",
    ]
    if q is not None:
        host = "0.0.0.0" if q.quorum_listen_on_all_ips else q.me.host
        lines.append(
            f"  quorum port: {_shown(host, q.me.quorum_port)}  election port: {_shown(host, q.me.election_port)}"
        )
    lines.append(f"  dataDir: {cfg.data_dir}")
    if cfg.data_log_dir and os.path.abspath(cfg.data_log_dir) != os.path.abspath(cfg.data_dir):
        lines.append(f"  dataLogDir: {cfg.data_log_dir}")
    lines += [
        f"  four-letter words allowed: {words} (4lw.commands.whitelist; ruok is off by default,"
        " as in ZooKeeper 3.8)",
        f"  connect: zkCli.sh -server {reach}:{port}  |  KazooClient(hosts='{reach}:{port}')",
        "  stop: Ctrl-C or SIGTERM (a second one stops at once)",
    ]
    return "\n".join(lines)


def _all_words() -> frozenset[str]:
    from ..config import ALL_4LW

    return ALL_4LW


def describe_failure(exc: BaseException, cfg: ServerConfig, source: str) -> StartupFailure | None:
    """The one line for an error the running server raised, or ``None`` if it is not a known kind."""
    from actors import ChildStartFailed

    where = "zoo.cfg" if source == "<defaults>" else source
    actor = exc.path if isinstance(exc, ChildStartFailed) else None
    cause: BaseException | None = exc.__cause__ if isinstance(exc, ChildStartFailed) else exc
    if not isinstance(cause, OSError):
        if actor is not None:
            return StartupFailure(
                f"trio-quorum: cannot serve: actor {actor} failed to start: {cause!r}; "
                "run with --log-level DEBUG for the traceback"
            )
        return None
    if cause.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES) and (
        actor is None or actor.endswith("client-port")
    ) and cause.filename is None:
        return StartupFailure(
            _bind_failure("clientPort", cfg.client_port_address, cfg.client_port or 0, cause, where)
        )
    if cause.filename is not None:
        return StartupFailure(
            f"trio-quorum: cannot serve: {cause.filename}: {cause.strerror or cause}; check the permissions and free "
            f"space of dataDir {cfg.data_dir}"
        )
    return StartupFailure(
        f"trio-quorum: cannot serve: {'actor ' + actor + ': ' if actor else ''}{cause.strerror or cause}; "
        "run with --log-level DEBUG for the traceback"
    )
