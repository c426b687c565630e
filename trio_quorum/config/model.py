"""What a parsed zoo.cfg is: :class:`ServerConfig`, the ensemble description, and the errors.

Invariants:

* A :class:`ConfigError` carries every problem found (never zero); each
  :class:`ConfigProblem` names the key and the line it came from (line 0 =
  not from one line, e.g. a required key that is missing).
* ``ServerConfig.quorum`` is set exactly when the configuration is
  distributed (ZooKeeper's ``isDistributed()``); the flat fields
  (``servers``, ``my_id``, ``peer_type``, ``init_limit``, ...) keep what the
  file said either way, for ``conf`` and ``envi``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__sans_io__ = True

__all__ = [
    "ALL_4LW",
    "DEFAULT_4LW_WHITELIST",
    "ConfigError",
    "ConfigProblem",
    "IgnoredKey",
    "QuorumConfig",
    "QuorumServer",
    "ServerConfig",
]

#: Every four-letter word ZooKeeper 3.8 knows.
ALL_4LW = frozenset(
    "conf cons crst dirs dump envi gtmk ruok stmk srvr srst stat wchc wchp wchs mntr isro hash".split()
)
DEFAULT_4LW_WHITELIST = frozenset({"srvr"})


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One invalid value or rule: ``key`` and ``line`` name the culprit (line 0 = not from a line)."""

    message: str
    key: str | None = None
    line: int = 0
    #: The file the line is in when it is not the zoo.cfg itself (a ``dynamicConfigFile``).
    source: str | None = None

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        if self.line:
            where += f"line {self.line}: "
        if self.key is not None:
            where += f"{self.key}: "
        return where + self.message


class ConfigError(ValueError):
    """An invalid zoo.cfg, with *every* problem found in it (``problems``, in file order,
    then the whole-file rules).  ``key`` and ``line`` are the first problem's.

    ``str()`` is the one problem (``line N: key: message``), or for several a
    count followed by one problem per line.
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        key: str | None = None,
        line: int = 0,
        problems: Iterable[ConfigProblem] = (),
    ) -> None:
        found = list(problems)
        if message is not None:
            found.insert(0, ConfigProblem(message, key, line))
        if not found:
            raise ValueError("a ConfigError needs at least one problem")
        self.problems: list[ConfigProblem] = found
        self.key = found[0].key
        self.line = found[0].line
        if len(found) == 1:
            text = str(found[0])
        else:
            text = f"{len(found)} problems\n" + "\n".join(f"  {p}" for p in found)
        super().__init__(text)


@dataclass(frozen=True, slots=True)
class IgnoredKey:
    """A key accepted but without effect here (Java-only, not implemented, or unknown)."""

    key: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.key}: {self.reason}"


@dataclass(frozen=True, slots=True)
class QuorumServer:
    """One ``server.N=host:quorumPort:electionPort[:role][;[clientAddr:]clientPort]`` line.

    ``host``/``quorum_port``/``election_port`` are the first address;
    ``addresses`` lists all of them (several only with ``multiAddress.enabled``,
    separated by ``|``).  A client section with a port only means 0.0.0.0,
    as in ZooKeeper.
    """

    sid: int
    host: str
    quorum_port: int
    election_port: int
    role: str = "participant"  # or "observer"
    client_host: str | None = None
    client_port: int | None = None
    addresses: tuple[tuple[str, int, int], ...] = ()

    @property
    def client_addr(self) -> str | None:
        return self.client_host


@dataclass(frozen=True, slots=True)
class QuorumConfig:
    """The ensemble this peer belongs to (only for a distributed configuration)."""

    servers: Mapping[int, QuorumServer]
    my_id: int
    init_limit: int
    sync_limit: int
    cnx_timeout_ms: int = 5000
    election_alg: int = 3
    quorum_listen_on_all_ips: bool = False
    standalone_enabled: bool = True
    reconfig_enabled: bool = False
    multi_address_enabled: bool = False
    sync_enabled: bool = True
    #: The path of ``dynamicConfigFile`` when the servers came from one.
    dynamic_config_file: str | None = None

    @property
    def me(self) -> QuorumServer:
        return self.servers[self.my_id]

    @property
    def peer_type(self) -> str:
        return self.me.role

    @property
    def voters(self) -> dict[int, QuorumServer]:
        return {sid: s for sid, s in self.servers.items() if s.role == "participant"}

    @property
    def observers(self) -> dict[int, QuorumServer]:
        return {sid: s for sid, s in self.servers.items() if s.role == "observer"}


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
    #: This peer's id from ``dataDir/myid``; 0 when standalone (as ZooKeeper's ``conf`` shows).
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
    cnx_timeout_ms: int = 5000
    sync_enabled: bool = True
    multi_address_enabled: bool = False
    dynamic_config_file: str | None = None
    #: Accepted and kept, not served (no TLS here): ``secureClientPort``/``Address``, ``ssl.*``.
    secure_client_port: int | None = None
    secure_client_port_address: str | None = None
    ssl: dict[str, str] = field(default_factory=dict)
    #: The ensemble when distributed (ZooKeeper's ``isDistributed()``), else ``None``.
    quorum: QuorumConfig | None = None
    #: Keys accepted without effect here, with their lines; the server logs them once.
    ignored_keys: list[IgnoredKey] = field(default_factory=list)
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
