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
from typing import Any

import trio

from actors import TEMPORARY, ChildSpec, Context

from ..core.datatree import DataTree
from ..protocol.consts import Err, KeeperError, OpCode
from ..protocol.txn import decode_txn
from ..quorum import zab_effects as fx
from ..quorum import zab_packets as zp
from ..quorum.learner import LearnerCore
from .chain import Chain
from .clientport import ClientPort
from .forward import LOCAL_OPS, encode_forwarded
from .leading import _drain, _stop_on_request
from .request import UNIMPLEMENTED, Request
from .roles import run_chain_role
from .stages import FinalStage
from .state import PeerState

__all__ = ["following_role"]

log = logging.getLogger("trio_quorum.server.following")

_SYNC = int(OpCode.sync)
_CREATE_SESSION = int(OpCode.createSession)
#: ``Request.extra`` of a request still waiting for the leader (its commit or SYNC).
_WAITING = object()


class LearnerDriver:
    """Executes a LearnerCore's effects; shared by the ``zab`` actor and the chain's stages."""

    def __init__(self, state: PeerState, clients: ClientPort, links: Any, core: LearnerCore, leader: int,
                 on_established: Callable[[int], None]) -> None:
        self.state = state
        self.clients = clients
        self.links = links
        self.core = core
        self.leader = leader
        self.on_established = on_established
        self.chain: Chain | None = None
        self.commit: CommitStage | None = None
        self.lost: str | None = None
        self._stop = trio.Event()
        self._tokens = itertools.count(1)

    def execute_now(self, effects: list[Any]) -> list[Any]:
        """Run the effects that need no await; return the rest (in order) for :meth:`execute`."""
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
                pass  # sessions are revalidated locally (every peer applies createSession)
            elif cls is fx.LeaderLost:
                self._lose(eff.reason)
            elif cls is fx.StartServing:
                assert self.chain is not None
                self.clients.attach_chain(self.chain)
                self.on_established(eff.epoch)
                log.info("%s: serving in epoch %d under leader %d",
                         "OBSERVING" if self.core.observer else "FOLLOWING", eff.epoch, self.leader)
            else:
                return effects[i:]
        return []

    async def execute(self, effects: list[Any]) -> None:
        rest = self.execute_now(effects)
        while rest:
            eff = rest[0]
            cls = eff.__class__
            storage: Any = self.state.storage
            if cls is fx.LogTxns:
                append = storage.append
                for prop in eff.proposals:
                    hdr, rec, _digest = decode_txn(prop.txn)
                    append(hdr, rec)
                await storage.sync()
                rest = self.execute_now(rest[1:]) + self.execute_now(self.core.persisted(eff.proposals[-1].zxid))
                continue
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
            rest = self.execute_now(rest[1:])

    async def _install(self, zxid: int, data: Any) -> None:
        from ..persistence.snapshot import load_snapshot_bytes

        tree = DataTree()
        sessions: dict[int, int] = {}
        last = load_snapshot_bytes(data, tree, sessions)
        log.info("SNAP: installing the leader's snapshot at 0x%x (%d znodes)", last, tree.node_count())
        self.state.replace_tree(tree, sessions)
        await self.state.storage.install_snapshot(tree, sessions, last)  # type: ignore[attr-defined]

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

    def _lose(self, reason: str) -> None:
        if self.lost is None:
            self.lost = reason
            log.warning("leader %d lost: %s", self.leader, reason)
            self._stop.set()

    def next_token(self) -> int:
        return next(self._tokens)

    async def run(self, ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *,
                  task_status: trio.TaskStatus[None]) -> None:
        from ..net import Batch, LinkDown

        core = self.core
        links = self.links
        # Whatever is buffered predates our FOLLOWERINFO: a leader sends nothing before it.
        _drain(links.inbound)
        task_status.started()
        tick = core.tick_time / 2000
        async with trio.open_nursery() as nursery:

            async def ticker() -> None:
                while True:
                    await trio.sleep(tick)
                    await self.execute(core.tick(self.state.now_ms()))

            async def stopper() -> None:
                await self._stop.wait()
                nursery.cancel_scope.cancel(reason=f"leader lost: {self.lost}")

            nursery.start_soon(stopper)
            nursery.start_soon(_stop_on_request, ctx, nursery)
            # The link to the leader may still be coming up: FOLLOWERINFO once it is.
            with trio.move_on_after(core.init_limit * core.tick_time / 1000):
                while not links.is_up(self.leader):
                    item = await links.inbound.receive()
                    if isinstance(item, Batch) and item.sid == self.leader:
                        log.debug("dropped %d stale messages of leader %d", len(item.messages), item.sid)
            if not links.is_up(self.leader):
                self._lose(f"no link to leader {self.leader} within initLimit")
                return
            await self.execute(core.start(self.state.now_ms()))
            nursery.start_soon(ticker)
            async for item in links.inbound:
                if isinstance(item, Batch):
                    if item.sid != self.leader:
                        continue  # another learner's stray packets: not ours to read
                    await self.execute(core.receive_many(item.messages, self.state.now_ms()))
                elif isinstance(item, LinkDown) and item.sid == self.leader:
                    self._lose(f"link to leader {self.leader} down: {item.reason}")


class ForwardStage:
    """Session checks for reads; writes and syncs to the leader (FollowerRequestProcessor)."""

    name = "forward"
    merge = 0
    shutdown = 5.0

    def __init__(self, driver: LearnerDriver) -> None:
        self.driver = driver

    def accepts_direct(self, batch: list[Request]) -> bool:
        return False

    async def handle(self, batch: list[Request]) -> None:
        self.handle_now(batch)

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


class CommitStage:
    """Answer requests in arrival order as their commits / syncs arrive (CommitProcessor + final)."""

    name = "commit"
    merge = 0
    shutdown = 5.0

    def __init__(self, driver: LearnerDriver, state: PeerState, clients: ClientPort) -> None:
        self.driver = driver
        self.state = state
        self.final = FinalStage(state, None, clients)
        self.pending: deque[Request] = deque()
        #: (session id, cxid) -> the local write waiting for its commit.
        self.writes: dict[tuple[int, int], Request] = {}
        #: sync token -> the local sync waiting for the leader's answer.
        self.syncs: dict[int, Request] = {}

    def accepts_direct(self, batch: list[Request]) -> bool:
        return False

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

    async def handle(self, batch: list[Request]) -> None:
        self.handle_now(batch)

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
            hdr, rec, _digest = decode_txn(prop.txn)
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
        req = self.syncs.pop(token, None)  # type: ignore[arg-type]
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
        chain = Chain([ForwardStage(driver), commit])
        driver.chain = chain
        children = chain.child_specs() + [
            ChildSpec("zab", driver.run, restart=TEMPORARY, mailbox=0, shutdown=1.0, significant=True),
        ]
        try:
            await run_chain_role(ctx, chain, children, clients, on_chain, task_status, serve_now=False)
        finally:
            commit.abandon()
        return driver.lost  # why the role ended on its own (the role loop logs it)

    return ChildSpec(name, run_role, restart=TEMPORARY, mailbox=0, shutdown=float("inf"))
