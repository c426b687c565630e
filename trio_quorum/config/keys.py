"""The zoo.cfg key table: one :class:`Key` row per key (or key prefix) ZooKeeper 3.8 reads.

Adding a key is adding a row: its name, the value parser (:mod:`.values`),
the :class:`~.model.ServerConfig` field it sets, and, when it has no effect
here, why (the row is then listed in ``ServerConfig.ignored_keys`` and logged
once).  Defaults are the fields' defaults on ``ServerConfig``
(:func:`default_of`), so they are written in one place.

Three kinds of rows (:attr:`Key.kind`):

* ``applies``: the standalone server uses it.
* ``ensemble``: describes the ensemble (``ServerConfig.quorum``); parsed and
  checked now, used once replication runs.
* ``ignored``: accepted, kept in ``raw`` (and in a field when the value is
  worth keeping, e.g. ``ssl.*``), without effect: Java-only machinery or a
  ZooKeeper tunable not implemented here.

Invariants: exact names are unique; a prefix row (``prefix=True``) matches
every key starting with its name, the longest prefix winning; a row with an
``index`` parser stores its values in a dict field keyed by the parsed index,
and two lines with the same index are a problem (``server.1`` twice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import values as v
from .model import ServerConfig

__sans_io__ = True

__all__ = ["KEYS", "Key", "default_of", "lookup"]

_JAVA = "Java-only setting accepted and ignored"
_NOT_IMPLEMENTED = "ZooKeeper tunable not implemented here; accepted and ignored"
_NO_TLS = "TLS is not served here (value kept); accepted and ignored"
_NO_ADMIN = "no AdminServer here (use the four-letter words); accepted and ignored"


@dataclass(frozen=True, slots=True)
class Key:
    """One row of the key table."""

    name: str
    parse: v.ValueParser = v.text
    #: The ``ServerConfig`` attribute the value sets (a dict for indexed rows); ``None``: ``raw`` only.
    field: str | None = None
    #: Why the key has no effect here; ``None`` when it applies.
    ignored: str | None = None
    #: Part of the ensemble description (``ServerConfig.quorum``).
    ensemble: bool = False
    #: Matches every key that starts with ``name``.
    prefix: bool = False
    #: For ``name.N`` rows: parses N, the key of the value in the dict ``field`` (a second
    #: line with the same N is a problem).  A prefix row with a dict ``field`` and no
    #: ``index`` keeps every value under its full key, the last line winning.
    index: v.IndexParser | None = None
    #: May appear in a ``dynamicConfigFile`` (ZooKeeper allows server/group/weight there only).
    dynamic: bool = False
    doc: str = ""

    @property
    def kind(self) -> str:
        return "ignored" if self.ignored else "ensemble" if self.ensemble else "applies"


def _k(name: str, parse: v.ValueParser = v.text, field: str | None = None, doc: str = "", **kw: Any) -> Key:
    return Key(name, parse, field, doc=doc, **kw)


def _ignored(name: str, reason: str, parse: v.ValueParser = v.text, field: str | None = None, **kw: Any) -> Key:
    return Key(name, parse, field, ignored=reason, **kw)


KEYS: tuple[Key, ...] = (
    # --- the standalone server ---------------------------------------------------------
    _k("tickTime", v.integer(1), "tick_time", "ms per tick; required"),
    _k("dataDir", v.path, "data_dir", "snapshots (and logs without dataLogDir); required; relative to the working directory"),
    _k("dataLogDir", v.path, "data_log_dir", "transaction logs; default dataDir"),
    _k("clientPort", v.port, "client_port", "required unless this peer's server.N line has a client port"),
    _k("clientPortAddress", v.address, "client_port_address", "needs clientPort"),
    _k("maxClientCnxns", v.integer(0), "max_client_cnxns", "per client IP; 0 = no limit"),
    _k("minSessionTimeout", v.integer(-1), "min_session_timeout", "-1 = 2 x tickTime"),
    _k("maxSessionTimeout", v.integer(-1), "max_session_timeout", "-1 = 20 x tickTime"),
    _k("snapCount", v.integer(2), "snap_count", "txns between snapshots"),
    _k("autopurge.snapRetainCount", v.snap_retain_count, "snap_retain_count", "at least 3 (lower: warning, 3)"),
    _k("autopurge.purgeInterval", v.integer(), "purge_interval_hours", "hours; 0 = never"),
    _k("forceSync", v.boolean, "force_sync", "fdatasync the log before acknowledging"),
    _k("4lw.commands.whitelist", v.fourlw_whitelist, "fourlw_whitelist", "comma list or *; srvr always"),
    _k("globalOutstandingLimit", v.integer(1), "global_outstanding_limit", "requests in flight before throttling"),
    _k("jute.maxbuffer", v.integer(1024, 0x7FFFFFFF), "jute_max_buffer", "largest packet, bytes"),
    _k("extendedTypesEnabled", v.boolean, "extended_types_enabled", "TTL nodes; server ids 1..254"),
    _k("readonlymode.enabled", v.boolean, "read_only_mode_enabled", "adds isro to the 4lw whitelist"),
    _k("superDigest", v.super_digest, "super_digest", "user:base64(sha1) of the super user"),
    _k("DigestAuthenticationProvider.superDigest", v.super_digest, "super_digest", "same as superDigest"),
    _k("preAllocSize", v.integer(1), "pre_alloc_size_kb", "txn log growth step, KiB"),
    _k("znode.container.checkIntervalMs", v.integer(1), "container_check_interval_ms", "container/TTL sweep"),
    _k("localSessionsEnabled", v.local_sessions, "local_sessions_enabled", "true: warning, sessions stay global"),
    # --- the ensemble ------------------------------------------------------------------
    _k("server.", v.server_line, "servers", "host:quorumPort:electionPort[:participant|:observer]"
       "[;[clientAddr:]clientPort]", prefix=True, index=v.long_index(0), ensemble=True, dynamic=True),
    _k("peerType", v.choice("participant", "observer"), "peer_type", "the server.N line wins", ensemble=True),
    _k("initLimit", v.integer(0), "init_limit", "ticks; required with several voters", ensemble=True),
    _k("syncLimit", v.integer(0), "sync_limit", "ticks; required with several voters", ensemble=True),
    _k("connectToLearnerMasterLimit", v.validated(v.integer(0)), None, "ticks", ensemble=True),
    _k("electionAlg", v.election_alg, "election_alg", "only 3 (fast leader election)", ensemble=True),
    _k("cnxTimeout", v.integer(1), "cnx_timeout_ms", "election connection timeout, ms", ensemble=True),
    _k("quorumListenOnAllIPs", v.boolean, "quorum_listen_on_all_ips", "bind quorum ports on 0.0.0.0", ensemble=True),
    _k("standaloneEnabled", v.boolean, "standalone_enabled", "one voter runs standalone", ensemble=True),
    _k("reconfigEnabled", v.boolean, "reconfig_enabled", "dynamic reconfiguration (not implemented)", ensemble=True),
    _k("dynamicConfigFile", v.path, "dynamic_config_file", "server.N lines in a separate file", ensemble=True),
    _k("syncEnabled", v.boolean, "sync_enabled", "observers log and snapshot", ensemble=True),
    _k("multiAddress.enabled", v.boolean, "multi_address_enabled", "several |-separated addresses per server",
       ensemble=True),
    _k("group.", v.unsupported("hierarchical quorums (group.N/weight.N) are not supported"), None,
       prefix=True, ensemble=True, dynamic=True),
    _k("weight.", v.unsupported("hierarchical quorums (group.N/weight.N) are not supported"), None,
       prefix=True, ensemble=True, dynamic=True),
    _ignored("multiAddress.", _NOT_IMPLEMENTED, prefix=True),
    _ignored("observerMasterPort", _NOT_IMPLEMENTED, v.validated(v.port)),
    _ignored("electionPortBindRetry", _NOT_IMPLEMENTED, v.validated(v.integer(0))),
    _ignored("minNotificationInterval", _NOT_IMPLEMENTED, v.validated(v.integer(0))),
    _ignored("maxNotificationInterval", _NOT_IMPLEMENTED, v.validated(v.integer(0))),
    _ignored("leaderServes", _NOT_IMPLEMENTED),
    _ignored("learner.", _NOT_IMPLEMENTED, prefix=True),
    _ignored("leader.", _NOT_IMPLEMENTED, prefix=True),
    _ignored("oraclePath", _NOT_IMPLEMENTED),
    # --- Java-only machinery: accepted, kept in raw, no effect -------------------------------
    _ignored("serverCnxnFactory", _JAVA),
    _ignored("authProvider.", _JAVA, prefix=True),
    _ignored("secureClientPort", _NO_TLS, v.port, "secure_client_port"),
    _ignored("secureClientPortAddress", _NO_TLS, v.address, "secure_client_port_address"),
    _ignored("ssl.", _NO_TLS, field="ssl", prefix=True),
    _ignored("sslQuorum", _NO_TLS, prefix=True),
    _ignored("client.portUnification", _NO_TLS),
    _ignored("portUnification", _NO_TLS),
    _ignored("client.secure", _NO_TLS),
    _ignored("admin.enableServer", _NO_ADMIN, v.validated(v.boolean)),
    _ignored("admin.serverAddress", _NO_ADMIN, v.validated(v.address)),
    _ignored("admin.serverPort", _NO_ADMIN, v.validated(v.port)),
    _ignored("admin.commandURL", _NO_ADMIN),
    _ignored("admin.", _NO_ADMIN, prefix=True),
    _ignored("metricsProvider.", _JAVA, prefix=True),
    _ignored("quorum.auth.", _JAVA, prefix=True),
    _ignored("quorum.cnxn.", _JAVA, prefix=True),
    _ignored("jvm.", _JAVA, prefix=True),
    _ignored("java.", _JAVA, prefix=True),
    _ignored("javax.", _JAVA, prefix=True),
    _ignored("kerberos.", _JAVA, prefix=True),
    _ignored("sasl", _JAVA, prefix=True),
    _ignored("audit.", _JAVA, prefix=True),
    _ignored("netty.", _JAVA, prefix=True),
    _ignored("X509", _JAVA, prefix=True),
    _ignored("x509", _JAVA, prefix=True),
    # --- ZooKeeper tunables not implemented here ---------------------------------------------
    _ignored("clientPortListenBacklog", "the OS default backlog is used; accepted and ignored",
             v.integer(), "client_port_listen_backlog"),
    _ignored("localSessionsUpgradingEnabled", _NOT_IMPLEMENTED, v.validated(v.boolean)),
    _ignored("fsync.warningthresholdms", _NOT_IMPLEMENTED),
    _ignored("digest.enabled", _NOT_IMPLEMENTED),
    _ignored("snapSizeLimitInKb", _NOT_IMPLEMENTED),
    _ignored("txnLogSizeLimitInKb", _NOT_IMPLEMENTED),
    _ignored("commitLogCount", _NOT_IMPLEMENTED),
    _ignored("maxCnxns", _NOT_IMPLEMENTED),
    _ignored("skipACL", "ACLs are always checked; accepted and ignored"),
    _ignored("maxResponseCacheSize", _NOT_IMPLEMENTED),
    _ignored("maxGetChildrenResponseCacheSize", _NOT_IMPLEMENTED),
    _ignored("snapshot.compression.method", "snapshots are written uncompressed; accepted and ignored"),
    _ignored("closeSessionTxn.enabled", _NOT_IMPLEMENTED),
    _ignored("znode.container.maxPerMinute", _NOT_IMPLEMENTED),
    _ignored("znode.container.maxNeverUsedIntervalMs", _NOT_IMPLEMENTED),
    _ignored("requestThrottler.", _NOT_IMPLEMENTED, prefix=True),
    _ignored("connection_throttle_", _NOT_IMPLEMENTED, prefix=True),
    _ignored("flushDelay", _NOT_IMPLEMENTED),
    _ignored("maxBatchSize", _NOT_IMPLEMENTED),
    _ignored("largeRequestMaxBytes", _NOT_IMPLEMENTED),
    _ignored("largeRequestThreshold", _NOT_IMPLEMENTED),
    _ignored("maxWriteQueuePollTime", _NOT_IMPLEMENTED),
    _ignored("4lw.commands.enabled", _NOT_IMPLEMENTED),
)

_EXACT: dict[str, Key] = {k.name: k for k in KEYS if not k.prefix}
_PREFIXES: tuple[Key, ...] = tuple(sorted((k for k in KEYS if k.prefix), key=lambda k: -len(k.name)))


def lookup(name: str) -> tuple[Key, str] | None:
    """The row for ``name`` (``zookeeper.`` prefix already stripped) and the text after a prefix row's name."""
    row = _EXACT.get(name)
    if row is not None:
        return row, ""
    for row in _PREFIXES:
        if name.startswith(row.name):
            return row, name[len(row.name) :]
    return None


def default_of(row: Key) -> object:
    """The default of the field ``row`` sets (``None`` when it sets none)."""
    if row.field is None:
        return None
    return getattr(ServerConfig(), row.field)
