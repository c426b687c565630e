"""The ensemble's part of a peer: election, quorum links, and the role loop (``QuorumPeer.run``).

::

    peer-N
      storage, purge-timer, client-port     (peer.py)
      election          the election listener: links on the election port + the FLE core
      quorum-links      links on the quorum port (listener, sender-<sid>)
      leading | following | observing       the role (leading.py, following.py), one at a time
      read-only         only while LOOKING with readonlymode.enabled (readonly.py)

The role loop: LOOKING (``election.look``) -> start the elected role's subtree
-> wait until it ends -> LOOKING again.  A role that ends cleanly (a leader
that lost its quorum, a learner that lost its leader) sends the peer back to
LOOKING at once; a role that CRASHED (a stage or driver raised) leaves the
tree suspect: the peer fails, as standalone.  Every role change logs one line
built from the lifecycle events: old role, new role, reason, how many actors
stopped, teardown time.

With ``readonlymode.enabled`` the ``read-only`` subtree runs while LOOKING:
started when the peer starts looking, stopped (its clients closed) as soon as
the election decides, before the elected role starts.

Invariants: at most one role runs (read-only counts as one); a role's clients are closed when it ends
(roles.run_chain_role); the election core lives as long as the peer, so LOOKING
peers are answered in every role.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

import trio

from actors import ActorStopped, ActorStopping, ChildSpec, Context, Supervisor

from ..net import LinksConfig, WebSocketNetwork, open_peer_links
from ..quorum.election import ServerState
from ..quorum.messages import QUORUM, QUORUM_LIMITS
from ..quorum.verifier import QuorumVerifier
from ..quorum.wire import Channel
from ..quorum.zab_packets import Proposal
from .electing import ElectionService
from .following import following_role
from .leading import leading_role
from .readonly import read_only_role
from .stats import QuorumStats, leader_stats

if TYPE_CHECKING:
    from actors import ActorTree

    from ..config import ServerConfig
    from .chain import Chain
    from .clientport import ClientPort
    from .state import PeerState


class PeerHost(Protocol):
    """What the role loop needs of its peer (peer.py implements it)."""

    name: str
    config: ServerConfig
    state: PeerState
    clients: ClientPort
    tree: ActorTree
    role: str | None
    #: The running role's chain (None between roles): quorum_stats() finds the ZAB core on it.
    chain: Chain | None

    def fail(self, message: str) -> None: ...
    def _set_chain(self, chain: Chain | None) -> None: ...

__all__ = ["QuorumPeer"]

log = logging.getLogger("trio_quorum.server.quorum")

#: How many committed txns of its log a new leader keeps for DIFFs (older learners get a SNAP).
_HISTORY = 100_000


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class QuorumPeer:
    """Election, quorum links and the role loop of one peer of an ensemble."""

    def __init__(self, peer: PeerHost, network: Any = None) -> None:
        self.peer = peer
        quorum = peer.config.quorum
        assert quorum is not None
        self.quorum = quorum
        self.my_sid = quorum.my_id
        self.network = network if network is not None else WebSocketNetwork(max_frame_bytes=1 << 30)
        servers = quorum.servers
        listen_all = quorum.quorum_listen_on_all_ips
        me = servers[self.my_sid]

        def addr(sid: int, port_of: Any) -> str:
            s = servers[sid]
            host = "0.0.0.0" if (listen_all and sid == self.my_sid) else s.host
            return _address(host, port_of(s))

        self.election_addresses = {sid: addr(sid, lambda s: s.election_port) for sid in servers}
        self.quorum_addresses = {sid: addr(sid, lambda s: s.quorum_port) for sid in servers}
        self.voters = {sid for sid, s in servers.items() if s.role == "participant"}
        self.observer = me.role == "observer"
        verifier = QuorumVerifier.of(self.voters, set(servers) - self.voters)
        cnx = quorum.cnx_timeout_ms / 1000
        self.election = ElectionService(
            self.network, self.my_sid, self.election_addresses, verifier,
            links_config=LinksConfig(connect_timeout=cnx, seed=self.my_sid),
        )
        self.links: Any = None
        self._links_ready = trio.Event()
        self.state = ServerState.LOOKING
        self.leader: int | None = None
        self.epoch = 0
        #: The last role change, for tests and the log: (old, new, reason, actors stopped, teardown s).
        self.last_change: tuple[str, str, str, int, float] | None = None
        #: A read-only server answers clients now (LOOKING with readonlymode.enabled, after the grace).
        self.read_only_serving = False
        #: When the current role started (trio seconds): the leader's ``zk_leader_uptime``.
        self.role_started: float | None = None

    @property
    def mode(self) -> str:
        if self.read_only_serving:
            return "read-only"
        return {ServerState.LEADING: "leader", ServerState.FOLLOWING: "follower",
                ServerState.OBSERVING: "observer"}.get(self.state, "looking")

    def quorum_stats(self) -> QuorumStats | None:
        """``mntr``'s ensemble rows while leading / following / observing (None otherwise).

        The figures come from the role's ZAB core, found on the chain's stages
        (the leader's and the learner's stages hold their driver, whose
        ``core`` it is).
        """
        word = {ServerState.LEADING: "leading", ServerState.FOLLOWING: "following",
                ServerState.OBSERVING: "observing"}.get(self.state)
        chain = self.peer.chain
        if word is None or chain is None:
            return None
        drivers: list[Any] = [getattr(st, "driver", None) for st in chain.stages]
        core: Any = next((d.core for d in drivers if hasattr(d, "core")), None)
        zab = getattr(getattr(core, "state", None), "value", None)
        peer_state = word if zab is None else f"{word} - {zab}"
        lead = None
        if self.state is ServerState.LEADING and core is not None and hasattr(core, "handlers"):
            started = self.role_started if self.role_started is not None else trio.current_time()
            # LeaderCore keeps the learners' pending SYNCs in a private queue (who, None for
            # its own clients); ZooKeeper's getNumPendingSyncs counts the learners' only.
            pending = sum(1 for _z, who, _t in getattr(core, "_pending_syncs", ()) if who is not None)
            lead = leader_stats(core.handlers.values(), pending_syncs=pending,
                                uptime_ms=int((trio.current_time() - started) * 1000))
        return QuorumStats(peer_state, len(self.voters), lead)

    def _set_read_only_serving(self, serving: bool) -> None:
        self.read_only_serving = serving

    # ------------------------------------------------------------ children of the peer
    def child_specs(self) -> list[ChildSpec]:
        return [
            ChildSpec("election", self.election.run, mailbox=0, shutdown=2.0),
            ChildSpec("quorum-links", self._quorum_links, mailbox=0, shutdown=2.0),
        ]

    async def _quorum_links(self, ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *,
                            task_status: trio.TaskStatus[None]) -> None:
        cnx = self.quorum.cnx_timeout_ms / 1000
        config = LinksConfig(connect_timeout=cnx, limits=QUORUM_LIMITS, seed=self.my_sid,
                             inbound_buffer=4096)
        addresses: dict[int, str | None] = dict(self.quorum_addresses)
        async with open_peer_links(self.network, self.my_sid, addresses, Channel.QUORUM, QUORUM,
                                   config=config, parent=ctx) as links:
            self.links = links
            self._links_ready.set()
            task_status.started()
            try:
                await ctx.wait_stop_requested()
            finally:
                self.links = None
                self._links_ready = trio.Event()

    # ------------------------------------------------------------ the role loop
    async def role_loop(self, root: Supervisor) -> None:
        peer = self.peer
        state = peer.state
        storage: Any = state.storage
        while True:
            self.state = ServerState.LOOKING
            self.leader = None
            t0 = trio.current_time()
            # Vote for the whole log: what was logged but not yet committed counts.
            last = await state.apply_log_tail()
            read_only = self._read_only_spec()
            if read_only is not None:
                await root.start_child(read_only)
            elected = await self.election.look(last, storage.current_epoch)
            if read_only is not None:
                await self._stop_read_only(root, f"election decided: {elected.state.name} under leader "
                                                 f"{elected.leader}")
            log.info("LOOKING -> %s under leader %d after %.0f ms (election epoch %d)",
                     elected.state.name, elected.leader, (trio.current_time() - t0) * 1000,
                     elected.election_epoch)
            await self._links_ready.wait()
            spec = await self._role_spec(elected.state, elected.leader)
            ended = trio.Event()
            outcome: dict[str, Any] = {}
            spec = _watch_exit(spec, ended, outcome)
            self.leader = elected.leader
            self.state = elected.state
            peer.clients.changed()
            new = spec.id
            events = peer.tree.events.subscribe(max_buffer=100_000)
            try:
                self.role_started = trio.current_time()
                await root.start_child(spec)
                peer.role = new
                await ended.wait()
            finally:
                events.close()
            peer.role = None
            self.state = ServerState.LOOKING
            peer.clients.changed()
            reason = outcome.get("reason", "role ended")
            stopped, teardown = _teardown(list(events.drain()), f"{peer.name}/{new}",
                                          outcome.get("ended_at", trio.current_time()))
            self.last_change = (new, "looking", reason, stopped, teardown)
            log.info("role change: %s -> looking: %s (%d actors stopped, teardown %.1f ms)",
                     new, reason, stopped, teardown * 1000)
            if outcome.get("crashed"):
                peer.fail(f"role {new} failed: {reason}")
                return

    def _read_only_spec(self) -> ChildSpec | None:
        if not self.peer.config.read_only_mode_enabled:
            return None
        return read_only_role(self.peer.state, self.peer.clients, on_serving=self._set_read_only_serving)

    async def _stop_read_only(self, root: Supervisor, reason: str) -> None:
        try:
            await root.stop_child("read-only", reason=reason)
        except KeyError:
            pass  # it ended on its own (a crash is logged by the peer)
        self.read_only_serving = False

    async def _role_spec(self, state: ServerState, leader: int) -> ChildSpec:
        peer = self.peer
        st = peer.state
        if state is ServerState.LEADING:
            history, base = await self._history()
            return leading_role(st, peer.clients, self.links, my_sid=self.my_sid, voters=self.voters,
                                on_chain=peer._set_chain, on_established=self._established,
                                history=history, history_base=base)
        return following_role(st, peer.clients, self.links, my_sid=self.my_sid, leader=leader,
                              observer=state is ServerState.OBSERVING, on_chain=peer._set_chain,
                              on_established=self._established)

    async def _history(self) -> tuple[list[Proposal], int | None]:
        """The tail of this peer's log, as a new leader's committed-log window (complete after its base)."""
        from ..protocol.txn import encode_txn

        state = self.peer.state
        storage: Any = state.storage
        last = state.last_zxid
        after = max(storage.min_logged_zxid() - 1, last - _HISTORY, 0)
        txns = await storage.read_txns(after, last)
        return [Proposal(hdr.zxid, encode_txn(hdr, rec)) for hdr, rec in txns], after

    def _established(self, epoch: int) -> None:
        self.epoch = epoch
        self.election.established(epoch)


def _watch_exit(spec: ChildSpec, ended: trio.Event, outcome: dict[str, Any]) -> ChildSpec:
    """``spec`` whose actor reports how it ended (the role loop waits on ``ended``)."""
    inner: Any = spec.start  # a role returns why it ended on its own (or None)

    async def run(ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *, task_status: Any) -> None:
        try:
            why = await inner(ctx, inbox, task_status=task_status)
            # A role that ended on its own returns why (a leader that stepped
            # down, a learner that lost its leader).
            outcome["reason"] = ctx.stop_reason or why or "role ended"
        except trio.Cancelled:
            outcome["reason"] = ctx.stop_reason or "cancelled"
            raise
        except BaseException as exc:
            outcome["reason"] = repr(exc)
            outcome["crashed"] = True
            raise
        finally:
            outcome["ended_at"] = trio.current_time()
            ended.set()

    return ChildSpec(spec.id, run, restart=spec.restart, mailbox=spec.mailbox, shutdown=spec.shutdown)


def _teardown(events: list[Any], prefix: str, ended_at: float) -> tuple[int, float]:
    """(actors under ``prefix`` stopped, seconds from the first of them asked or ended to the role's end)."""
    inside = [e for e in events if e.path.startswith(prefix + "/")]
    stopped = [e for e in inside if isinstance(e, ActorStopped)]
    if not stopped:
        return 0, 0.0
    first = min(e.time for e in inside if isinstance(e, (ActorStopping, ActorStopped)))
    return len(stopped), max(0.0, ended_at - first)
