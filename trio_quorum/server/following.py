"""The FOLLOWING and OBSERVING roles: a ZAB learner as a supervised subtree (``Follower`` / ``Observer``).

::

    peer-N/following          one_for_one, auto_shutdown: any significant child
      commit, forward         the chain (significant): forward -> commit
      zab                     significant: the LearnerCore's driver (the leader's packets, ticks, effects)

(``observing`` is the same subtree with an observer's core: OBSERVERINFO,
INFORMs, no ACKs, no vote.)

* ``forward`` answers nothing itself: it checks the session of a read, sends
  every write (and createSession / closeSession) to the leader as a REQUEST,
  and a ``sync`` as SYNC; the batch goes on to ``commit`` in arrival order.
* ``commit`` (ZooKeeper's CommitProcessor + FinalRequestProcessor) keeps the
  requests in arrival order and answers them from the head: a read when
  every request ahead of it is answered, a write when its txn is committed
  (matched by session id and cxid), a sync when the leader's SYNC came back.
  Committed txns of other servers' clients are applied as they arrive, in
  zxid order, interleaved with ours.
* ``zab`` logs what the leader proposes (group commit per received batch),
  ACKs only after the fsync (the core withholds it until ``persisted``),
  applies commits through ``commit``, truncates or installs a snapshot when
  the leader says so, answers PINGs with the sessions its clients touched.
  Clients are served from UPTODATE on; LeaderLost ends the role cleanly (the
  peer goes LOOKING).

Invariants: the tree only ever holds committed txns in zxid order; a client
hears about its write only after the leader committed it (a quorum logged
it); per-connection replies stay in request order.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import trio

from actors import TEMPORARY, ChildSpec, Context

from ..core.datatree import DataTree
from ..net import Batch, LinkDown
from ..protocol.consts import Err, KeeperError, OpCode
from ..protocol.txn import decode_txn
from ..quorum import zab_effects as fx
from ..quorum import zab_packets as zp
from ..quorum.learner import LearnerCore
from ..quorum.zab_zxid import make_zxid
from .chain import Chain
from .clientport import ClientPort
from .forward import LOCAL_OPS, encode_forwarded
from .request import UNIMPLEMENTED, Request
from .roles import run_chain_role
from .stages import FinalStage
from .state import PeerState
from .zabdriver import NoDirectStage, ZabDriver, drain

__all__ = ["following_role"]

log = logging.getLogger("trio_quorum.server.following")

_SYNC = int(OpCode.sync)
_CREATE_SESSION = int(OpCode.createSession)
#: ``Request.extra`` of a request still waiting for the leader (its commit or SYNC).
_WAITING = object()


class LearnerDriver(ZabDriver):
    """Executes a LearnerCore's effects; shared by the ``zab`` actor and the chain's stages."""

    kind = "learner"

    def __init__(self, state: PeerState, clients: ClientPort, links: Any, core: LearnerCore, leader: int,
                 on_established: Callable[[int], None]) -> None:
        super().__init__(links, core, core.tick_time / 2000)
        self.core: LearnerCore = core
        self.state = state
        self.clients = clients
        self.leader = leader
        self.on_established = on_established
        self.chain: Chain | None = None
        self.commit: CommitStage | None = None
        self._tokens = itertools.count(1)
        #: session id -> connections whose reconnect waits for the leader's REVALIDATE answer.
        self._revalidating: dict[int, list[tuple[Any, int]]] = {}

    def confirm_session(self, conn: Any, session_id: int, timeout: int) -> None:
        """A client reconnected here with a session: the leader must agree (and note the move)."""
        self._revalidating.setdefault(session_id, []).append((conn, timeout))
        rest = self.execute_now(self.core.revalidate(session_id, timeout))
        if rest:
            raise RuntimeError(f"learner: unexpected effects from revalidate: {rest!r}")

    def now(self) -> int:
        return self.state.now_ms()

    def next_token(self) -> int:
        return next(self._tokens)

    def execute_now(self, effects: list[Any]) -> list[Any]:
        for i, eff in enumerate(effects):
            cls = eff.__class__
            if cls is fx.SendToLeader:
                self.links.send(self.leader, eff.packets)
            elif cls is fx.Commit:
                assert self.commit is not None
                self.commit.apply_commits(eff.proposals)
            elif cls is fx.SyncDone:
                assert self.commit is not None
                self.commit.sync_done(eff.token)
            elif cls is fx.ReplyPing:
                tail = self.execute_now(self.core.ping_reply(self._touches()))
                if tail:
                    return tail + list(effects[i + 1:])
            elif cls is fx.SessionRevalidated:
                for conn, timeout in self._revalidating.pop(eff.session_id, ()):
                    conn.finish_session_init(eff.session_id, timeout, eff.valid)
            elif cls is fx.LeaderLost:
                self.end(f"leader {self.leader} lost: {eff.reason}")
            elif cls is fx.StartServing:
                assert self.chain is not None
                self.state.enter_epoch(make_zxid(eff.epoch, 0))
                self.clients.attach_chain(self.chain)
                self.on_established(eff.epoch)
                log.info("%s: serving in epoch %d under leader %d",
                         "OBSERVING" if self.core.observer else "FOLLOWING", eff.epoch, self.leader)
            else:
                return list(effects[i:])
        return []

    async def execute_one(self, eff: Any) -> Callable[[], list[Any]] | None:
        cls = eff.__class__
        storage: Any = self.state.storage
        if cls is fx.LogTxns:
            append = storage.append
            for prop in eff.proposals:
                hdr, rec, _digest = decode_txn(prop.txn)
                append(hdr, rec)
            await storage.sync()
            last = eff.proposals[-1].zxid
            return lambda: self.core.persisted(last)  # the ACK, only now that it is on disk
        if cls is fx.PersistAcceptedEpoch:
            await storage.set_accepted_epoch(eff.epoch)
        elif cls is fx.PersistCurrentEpoch:
            await storage.set_current_epoch(eff.epoch)
        elif cls is fx.Truncate:
            log.info("TRUNC: dropping logged txns after 0x%x", eff.zxid)
            await storage.truncate(eff.zxid)
            await self.state.reload()
        elif cls is fx.ApplySnapshot:
            await self._install(eff.zxid, eff.snapshot)
        else:
            raise RuntimeError(f"learner: no driver for effect {eff!r}")
        return None

    async def _install(self, zxid: int, data: Any) -> None:
        from ..persistence.snapshot import load_snapshot_bytes

        tree = DataTree()
        sessions: dict[int, int] = {}
        last = load_snapshot_bytes(data, tree, sessions)
        log.info("SNAP: installing the leader's snapshot at 0x%x (%d znodes)", last, tree.node_count())
        self.state.replace_tree(tree, sessions)
        await self.state.storage.install_snapshot(tree, sessions, last)

    def _touches(self) -> dict[int, int]:
        tracker = self.state.tracker
        out = {}
        for conn in self.clients.connections():
            sid = conn.session_id
            if sid:
                timeout = tracker.timeout_of(sid)
                if timeout:
                    out[sid] = timeout
        return out

    # ------------------------------------------------------------ the zab actor
    async def begin(self) -> bool:
        links = self.links
        # Whatever is buffered predates our FOLLOWERINFO: a leader sends nothing before it.
        drain(links.inbound)
        # The link to the leader may still be coming up: FOLLOWERINFO once it is.
        with trio.move_on_after(self.core.init_limit * self.core.tick_time / 1000):
            while not links.is_up(self.leader):
                await links.inbound.receive()  # link events only: nothing is owed to us yet
        if not links.is_up(self.leader):
            self.end(f"no link to leader {self.leader} within initLimit")
            return False
        await self.execute(self.core.start(self.now()))
        return True

    async def on_inbound(self, item: Any) -> None:
        if isinstance(item, Batch):
            if item.sid != self.leader:  # another peer's stray packets are not ours to read
                return
            # Group commit across frames: every frame of the leader's already
            # waiting goes into the same receive_many, so their PROPOSALs share
            # one LogTxns (one fsync) and one cumulative ACK.  One fsync per
            # frame let the inbox grow without bound under load (the leader
            # sends a frame per chain batch; ~2 txns each at 8x32).
            packets = list(item.messages)
            after = None
            inbound = self.links.inbound
            while True:
                try:
                    nxt = inbound.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                if isinstance(nxt, Batch) and nxt.sid == self.leader:
                    packets.extend(nxt.messages)
                elif isinstance(nxt, Batch):
                    continue
                else:
                    after = nxt  # a link event: after what came before it
                    break
            await self.execute(self.core.receive_many(cast(list[zp.Packet], packets), self.now()))
            if after is not None:
                await self.on_inbound(after)
        elif isinstance(item, LinkDown) and item.sid == self.leader:
            self.end(f"link to leader {self.leader} down: {item.reason}")


class ForwardStage(NoDirectStage):
    """Session checks for reads; writes and syncs to the leader (FollowerRequestProcessor)."""

    name = "forward"

    def __init__(self, driver: LearnerDriver) -> None:
        self.driver = driver

    def handle_now(self, batch: list[Request]) -> None:
        driver = self.driver
        core = driver.core
        check = driver.state.tracker.check_session
        effects: list[Any] = []
        for req in batch:
            typ = req.type
            if req.record is UNIMPLEMENTED:
                req.err = Err.UNIMPLEMENTED
            elif typ in LOCAL_OPS:
                try:
                    check(req.session_id)
                except KeeperError as exc:
                    req.err = exc.code
            elif typ == _SYNC:
                token = driver.next_token()
                req.extra = (_WAITING, token)
                effects += core.sync(token)
            else:
                req.extra = _WAITING
                effects += core.forward(encode_forwarded(req))
        rest = driver.execute_now(effects)
        if rest:
            raise RuntimeError(f"learner: unexpected effects from forward: {rest!r}")


class CommitStage(NoDirectStage):
    """Answer requests in arrival order as their commits / syncs arrive (CommitProcessor + final)."""

    name = "commit"

    def __init__(self, driver: LearnerDriver, state: PeerState, clients: ClientPort) -> None:
        self.driver = driver
        self.state = state
        self.final = FinalStage(state, None, clients)
        self.pending: deque[Request] = deque()
        #: (session id, cxid) -> the local write waiting for its commit.
        self.writes: dict[tuple[int, int], Request] = {}
        #: sync token -> the local sync waiting for the leader's answer.
        self.syncs: dict[int, Request] = {}

    def handle_now(self, batch: list[Request]) -> None:
        for req in batch:
            extra = req.extra
            if extra is _WAITING:
                self.writes[(req.session_id, req.xid)] = req
            elif type(extra) is tuple and extra[0] is _WAITING:
                self.syncs[extra[1]] = req
            self.pending.append(req)
        ready: list[Request] = []
        self._drain(ready)
        if ready:
            self.final.handle_now(ready)

    def _drain(self, ready: list[Request]) -> None:
        pending = self.pending
        while pending:
            head = pending[0]
            extra = head.extra
            if extra is _WAITING or (type(extra) is tuple and extra[0] is _WAITING):
                return
            ready.append(pending.popleft())

    def apply_commits(self, proposals: tuple[zp.Proposal, ...]) -> None:
        """Committed txns, in zxid order: ours answered in arrival order, others applied."""
        state = self.state
        now = state.now_ms()
        ready: list[Request] = []
        foreign = 0
        for prop in proposals:
            hdr, rec, _digest = decode_txn(cast(bytes, prop.txn))
            if hdr.zxid <= state.tree.last_processed_zxid:
                continue  # already in the tree (a fuzzy snapshot, or a replayed DIFF)
            req = self.writes.pop((hdr.client_id, hdr.cxid), None)
            if req is None:
                req = Request(None, hdr.client_id, hdr.cxid, hdr.type, None, now)
                req.hdr, req.txn = hdr, rec
                if hdr.type == _CREATE_SESSION:
                    state.tracker.track_session(hdr.client_id, rec.timeout, now)  # type: ignore[union-attr]
                self._drain(ready)
                ready.append(req)
                foreign += 1
                continue
            req.hdr, req.txn = hdr, rec
            req.extra = None
            self._drain(ready)
        if ready:
            state.stats.outstanding += foreign  # final counts every request it answers
            self.final.handle_now(ready)

    def abandon(self) -> None:
        """The role ended: requests still waiting for the leader are never answered
        (their clients were closed); release them from ``stats.outstanding``."""
        self.state.stats.outstanding -= len(self.pending)
        self.pending.clear()
        self.writes.clear()
        self.syncs.clear()

    def sync_done(self, token: object) -> None:
        req = self.syncs.pop(token, None) if isinstance(token, int) else None
        if req is None:
            return
        req.extra = None
        ready: list[Request] = []
        self._drain(ready)
        if ready:
            self.final.handle_now(ready)


def following_role(state: PeerState, clients: ClientPort, links: Any, *, my_sid: int, leader: int,
                   observer: bool, on_chain: Callable[[Chain | None], None],
                   on_established: Callable[[int], None]) -> ChildSpec:
    """The ``following`` (or ``observing``) role's subtree (temporary; a clean end: go LOOKING)."""
    cfg = state.config
    quorum = cfg.quorum
    assert quorum is not None
    name = "observing" if observer else "following"

    async def run_role(ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *,
                       task_status: trio.TaskStatus[Chain]) -> str | None:
        storage: Any = state.storage
        core = LearnerCore(
            my_sid, accepted_epoch=storage.accepted_epoch, current_epoch=storage.current_epoch,
            last_zxid=state.last_zxid, observer=observer, tick_time=cfg.tick_time,
            init_limit=quorum.init_limit, sync_limit=quorum.sync_limit,
        )
        driver = LearnerDriver(state, clients, links, core, leader, on_established)
        commit = CommitStage(driver, state, clients)
        driver.commit = commit
        chain = Chain([ForwardStage(driver), commit], confirm_session=driver.confirm_session)
        driver.chain = chain
        children = chain.child_specs() + [
            ChildSpec("zab", driver.run, restart=TEMPORARY, mailbox=0, shutdown=1.0, significant=True),
        ]
        try:
            await run_chain_role(ctx, chain, children, clients, on_chain, task_status, serve_now=False)
        finally:
            commit.abandon()
        return driver.ended  # why the role ended on its own (the role loop logs it)

    return ChildSpec(name, cast(Any, run_role), restart=TEMPORARY, mailbox=0, shutdown=float("inf"))
