"""zoo.cfg parsing (sans-IO): ZooKeeper's ``QuorumPeerConfig`` keys and rules.

:func:`parse_config` takes the *text* of a zoo.cfg (java.util.Properties
syntax), the directory relative paths resolve against, and the text of
``dataDir/myid`` when there is one, and returns a :class:`ServerConfig` plus
warnings.  Reading files is the caller's business
(``trio_quorum.server.configfile``).

Invariants:

* Every invalid value raises :class:`ConfigError` naming the key and the line
  number it came from; nothing here raises anything else for bad input.
* Keys ZooKeeper turns into ``zookeeper.<key>`` system properties are
  accepted both bare and with the ``zookeeper.`` prefix.
* Java-only keys (``serverCnxnFactory``, ``authProvider.N``, ``ssl.*``,
  ``admin.*``, ``metricsProvider.*``, ...) are accepted with a warning;
  unknown keys are accepted with a warning too (ZooKeeper stores them as
  system properties and ignores them).
* No ``server.N`` lines means standalone.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

__sans_io__ = True

__all__ = [
    "ConfigError",
    "QuorumServer",
    "ServerConfig",
    "parse_config",
    "parse_properties",
    "default_config",
    "DEFAULT_4LW_WHITELIST",
    "ALL_4LW",
]


class ConfigError(ValueError):
    """An invalid zoo.cfg: ``key`` and ``line`` name the culprit (line 0 = not from a line)."""

    def __init__(self, message: str, *, key: str | None = None, line: int = 0) -> None:
        self.key = key
        self.line = line
        where = ""
        if key is not None:
            where = f"{key}: " if line == 0 else f"line {line}: {key}: "
        elif line:
            where = f"line {line}: "
        super().__init__(where + message)


#: Every four-letter word ZooKeeper 3.8 knows.
ALL_4LW = frozenset(
    "conf cons crst dirs dump envi gtmk ruok stmk srvr srst stat wchc wchp wchs mntr isro hash".split()
)
DEFAULT_4LW_WHITELIST = frozenset({"srvr"})


@dataclass(frozen=True, slots=True)
class QuorumServer:
    """One ``server.N=host:quorumPort:electionPort[:role][;[clientAddr:]clientPort]`` line."""

    sid: int
    host: str
    quorum_port: int
    election_port: int
    role: str = "participant"  # or "observer"
    client_host: str | None = None
    client_port: int | None = None


@dataclass(slots=True)
class ServerConfig:
    """A parsed zoo.cfg.  Times are milliseconds, sizes bytes unless named otherwise."""

    tick_time: int = 2000
    data_dir: str = ""
    data_log_dir: str = ""
    client_port: int | None = None
    client_port_address: str = "0.0.0.0"
    max_client_cnxns: int = 60
    min_session_timeout: int = -1
    max_session_timeout: int = -1
    init_limit: int = 0
    sync_limit: int = 0
    election_alg: int = 3
    peer_type: str = "participant"
    servers: dict[int, QuorumServer] = field(default_factory=dict)
    my_id: int = 0
    snap_count: int = 100_000
    snap_retain_count: int = 3
    purge_interval_hours: int = 0
    force_sync: bool = True
    fourlw_whitelist: frozenset[str] = DEFAULT_4LW_WHITELIST
    global_outstanding_limit: int = 1000
    jute_max_buffer: int = 0xFFFFF
    extended_types_enabled: bool = False
    read_only_mode_enabled: bool = False
    super_digest: str | None = None
    pre_alloc_size_kb: int = 65536
    container_check_interval_ms: int = 60_000
    standalone_enabled: bool = True
    reconfig_enabled: bool = False
    local_sessions_enabled: bool = False
    quorum_listen_on_all_ips: bool = False
    client_port_listen_backlog: int = -1
    #: Every key=value as read (after the ``zookeeper.`` prefix is stripped), for ``conf``/``envi``.
    raw: dict[str, str] = field(default_factory=dict)

    @property
    def standalone(self) -> bool:
        """ZooKeeper's ``!isDistributed()``: no ``server.N`` lines, or one voter while standaloneEnabled."""
        voters = sum(1 for s in self.servers.values() if s.role == "participant")
        return not self.servers or (self.standalone_enabled and voters <= 1)

    @property
    def effective_min_session_timeout(self) -> int:
        return self.tick_time * 2 if self.min_session_timeout < 0 else self.min_session_timeout

    @property
    def effective_max_session_timeout(self) -> int:
        return self.tick_time * 20 if self.max_session_timeout < 0 else self.max_session_timeout

    def clamp_session_timeout(self, requested: int) -> int:
        """ZooKeeper's negotiation: clamp to [minSessionTimeout, maxSessionTimeout]."""
        return max(self.effective_min_session_timeout, min(requested, self.effective_max_session_timeout))


#: Keys that only mean something to the Java server; accepted, warned about, ignored.
_JAVA_ONLY_PREFIXES = (
    "ssl.",
    "admin.",
    "metricsProvider.",
    "authProvider.",
    "quorum.auth.",
    "quorum.cnxn.",
    "sslQuorum",
    "secureClientPort",
    "portUnification",
    "clientPortUnification",
    "multiAddress.",
    "serverCnxnFactory",
    "jvm.",
    "javax.",
    "java.",
    "kerberos.",
    "sasl",
    "audit.",
    "client.secure",
    "serverCnxnFactory",
    "netty.",
    "X509",
    "x509",
)

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def parse_properties(text: str) -> list[tuple[int, str, str]]:
    """java.util.Properties syntax -> ``(line_no, key, value)`` in file order.

    ``#``/``!`` comments, ``key=value`` / ``key:value`` / ``key value``,
    backslash line continuation; values are stripped (as QuorumPeerConfig does).
    """
    out: list[tuple[int, str, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line_no = i + 1
        line = lines[i].lstrip()
        i += 1
        if not line or line[0] in "#!":
            continue
        # continuation: an odd number of trailing backslashes joins the next line
        while (len(line) - len(line.rstrip("\\"))) % 2 == 1:
            line = line[:-1]
            if i >= len(lines):
                break
            line += lines[i].lstrip()
            i += 1
        j = 0
        n = len(line)
        while j < n and line[j] not in "=: \t\f":
            if line[j] == "\\":
                j += 1
            j += 1
        key = line[:j].replace("\\", "")
        rest = line[j:].lstrip(" \t\f")
        if rest[:1] in ("=", ":"):
            rest = rest[1:]
        out.append((line_no, key.strip(), rest.strip()))
    return out


def _int(key: str, value: str, line: int, *, lo: int | None = None, hi: int | None = None) -> int:
    try:
        v = int(value.strip(), 10)
    except ValueError:
        raise ConfigError(f"{value!r} is not an integer", key=key, line=line) from None
    if lo is not None and v < lo:
        raise ConfigError(f"{v} is below the minimum of {lo}", key=key, line=line)
    if hi is not None and v > hi:
        raise ConfigError(f"{v} is above the maximum of {hi}", key=key, line=line)
    return v


def _bool(key: str, value: str, line: int) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ConfigError(f"{value!r} is not a boolean (true/false, yes/no)", key=key, line=line)


def _port(key: str, value: str, line: int) -> int:
    return _int(key, value, line, lo=0, hi=65535)


def _split_host_port(spec: str, key: str, line: int) -> tuple[str, str]:
    """``host:port`` with IPv6 hosts in brackets -> (host, port text)."""
    if spec.startswith("["):
        end = spec.find("]")
        if end < 0 or spec[end + 1 : end + 2] != ":":
            raise ConfigError(f"{spec!r} is not [ipv6]:port", key=key, line=line)
        return spec[1:end], spec[end + 2 :]
    host, sep, port = spec.rpartition(":")
    if not sep:
        return "", spec
    return host, port


def _parse_server(key: str, value: str, line: int) -> QuorumServer:
    sid_text = key[len("server.") :]
    sid = _int(key, sid_text, line, lo=0)
    addr, _, client = value.partition(";")
    # IPv6 addresses come in brackets; split on colons outside them.
    parts: list[str] = []
    cur = ""
    depth = 0
    for ch in addr:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == ":" and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    if len(parts) not in (3, 4):
        raise ConfigError(
            f"{value!r} does not have the form host:port:port[:type][;[clientAddr:]clientPort]",
            key=key,
            line=line,
        )
    host = parts[0].strip().strip("[]")
    if not host:
        raise ConfigError("empty host", key=key, line=line)
    qport = _port(key, parts[1], line)
    eport = _port(key, parts[2], line)
    role = "participant"
    if len(parts) == 4:
        role = parts[3].strip().lower()
        if role not in ("participant", "observer"):
            raise ConfigError(f"unrecognised peer type {parts[3]!r}", key=key, line=line)
    client_host: str | None = None
    client_port: int | None = None
    if client:
        h, p = _split_host_port(client.strip(), key, line)
        client_host = h or None
        client_port = _port(key, p, line)
    return QuorumServer(sid, host, qport, eport, role, client_host, client_port)


def _resolve(cwd: str, path: str) -> str:
    return posixpath.normpath(posixpath.join(cwd, path))


def default_config(cwd: str) -> ServerConfig:
    """The embedded default of ``trio-quorum serve`` with no file:
    standalone on 127.0.0.1:2181, dataDir ./trio-quorum-data, tickTime 2000."""
    d = _resolve(cwd, "trio-quorum-data")
    return ServerConfig(
        tick_time=2000,
        data_dir=d,
        data_log_dir=d,
        client_port=2181,
        client_port_address="127.0.0.1",
        raw={"tickTime": "2000", "dataDir": d, "clientPort": "2181", "clientPortAddress": "127.0.0.1"},
    )


def parse_config(text: str, *, cwd: str, myid_text: str | None = None) -> tuple[ServerConfig, list[str]]:
    """Parse zoo.cfg text.

    Args:
        text: the file's contents.
        cwd: absolute directory that relative ``dataDir``/``dataLogDir`` resolve against.
        myid_text: contents of ``dataDir/myid`` (needed only with ``server.N`` lines).

    Returns:
        ``(config, warnings)``; warnings are human-readable lines to log.

    Raises:
        ConfigError: naming the key and line of the first invalid value.
    """
    cfg = ServerConfig()
    warnings: list[str] = []
    lines: dict[str, int] = {}
    seen_servers: dict[int, int] = {}
    whitelist_given = False
    for line, key, value in parse_properties(text):
        name = key
        if name.startswith("zookeeper.") and name not in ("zookeeper.",):
            name = name[len("zookeeper.") :]
        lines[name] = line
        cfg.raw[name] = value
        if name == "dataDir":
            if not value:
                raise ConfigError("empty path", key=key, line=line)
            cfg.data_dir = _resolve(cwd, value)
        elif name == "dataLogDir":
            if not value:
                raise ConfigError("empty path", key=key, line=line)
            cfg.data_log_dir = _resolve(cwd, value)
        elif name == "clientPort":
            cfg.client_port = _port(key, value, line)
        elif name == "clientPortAddress":
            if not value:
                raise ConfigError("empty address", key=key, line=line)
            cfg.client_port_address = value.strip("[]")
        elif name == "tickTime":
            cfg.tick_time = _int(key, value, line, lo=1)
        elif name == "maxClientCnxns":
            cfg.max_client_cnxns = _int(key, value, line, lo=0)
        elif name == "minSessionTimeout":
            cfg.min_session_timeout = _int(key, value, line, lo=-1)
        elif name == "maxSessionTimeout":
            cfg.max_session_timeout = _int(key, value, line, lo=-1)
        elif name == "initLimit":
            cfg.init_limit = _int(key, value, line, lo=1)
        elif name == "syncLimit":
            cfg.sync_limit = _int(key, value, line, lo=1)
        elif name == "connectToLearnerMasterLimit":
            _int(key, value, line, lo=0)
        elif name == "electionAlg":
            cfg.election_alg = _int(key, value, line)
            if cfg.election_alg != 3:
                raise ConfigError(
                    f"election algorithm {cfg.election_alg} is not supported (only 3, fast leader election)",
                    key=key,
                    line=line,
                )
        elif name == "peerType":
            v = value.lower()
            if v not in ("participant", "observer"):
                raise ConfigError(f"unrecognised peer type {value!r}", key=key, line=line)
            cfg.peer_type = v
        elif name.startswith("server."):
            qs = _parse_server(key, value, line)
            if qs.sid in seen_servers:
                raise ConfigError(
                    f"duplicate server id {qs.sid} (also on line {seen_servers[qs.sid]})", key=key, line=line
                )
            seen_servers[qs.sid] = line
            cfg.servers[qs.sid] = qs
        elif name.startswith(("group.", "weight.")):
            warnings.append(f"line {line}: {key}: hierarchical quorums are not supported; ignored")
        elif name == "snapCount":
            cfg.snap_count = _int(key, value, line, lo=2)
        elif name == "autopurge.snapRetainCount":
            n = _int(key, value, line)
            if n < 3:
                warnings.append(f"line {line}: {key}: {n} is below the minimum of 3; using 3")
                n = 3
            cfg.snap_retain_count = n
        elif name == "autopurge.purgeInterval":
            cfg.purge_interval_hours = _int(key, value, line)
        elif name == "forceSync":
            cfg.force_sync = _bool(key, value, line)
        elif name == "4lw.commands.whitelist":
            whitelist_given = True
            words = {w.strip() for w in value.split(",") if w.strip()}
            if "*" in words:
                cfg.fourlw_whitelist = ALL_4LW
            else:
                unknown = sorted(w for w in words if w not in ALL_4LW)
                if unknown:
                    warnings.append(f"line {line}: {key}: unknown four-letter words ignored: {', '.join(unknown)}")
                cfg.fourlw_whitelist = frozenset(w for w in words if w in ALL_4LW) | {"srvr"}
        elif name == "globalOutstandingLimit":
            cfg.global_outstanding_limit = _int(key, value, line, lo=1)
        elif name == "jute.maxbuffer":
            cfg.jute_max_buffer = _int(key, value, line, lo=1024, hi=0x7FFFFFFF)
        elif name == "extendedTypesEnabled":
            cfg.extended_types_enabled = _bool(key, value, line)
        elif name == "readonlymode.enabled":
            cfg.read_only_mode_enabled = _bool(key, value, line)
        elif name in ("superDigest", "DigestAuthenticationProvider.superDigest"):
            if ":" not in value:
                raise ConfigError("expected user:base64digest", key=key, line=line)
            cfg.super_digest = value
        elif name == "preAllocSize":
            cfg.pre_alloc_size_kb = _int(key, value, line, lo=1)
        elif name == "znode.container.checkIntervalMs":
            cfg.container_check_interval_ms = _int(key, value, line, lo=1)
        elif name == "standaloneEnabled":
            cfg.standalone_enabled = _bool(key, value, line)
        elif name == "reconfigEnabled":
            cfg.reconfig_enabled = _bool(key, value, line)
        elif name == "localSessionsEnabled":
            cfg.local_sessions_enabled = _bool(key, value, line)
            if cfg.local_sessions_enabled:
                warnings.append(f"line {line}: {key}: local sessions are not supported; all sessions are global")
        elif name in ("localSessionsUpgradingEnabled", "syncEnabled"):
            _bool(key, value, line)
        elif name == "quorumListenOnAllIPs":
            cfg.quorum_listen_on_all_ips = _bool(key, value, line)
        elif name == "clientPortListenBacklog":
            cfg.client_port_listen_backlog = _int(key, value, line)
        elif name in ("dynamicConfigFile",):
            raise ConfigError("dynamic configuration files are not supported", key=key, line=line)
        elif name.startswith(_JAVA_ONLY_PREFIXES) or key.startswith(_JAVA_ONLY_PREFIXES):
            warnings.append(f"line {line}: {key}: Java-only setting accepted and ignored")
        elif name in ("fsync.warningthresholdms", "digest.enabled", "snapSizeLimitInKb", "txnLogSizeLimitInKb",
                      "commitLogCount", "maxCnxns", "skipACL", "observerMasterPort", "leaderServes",
                      "cnxTimeout", "maxResponseCacheSize", "electionPortBindRetry", "minNotificationInterval",
                      "maxNotificationInterval", "snapshot.compression.method", "closeSessionTxn.enabled",
                      "4lw.commands.enabled", "znode.container.maxPerMinute", "znode.container.maxNeverUsedIntervalMs"):
            pass  # understood ZooKeeper tunables we keep only in ``raw``
        else:
            warnings.append(f"line {line}: {key}: unknown setting ignored")

    if not cfg.data_dir:
        raise ConfigError("dataDir is not set", key="dataDir")
    if not cfg.data_log_dir:
        cfg.data_log_dir = cfg.data_dir
    if "tickTime" not in lines:
        raise ConfigError("tickTime is not set", key="tickTime")
    mn, mx = cfg.effective_min_session_timeout, cfg.effective_max_session_timeout
    if mn > mx:
        raise ConfigError(
            f"minSessionTimeout ({mn}) must not be larger than maxSessionTimeout ({mx})",
            key="minSessionTimeout",
            line=lines.get("minSessionTimeout", lines.get("maxSessionTimeout", 0)),
        )
    if cfg.read_only_mode_enabled and not (whitelist_given and cfg.fourlw_whitelist == ALL_4LW):
        cfg.fourlw_whitelist = cfg.fourlw_whitelist | {"isro"}
    if cfg.servers:
        for k in ("initLimit", "syncLimit"):
            if k not in lines:
                raise ConfigError(f"{k} is not set (needed with server.N lines)", key=k)
        if myid_text is None:
            raise ConfigError(f"{posixpath.join(cfg.data_dir, 'myid')} file is missing", key="myid")
        try:
            cfg.my_id = int(myid_text.strip(), 10)
        except ValueError:
            raise ConfigError(f"serverid {myid_text.strip()!r} is not a number", key="myid") from None
        if cfg.my_id not in cfg.servers:
            raise ConfigError(f"myid {cfg.my_id} is not among the server.N lines", key="myid")
        me = cfg.servers[cfg.my_id]
        if me.role != cfg.peer_type and "peerType" in lines:
            warnings.append(
                f"line {lines['peerType']}: peerType: {cfg.peer_type} does not match server.{cfg.my_id}'s "
                f"{me.role}; using {me.role}"
            )
        cfg.peer_type = me.role
        if me.client_port is not None:
            if cfg.client_port is not None and cfg.client_port != me.client_port:
                raise ConfigError(
                    f"client port {me.client_port} in server.{cfg.my_id} differs from clientPort {cfg.client_port}",
                    key=f"server.{cfg.my_id}",
                    line=seen_servers[cfg.my_id],
                )
            cfg.client_port = me.client_port
            if me.client_host:
                cfg.client_port_address = me.client_host
        if cfg.extended_types_enabled and any(not 1 <= s <= 254 for s in cfg.servers):
            raise ConfigError("server ids must be between 1 and 254 when extendedTypesEnabled is true",
                              key="extendedTypesEnabled", line=lines.get("extendedTypesEnabled", 0))
        if sum(1 for s in cfg.servers.values() if s.role == "participant") == 0:
            raise ConfigError("no participants among the server.N lines", key="server")
    if cfg.client_port is None:
        raise ConfigError("clientPort is not set", key="clientPort")
    return cfg, warnings
