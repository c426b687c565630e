"""zoo.cfg text -> :class:`~.model.ServerConfig`, with ZooKeeper 3.8's rules.

Two passes.  Every line is looked up in the key table (:mod:`.keys`) and
parsed by its row; then the whole-file rules (:data:`RULES`: required keys,
the session timeout range, the ensemble, myid, the client port) run on the
result.  Problems are collected, not raised one at a time: a config with
three mistakes reports three, each naming its key and line.

Invariants:

* Nothing here raises anything but :class:`~.model.ConfigError` for bad
  input, and it is raised only at the end, with every problem found.
* A value that failed to parse leaves its field at the default, and the
  whole-file rules do not report it a second time (they check presence by
  key, not by value).
* Keys ZooKeeper turns into ``zookeeper.<key>`` system properties are
  accepted both bare and with the ``zookeeper.`` prefix.
* ``ServerConfig.quorum`` is built only when the configuration is
  distributed and every ensemble rule held.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import replace

from .keys import Key, lookup
from .model import (
    ALL_4LW,
    ConfigError,
    ConfigProblem,
    IgnoredKey,
    QuorumConfig,
    QuorumServer,
    ServerConfig,
)
from .properties import parse_properties
from .values import LONG_MAX, BadValue, Entry, resolve

__sans_io__ = True

__all__ = ["RULES", "default_config", "parse_config"]

_UNKNOWN = "unknown setting ignored"
_WILDCARDS = ("0.0.0.0", "::", "0:0:0:0:0:0:0:0")


class _Parse:
    """The state of one parse: the config being filled, and what was found wrong."""

    def __init__(self, cwd: str, myid_text: str | None) -> None:
        self.cwd = cwd
        self.myid_text = myid_text
        self.cfg = ServerConfig()
        self.problems: list[ConfigProblem] = []
        self.warnings: list[str] = []
        #: key name (``zookeeper.`` stripped) -> line of its last occurrence
        self.lines: dict[str, int] = {}
        #: (row name, index) -> line, for the duplicate check of indexed rows
        self.index_lines: dict[tuple[str, object], int] = {}

    def problem(self, message: str, key: str | None = None, line: int = 0, source: str | None = None) -> None:
        self.problems.append(ConfigProblem(message, key, line, source))

    def read(self, key: str, value: str, line: int, *, source: str | None = None,
             allowed: Callable[[Key], bool] | None = None) -> None:
        """One ``key=value`` line through its row of the key table."""
        name = key[len("zookeeper.") :] if key.startswith("zookeeper.") and key != "zookeeper." else key
        found = lookup(name)
        if allowed is not None and (found is None or not allowed(found[0])):
            self.problem("not allowed in a dynamic configuration file (only server.N, group.N, weight.N)",
                         key, line, source)
            return
        self.lines[name] = line
        self.cfg.raw[name] = value
        if found is None:
            self.ignore(key, line, _UNKNOWN)
            return
        row, rest = found
        entry = Entry(key, name, line, self.cwd)
        try:
            if row.index is not None:
                entry.index = row.index(rest)
            parsed = row.parse(value, entry)
        except BadValue as exc:
            self.problem(str(exc.args[0]), key, line, source)
            return
        finally:
            self.warnings.extend(entry.warnings)
        if row.field is not None:
            self._store(row, entry, parsed, source)
        if row.ignored:
            self.ignore(key, line, row.ignored)

    def _store(self, row: Key, entry: Entry, parsed: object, source: str | None) -> None:
        if not row.prefix:
            setattr(self.cfg, row.field or "", parsed)
            return
        table: dict[object, object] = getattr(self.cfg, row.field or "")
        if row.index is None:
            table[entry.name] = parsed
            return
        earlier = self.index_lines.get((row.name, entry.index))
        if earlier is not None:
            self.problem(f"duplicate {row.name}{entry.index} (also on line {earlier})", entry.key, entry.line, source)
            return
        self.index_lines[(row.name, entry.index)] = entry.line
        table[entry.index] = parsed

    def ignore(self, key: str, line: int, reason: str) -> None:
        ignored = IgnoredKey(key, line, reason)
        self.cfg.ignored_keys.append(ignored)
        self.warnings.append(str(ignored))


def parse_config(
    text: str, *, cwd: str, myid_text: str | None = None, dynamic_text: str | None = None
) -> tuple[ServerConfig, list[str]]:
    """Parse zoo.cfg text.

    Args:
        text: the file's contents.
        cwd: absolute directory that relative paths (``dataDir``, ``dataLogDir``,
            ``dynamicConfigFile``) resolve against: the working directory, as in ZooKeeper.
        myid_text: contents of ``dataDir/myid`` (``None``: no such file).
        dynamic_text: contents of ``dynamicConfigFile`` when the config names one.

    Returns:
        ``(config, warnings)``; warnings are human-readable lines to log once
        (every ignored key among them, as ``config.ignored_keys`` lists).

    Raises:
        ConfigError: with every problem found, each naming its key and line.
    """
    p = _Parse(cwd, myid_text)
    for line, key, value in parse_properties(text):
        p.read(key, value, line)
    if p.cfg.dynamic_config_file is not None:
        _read_dynamic(p, dynamic_text)
    for rule in RULES:
        rule(p)
    if p.problems:
        raise ConfigError(problems=p.problems)
    return p.cfg, p.warnings


def _read_dynamic(p: _Parse, dynamic_text: str | None) -> None:
    """``dynamicConfigFile``: the server lines live there, and only there (ZooKeeper 3.5+)."""
    path = p.cfg.dynamic_config_file or ""
    for (row_name, index), line in sorted(p.index_lines.items(), key=lambda item: item[1]):
        p.problem("must be in the dynamicConfigFile, not in the zoo.cfg", f"{row_name}{index}", line)
    if dynamic_text is None:
        p.problem(f"{path} was not read", "dynamicConfigFile", p.lines.get("dynamicConfigFile", 0))
        return
    p.warnings.append(f"line {p.lines.get('dynamicConfigFile', 0)}: dynamicConfigFile: servers read from {path}; "
                      "it is never rewritten (no reconfig here)")
    for line, key, value in parse_properties(dynamic_text):
        if key == "version":
            p.problem("a dynamic configuration file must not set version (it comes from the file name)",
                      key, line, path)
            continue
        p.read(key, value, line, source=path, allowed=lambda row: row.dynamic)


# --- whole-file rules ----------------------------------------------------------------


def _required(p: _Parse) -> None:
    cfg = p.cfg
    if "dataDir" not in p.lines:
        p.problem("not set (required)", "dataDir")
    if not cfg.data_log_dir:
        cfg.data_log_dir = cfg.data_dir
    if "tickTime" not in p.lines:
        p.problem("not set (required)", "tickTime")
    if "clientPortAddress" in p.lines and "clientPort" not in p.lines:
        p.problem("clientPortAddress is set but clientPort is not set", "clientPortAddress",
                  p.lines["clientPortAddress"])


def _session_timeouts(p: _Parse) -> None:
    mn, mx = p.cfg.effective_min_session_timeout, p.cfg.effective_max_session_timeout
    if mn > mx:
        p.problem(
            f"minSessionTimeout ({mn}) must not be larger than maxSessionTimeout ({mx})",
            "minSessionTimeout",
            p.lines.get("minSessionTimeout", p.lines.get("maxSessionTimeout", 0)),
        )


def _read_only_mode(p: _Parse) -> None:
    cfg = p.cfg
    # ZooKeeper answers isro whenever read-only mode is on, unless the whitelist already says "*".
    if cfg.read_only_mode_enabled and cfg.fourlw_whitelist != ALL_4LW:
        cfg.fourlw_whitelist = cfg.fourlw_whitelist | {"isro"}


def _server_line(p: _Parse, s: QuorumServer) -> int:
    return p.index_lines.get(("server.", s.sid), 0)


def _ensemble_shape(p: _Parse) -> None:
    """ZooKeeper's ``parseDynamicConfig``: who votes, and what a config without a quorum may hold."""
    cfg = p.cfg
    voters = [s for s in cfg.servers.values() if s.role == "participant"]
    observers = [s for s in cfg.servers.values() if s.role == "observer"]
    if not voters:
        if not cfg.standalone_enabled:
            p.problem("standaloneEnabled=false needs at least one participant server.N line",
                      "standaloneEnabled", p.lines.get("standaloneEnabled", 0))
        if observers:
            p.problem("observers without participants", f"server.{observers[0].sid}", _server_line(p, observers[0]))
    elif len(voters) == 1 and cfg.standalone_enabled and observers:
        p.problem("observers without a quorum (one participant with standaloneEnabled=true runs standalone)",
                  f"server.{observers[0].sid}", _server_line(p, observers[0]))
    for s in cfg.servers.values():
        if s.addresses and not cfg.multi_address_enabled:
            p.problem("several addresses need multiAddress.enabled=true", f"server.{s.sid}", _server_line(p, s))
    if cfg.extended_types_enabled and any(not 1 <= sid <= 254 for sid in cfg.servers):
        p.problem("server ids must be between 1 and 254 when extendedTypesEnabled is true",
                  "extendedTypesEnabled", p.lines.get("extendedTypesEnabled", 0))


def _myid(p: _Parse) -> int | None:
    """``dataDir/myid`` as ZooKeeper reads it; ``None`` when absent or invalid (a problem then)."""
    if p.myid_text is None:
        return None
    where = posixpath.join(p.cfg.data_dir, "myid")
    first = p.myid_text.strip().splitlines()[0].strip() if p.myid_text.strip() else ""
    try:
        sid = int(first, 10)
    except ValueError:
        p.problem(f"{where}: server id {first!r} is not a number", "myid")
        return None
    if not 0 <= sid <= LONG_MAX:
        p.problem(f"{where}: server id {sid} is out of range", "myid")
        return None
    return sid


def _ensemble(p: _Parse) -> None:
    """myid, this peer's client port and role from its server.N line, and ``config.quorum``."""
    cfg = p.cfg
    if not cfg.servers:
        return
    where = posixpath.join(cfg.data_dir, "myid")
    my_id = _myid(p)
    distributed = not cfg.standalone
    if distributed:
        for key in ("initLimit", "syncLimit"):
            if getattr(cfg, "init_limit" if key == "initLimit" else "sync_limit") <= 0:
                p.problem(f"{key} is not set (needed with several voting servers)", key, p.lines.get(key, 0))
        if my_id is None and p.myid_text is None:
            p.problem(f"{where} is missing (needed with several voting servers)", "myid")
    if my_id is None:
        return
    me = cfg.servers.get(my_id)
    if me is None:
        if distributed:
            p.problem(f"myid {my_id} (from {where}) is not among the server.N lines", "myid")
        return
    if me.client_port is not None and "clientPort" in p.lines and cfg.client_port is not None:
        static_host = cfg.client_port_address if "clientPortAddress" in p.lines else "0.0.0.0"
        wildcard = static_host in _WILDCARDS
        if (not wildcard and (static_host, cfg.client_port) != (me.client_host, me.client_port)) or (
            wildcard and cfg.client_port != me.client_port
        ):
            p.problem(
                f"client address {me.client_host}:{me.client_port} differs from "
                f"clientPortAddress/clientPort {static_host}:{cfg.client_port}",
                f"server.{my_id}",
                _server_line(p, me),
            )
    if me.client_port is not None:
        cfg.client_port = me.client_port
        cfg.client_port_address = me.client_host or "0.0.0.0"
    elif cfg.client_port is not None:
        # ZooKeeper's setupClientPort: this peer's line without a client section takes clientPort.
        me = cfg.servers[my_id] = replace(me, client_host=cfg.client_port_address, client_port=cfg.client_port)
    if me.role != cfg.peer_type and "peerType" in p.lines:
        p.warnings.append(
            f"line {p.lines['peerType']}: peerType: {cfg.peer_type} does not match server.{my_id}'s "
            f"{me.role}; using {me.role}"
        )
    cfg.peer_type = me.role
    if distributed and not p.problems:
        cfg.my_id = my_id
        cfg.quorum = QuorumConfig(
            servers=dict(cfg.servers),
            my_id=my_id,
            init_limit=cfg.init_limit,
            sync_limit=cfg.sync_limit,
            cnx_timeout_ms=cfg.cnx_timeout_ms,
            election_alg=cfg.election_alg,
            quorum_listen_on_all_ips=cfg.quorum_listen_on_all_ips,
            standalone_enabled=cfg.standalone_enabled,
            reconfig_enabled=cfg.reconfig_enabled,
            multi_address_enabled=cfg.multi_address_enabled,
            sync_enabled=cfg.sync_enabled,
            dynamic_config_file=cfg.dynamic_config_file,
        )


def _client_port(p: _Parse) -> None:
    if p.cfg.client_port is None:
        extra = " (secureClientPort alone is not served: no TLS here)" if p.cfg.secure_client_port else ""
        p.problem("not set (required)" + extra, "clientPort")


#: The whole-file rules, in order; each appends to the parse's problems.
RULES: tuple[Callable[[_Parse], None], ...] = (
    _required,
    _session_timeouts,
    _read_only_mode,
    _ensemble_shape,
    _ensemble,
    _client_port,
)


def default_config(cwd: str) -> ServerConfig:
    """The embedded default of ``trio-quorum serve`` with no file:
    standalone on 127.0.0.1:2181, dataDir ./trio-quorum-data, tickTime 2000."""
    d = resolve(cwd, "trio-quorum-data")
    return ServerConfig(
        tick_time=2000,
        data_dir=d,
        data_log_dir=d,
        client_port=2181,
        client_port_address="127.0.0.1",
        raw={"tickTime": "2000", "dataDir": d, "clientPort": "2181", "clientPortAddress": "127.0.0.1"},
    )
