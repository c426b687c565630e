"""Four-letter words (``FourLetterCommands`` and the ``server/command`` classes of ZooKeeper 3.8).

:func:`run_command` turns a command name plus a :class:`ServerView` (what the
running server exposes) into the exact text ZooKeeper 3.8 writes before it
closes the socket.  Output formats were checked against Debian's ZooKeeper
3.8.0 (see ``docs/server.md``).

In an ensemble the words follow the server ZooKeeper runs at the time:
``leader`` / ``follower`` / ``observer`` (``mntr`` adds ``zk_peer_state``,
``zk_quorum_size`` and, on the leader, the ``Leader`` gauges; ``srvr`` on the
leader adds the proposal sizes; ``conf`` adds the membership and
``version=0``), ``read-only`` (``ReadOnlyZooKeeperServer``: no membership in
``conf``, local sessions in ``dump`` and ``mntr``), and nothing while
LOOKING (``This ZooKeeper instance is not currently serving requests``;
``isro`` answers ``null``).  The optional view methods (``quorum_stats``,
``session_timeouts``, ``local_session_buckets``) give those parts; a view
without them is a standalone server.

Invariants: pure formatting; it reads no clock (``now_ms``/``wall_ms`` come
from the view) and does no IO; an unknown or non-whitelisted word gets
ZooKeeper's refusal text, never an exception.
"""

from __future__ import annotations

__sans_io__ = True

import datetime
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from ..config import ALL_4LW, ServerConfig
from .stats import ConnStats, QuorumStats, ServerStats

__all__ = ["FOUR_LETTER_WORDS", "ServerView", "ConnView", "run_command", "VERSION", "hex_id"]

#: ``Version.getFullVersion()``-shaped: kazoo's ``server_version()`` parses the leading digits.
VERSION = "3.8.0-trio-quorum-0.1.0, built on 2026-01-01 00:00 UTC"

#: The 4-byte words, as the int a frame length would read (``FourLetterCommands``).
FOUR_LETTER_WORDS: dict[bytes, str] = {w.encode(): w for w in ALL_4LW}


def hex_id(v: int) -> str:
    """Java ``Long.toHexString``: unsigned."""
    return f"0x{v & 0xFFFFFFFFFFFFFFFF:x}"


class ConnView(Protocol):
    remote: tuple[str, int]
    session_id: int
    session_timeout: int
    established_ms: int
    stats: ConnStats
    outstanding: int

    @property
    def interest_ops(self) -> int: ...


class ServerView(Protocol):
    """What a running server shows its four-letter words.

    In an ensemble it may also have (looked up with ``getattr``, so a
    standalone view needs none of them): ``quorum_stats() -> QuorumStats |
    None`` (None unless leader / follower / observer), ``session_timeouts() ->
    Mapping[int, int]`` (the global sessions a learner or a read-only server
    lists in ``dump``), ``local_session_buckets() -> Mapping[int, Iterable[int]]
    | None`` (the read-only server's local sessions).
    """

    config: ServerConfig
    stats: ServerStats
    @property
    def mode(self) -> str: ...  # standalone | leader | follower | observer | read-only

    @property
    def serving(self) -> bool: ...
    def connections(self) -> Sequence[ConnView]: ...
    def last_zxid(self) -> int: ...
    def node_count(self) -> int: ...
    def approximate_data_size(self) -> int: ...
    def ephemerals(self) -> Mapping[int, Iterable[str]]: ...
    def session_buckets(self) -> Mapping[int, Iterable[int]]: ...
    def session_count(self) -> int: ...
    def watches_by_session(self) -> Mapping[int, Iterable[str]]: ...
    def watch_count(self) -> int: ...
    def dir_sizes(self) -> tuple[int, int]: ...
    def environment(self) -> Sequence[tuple[str, str]]: ...
    def now_ms(self) -> int: ...
    def wall_ms(self) -> int: ...
    def uptime_ms(self) -> int: ...
    def fd_counts(self) -> tuple[int, int]: ...


NOT_SERVING = "This ZooKeeper instance is not currently serving requests\n"


def _java_double(v: float) -> str:
    s = repr(float(v))
    return s


def _java_date(epoch_ms: int) -> str:
    """``java.util.Date.toString()`` in UTC: ``Sun Nov 22 05:04:00 UTC 2026``."""
    d = datetime.datetime.fromtimestamp(epoch_ms / 1000, tz=datetime.UTC)
    return d.strftime("%a %b %d %H:%M:%S UTC %Y")


def _conn_line(c: ConnView, brief: bool) -> str:
    host, port = c.remote[0], c.remote[1]
    s = c.stats
    head = f" /{host}:{port}[{c.interest_ops}](queued={c.outstanding},recved={s.packets_received},sent={s.packets_sent}"
    if brief or c.session_id == 0:
        return head + ")\n"
    return (
        head
        + f",sid={hex_id(c.session_id)},lop={s.last_op},est={c.established_ms},to={c.session_timeout}"
        + (f",lcxid={hex_id(s.last_cxid)}" if s.last_cxid >= 0 else "")
        + f",lzxid={hex_id(s.last_zxid)},lresp={s.last_response_time},llat={s.last_latency}"
        + f",minlat={s.min_latency},avglat={s.avg_latency},maxlat={s.max_latency})\n"
    )


def _srvr(v: ServerView, with_clients: bool) -> str:
    st = v.stats
    out = [f"Zookeeper version: {VERSION}\n"]
    if v.mode == "read-only":
        out.append("READ-ONLY mode; serving only read-only clients\n")
    if with_clients:
        out.append("Clients:\n")
        out.extend(_conn_line(c, True) for c in v.connections())
        out.append("\n")
    out.append(f"Latency min/avg/max: {st.min_latency}/{_java_double(st.avg_latency)}/{st.max_latency}\n")
    out.append(f"Received: {st.packets_received}\nSent: {st.packets_sent}\n")
    out.append(f"Connections: {len(v.connections())}\nOutstanding: {st.outstanding}\n")
    out.append(f"Zxid: {hex_id(v.last_zxid())}\nMode: {v.mode}\nNode count: {v.node_count()}\n")
    q = _quorum_stats(v)
    if q is not None and q.leader is not None:
        last, lo, hi = q.leader.proposal_sizes
        out.append(f"Proposal sizes last/min/max: {last}/{lo}/{hi}\n")
    return "".join(out)


def _quorum_stats(v: ServerView) -> QuorumStats | None:
    get = getattr(v, "quorum_stats", None)
    return None if get is None else get()


def _conf(v: ServerView) -> str:
    c = v.config
    ds, ls = v.dir_sizes()
    lines = [
        f"clientPort={c.client_port}",
        "secureClientPort=-1",
        f"dataDir={c.data_dir}/version-2",
        f"dataDirSize={ds}",
        f"dataLogDir={c.data_log_dir}/version-2",
        f"dataLogSize={ls}",
        f"tickTime={c.tick_time}",
        f"maxClientCnxns={c.max_client_cnxns}",
        f"minSessionTimeout={c.effective_min_session_timeout}",
        f"maxSessionTimeout={c.effective_max_session_timeout}",
        f"clientPortListenBacklog={c.client_port_listen_backlog}",
        f"serverId={c.my_id}",
    ]
    if not c.standalone and c.servers:
        lines += [
            f"initLimit={c.init_limit}",
            f"syncLimit={c.sync_limit}",
            f"electionAlg={c.election_alg}",
            f"electionPort={c.servers[c.my_id].election_port}",
            f"quorumPort={c.servers[c.my_id].quorum_port}",
            f"peerType={0 if c.servers[c.my_id].role == 'participant' else 1}",
        ]
        if v.mode != "read-only":  # ReadOnlyZooKeeperServer.dumpConf stops at peerType
            # QuorumZooKeeperServer.dumpConf: "membership: " then QuorumMaj.toString(),
            # server lines and "version=<hex>" with no newline after it.
            lines.append("membership: ")
            for s in sorted(c.servers.values(), key=lambda s: s.sid):
                client = f";{s.client_host or '0.0.0.0'}:{s.client_port}" if s.client_port is not None else ""
                lines.append(f"server.{s.sid}={s.host}:{s.quorum_port}:{s.election_port}:{s.role}{client}")
            return "\n".join(lines) + "\nversion=0"
    return "\n".join(lines) + "\n"


def _cons(v: ServerView) -> str:
    return "".join(_conn_line(c, False) for c in v.connections()) + "\n"


def _session_sets(v: ServerView, raw: Mapping[int, Iterable[int]]) -> list[str]:
    """``SessionTrackerImpl.dumpSessions``: the expiry buckets."""
    now, wall = v.now_ms(), v.wall_ms()
    buckets = {t: sorted(ids) for t, ids in raw.items()}
    out = [f"Session Sets ({len(buckets)})/({sum(len(b) for b in buckets.values())}):\n"]
    for t in sorted(buckets):
        out.append(f"{len(buckets[t])} expire at {_java_date(wall + (t - now))}:\n")
        out.extend(f"\t{hex_id(sid)}\n" for sid in buckets[t])
    return out


def _global_sessions(v: ServerView) -> list[str]:
    """``LearnerSessionTracker.dumpSessions``' global part: id and timeout, by id."""
    get = getattr(v, "session_timeouts", None)
    timeouts: Mapping[int, int] = get() if get is not None else {}
    out = [f"Global Sessions({len(timeouts)}):\n"]
    out.extend(f"{hex_id(sid)}\t{timeouts[sid]}ms\n" for sid in sorted(timeouts, key=lambda s: s & 0xFFFFFFFFFFFFFFFF))
    return out


def _dump(v: ServerView) -> str:
    wall = v.wall_ms()
    out = ["SessionTracker dump:\n"]
    if v.mode == "read-only":  # a LearnerSessionTracker with local sessions
        local = getattr(v, "local_session_buckets", lambda: None)()
        out.append("Local ")
        out += _session_sets(v, local or {})
        out += _global_sessions(v)
    elif v.mode in ("follower", "observer"):  # a LearnerSessionTracker: the leader expires sessions
        out += _global_sessions(v)
    else:
        out += _session_sets(v, v.session_buckets())
    eph = {sid: sorted(paths) for sid, paths in v.ephemerals().items()}
    out.append("ephemeral nodes dump:\n")
    out.append(f"Sessions with Ephemerals ({len(eph)}):\n")
    for sid in sorted(eph):
        out.append(f"{hex_id(sid)}:\n")
        out.extend(f"\t{p}\n" for p in eph[sid])
    conns = v.connections()
    out.append("Connections dump:\n")
    if conns:
        out.append(f"Connections Sets (1)/({len(conns)}):\n")
        t = wall + v.config.tick_time
        out.append(f"{len(conns)} expire at {_java_date(t - t % v.config.tick_time)}:\n")
        out.extend(f"\tip: /{c.remote[0]}:{c.remote[1]} sessionId: {hex_id(c.session_id)}\n" for c in conns)
    else:
        out.append("Connections Sets (0)/(0):\n")
    return "".join(out)


def _wchs(v: ServerView) -> str:
    by_session = v.watches_by_session()
    paths: set[str] = set()
    total = 0
    conns = 0
    for ps in by_session.values():
        lst = list(ps)
        if lst:
            conns += 1
        total += len(lst)
        paths.update(lst)
    return f"{conns} connections watching {len(paths)} paths\nTotal watches:{total}\n"


def _wchc(v: ServerView) -> str:
    out = []
    for sid, ps in v.watches_by_session().items():
        lst = list(ps)
        if not lst:
            continue
        out.append(f"{hex_id(sid)}\n")
        out.extend(f"\t{p}\n" for p in lst)
    return "".join(out) + "\n"


def _wchp(v: ServerView) -> str:
    by_path: dict[str, list[int]] = {}
    for sid, ps in v.watches_by_session().items():
        for p in ps:
            by_path.setdefault(p, []).append(sid)
    out = []
    for p, sids in by_path.items():
        out.append(f"{p}\n")
        out.extend(f"\t{hex_id(s)}\n" for s in sids)
    return "".join(out) + "\n"


def _mntr(v: ServerView) -> str:
    st = v.stats
    eph = v.ephemerals()
    # Data and child watches (DataTree.getWatchCount); wchs counts data watches only.
    watches = v.watch_count()
    open_fds, max_fds = v.fd_counts()
    q = _quorum_stats(v)
    lead = q.leader if q is not None else None
    local = getattr(v, "local_session_buckets", lambda: None)()
    local_count = sum(len(list(ids)) for ids in local.values()) if local else 0
    Rows = list[tuple[str, object]]
    # ZooKeeper 3.8 prints its metrics map in hash order; the quorum rows go
    # where it puts them (peer_state and quorum_size for every quorum server,
    # the Leader gauges on the leader only).
    peer: Rows = [("peer_state", q.peer_state)] if q is not None else []
    min_prop: Rows = [("min_proposal_size", lead.proposal_sizes[1])] if lead else []
    max_prop: Rows = [("max_proposal_size", lead.proposal_sizes[2])] if lead else []
    synced: Rows = [("synced_followers", lead.synced_followers)] if lead else []
    synced_others: Rows = [("synced_non_voting_followers", lead.synced_non_voting_followers),
                           ("synced_observers", lead.synced_observers)] if lead else []
    last_prop: Rows = [("last_proposal_size", lead.proposal_sizes[0]), ("pending_syncs", lead.pending_syncs),
                       ("leader_uptime", lead.uptime_ms)] if lead else []
    learners: Rows = [("learners", lead.learners)] if lead else []
    quorum_size: Rows = [("quorum_size", q.quorum_size)] if q is not None else []
    rows: Rows = [
        ("version", VERSION),
        ("server_state", v.mode),
        *peer,
        ("ephemerals_count", sum(len(list(p)) for p in eph.values())),
        ("num_alive_connections", len(v.connections())),
        ("avg_latency", _java_double(st.avg_latency)),
        *min_prop,
        ("outstanding_requests", st.outstanding),
        ("znode_count", v.node_count()),
        ("global_sessions", v.session_count()),
        ("non_mtls_remote_conn_count", 0),
        ("last_client_response_size", st.last_client_response_size),
        ("packets_sent", st.packets_sent),
        ("packets_received", st.packets_received),
        *max_prop,
        ("max_client_response_size", st.max_client_response_size),
        *synced,
        ("connection_drop_probability", "0.0"),
        ("watch_count", watches),
        *synced_others,
        ("auth_failed_count", st.auth_failed),
        ("min_latency", st.min_latency),
        ("max_file_descriptor_count", max_fds),
        ("approximate_data_size", v.approximate_data_size()),
        ("open_file_descriptor_count", open_fds),
        *last_prop,
        ("local_sessions", local_count),
        ("uptime", v.uptime_ms()),
        ("max_latency", st.max_latency),
        ("outstanding_tls_handshake", 0),
        *learners,
        ("min_client_response_size", st.min_client_response_size),
        ("non_mtls_local_conn_count", 0),
        *quorum_size,
        ("fsync_count", st.fsync_count),
        ("avg_fsynctime", _java_double(st.fsync_total_ms / st.fsync_count if st.fsync_count else 0.0)),
    ]
    return "".join(f"zk_{k}\t{val}\n" for k, val in rows)


def run_command(cmd: str, v: ServerView) -> str:
    """The full reply to four-letter word ``cmd`` (the server closes the socket after it)."""
    if cmd not in v.config.fourlw_whitelist:
        return f"{cmd} is not executed because it is not in the whitelist.\n"
    if cmd == "ruok":
        return "imok"
    if cmd == "isro":  # IsroCommand: "null" while no server runs (LOOKING, starting)
        if not v.serving:
            return "null"
        return "ro" if v.mode == "read-only" else "rw"
    if cmd == "envi":
        return "Environment:\n" + "".join(f"{k}={val}\n" for k, val in v.environment())
    if cmd == "gtmk":
        return "0"
    if cmd == "stmk":
        return "0"
    if not v.serving:
        return NOT_SERVING
    if cmd == "srvr":
        return _srvr(v, False)
    if cmd == "stat":
        return _srvr(v, True)
    if cmd == "conf":
        return _conf(v)
    if cmd == "cons":
        return _cons(v)
    if cmd == "crst":
        for c in v.connections():
            c.stats.reset()
        return "Connection stats reset.\n"
    if cmd == "srst":
        v.stats.reset()
        return "Server stats reset.\n"
    if cmd == "dirs":
        ds, ls = v.dir_sizes()
        return f"datadir_size: {ds}\nlogdir_size: {ls}\n"
    if cmd == "dump":
        return _dump(v)
    if cmd == "wchs":
        return _wchs(v)
    if cmd == "wchc":
        return _wchc(v)
    if cmd == "wchp":
        return _wchp(v)
    if cmd == "mntr":
        return _mntr(v)
    if cmd == "hash":
        return "Digest is not enabled.\n"
    return f"{cmd} is not executed because it is not in the whitelist.\n"
