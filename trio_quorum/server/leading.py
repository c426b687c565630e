"""The LEADING role: ZAB's leader as a supervised subtree (``Leader.lead`` + ``LearnerHandler``).

::

    peer-N/leading            one_for_one, auto_shutdown: any significant child
      final, commit, sync,    the chain (significant): prep -> propose -> sync -> commit -> final
        propose, prep
      zab                     significant: the LeaderCore's driver (learners' packets, ticks, effects)
      session-expirer         permanent (the leader owns expiry)
      container-checker       permanent

The chain composes the standalone stages with two of its own:

* ``propose`` hands the batch's txns to the core (``propose_many``: zxids,
  PROPOSALs to the synced learners, one frame per learner per batch);
* ``sync`` is the standalone group commit, then tells the core its own log
  is durable (the leader's own ACK, never before the fsync);
* ``commit`` holds each batch until the core committed its last zxid (a
  quorum of ACKs), then final applies and answers as standalone does.

Learners' writes arrive as REQUEST packets and enter the same chain (the
leader's prep sees every write of the ensemble, in one order).  Clients are
served once the core is ``Established`` (a quorum acked NEWLEADER); a
``StepDown`` (lost quorum, timeouts, zxid rollover) ends the role cleanly:
the peer goes LOOKING.

Invariants: zxids the core assigns are prep's (checked, a mismatch crashes
the role: fatal); nothing is answered before a quorum logged it; epochs are
durable before LEADERINFO/NEWLEADER leave (the core orders the effects, this
driver executes them in order, awaiting the synchronous ones).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast

import trio

from actors import TEMPORARY, ChildSpec, Context

from ..core.prep import Prep
from ..net import Batch, LinkDown
from ..protocol.consts import OpCode
from ..protocol.txn import encode_txn
from ..quorum import zab_effects as fx
from ..quorum import zab_packets as zp
from ..quorum.leader import LeaderCore
from ..quorum.zab_zxid import make_zxid
from .chain import Chain
from .clientport import ClientPort
from .forward import ForwardError, decode_forwarded
from .request import Request
from .roles import _container_checker, _session_expirer, run_chain_role
from .stages import FinalStage, PrepStage, SyncStage
from .state import PeerState
from .zabdriver import NoDirectStage, ZabDriver

__all__ = ["leading_role"]

log = logging.getLogger("trio_quorum.server.leading")

_CREATE_SESSION = int(OpCode.createSession)


class LeaderDriver(ZabDriver):
    """Executes a LeaderCore's effects; shared by the ``zab`` actor and the chain's stages."""

    kind = "leader"

    def __init__(self, state: PeerState, clients: ClientPort, links: Any, core: LeaderCore,
                 on_established: Callable[[int], None]) -> None:
        super().__init__(links, core, core.tick_time / 2000)
        self.core: LeaderCore = core
        self.state = state
        self.clients = clients
        self.on_established = on_established
        self.chain: Chain | None = None
        self.prep: Prep | None = None
        #: Highest zxid the core committed (a quorum logged it).
        self.committed = core.last_committed
        self.commit_wait = trio.lowlevel.ParkingLot()
        #: The zab actor ended: nothing will commit any more.
        self.finished = False
        self.established = False

    def now(self) -> int:
        return self.state.now_ms()

    # ------------------------------------------------------------ effects
    def execute_now(self, effects: list[Any]) -> list[Any]:
        for i, eff in enumerate(effects):
            cls = eff.__class__
            if cls is fx.Send:
                self.links.send(eff.sid, eff.packets)
            elif cls is fx.LogTxns:
                pass  # the chain's sync stage logs these very txns (they came from it)
            elif cls is fx.Commit:
                if eff.zxid > self.committed:
                    self.committed = eff.zxid
                    self.commit_wait.unpark_all()
            elif cls is fx.TouchSessions:
                now = self.state.now_ms()
                touch = self.state.tracker.touch
                for session_id, timeout in eff.touches.items():
                    touch(session_id, now, timeout)
            elif cls is fx.RevalidateSession:
                # The session moved to learner ``sid``: from now on a request the
                # old server forwards gets SESSIONMOVED (prep's owner check).
                t = self.state.tracker
                valid = eff.session_id in t and not t.is_closing(eff.session_id)
                if valid:
                    t.touch(eff.session_id, self.state.now_ms())
                    t.set_owner(eff.session_id, learner_owner(eff.sid))
                tail = self.execute_now(self.core.revalidated(eff.sid, eff.session_id, valid))
                if tail:
                    return tail + list(effects[i + 1:])
            elif cls is fx.SubmitRequest:
                self._submit_forwarded(eff.sid, eff.payload)
            elif cls is fx.DropLearner:
                log.warning("dropping learner %d: %s", eff.sid, eff.reason)
            elif cls is fx.StepDown:
                self.end(f"stepped down: {eff.reason}")
            elif cls is fx.SyncDone:
                pass  # the leader's own clients' syncs are ordered by the chain itself
            else:
                return list(effects[i:])
        return []

    async def execute_one(self, eff: Any) -> None:
        cls = eff.__class__
        storage: Any = self.state.storage
        if cls is fx.PersistAcceptedEpoch:
            await storage.set_accepted_epoch(eff.epoch)
        elif cls is fx.PersistCurrentEpoch:
            await storage.set_current_epoch(eff.epoch)
        elif cls is fx.SendSnapshot:
            await self._send_snapshot(eff.sid, eff.zxid)
        elif cls is fx.Established:
            self._establish(eff.epoch)
        else:
            raise RuntimeError(f"leader: no driver for effect {eff!r}")

    def _establish(self, epoch: int) -> None:
        assert self.prep is not None and self.chain is not None
        # The new epoch's zxids start at epoch << 32: prep and the core agree,
        # and the tree says so (``srvr``'s Zxid, reply headers), as ZooKeeper.
        start = make_zxid(epoch, 0)
        self.prep.reset(start)
        self.state.enter_epoch(start)
        self.established = True
        self.clients.attach_chain(self.chain)
        self.on_established(epoch)
        log.info("LEADING: established epoch %d with %s", epoch, self.core.synced_learners())

    async def _send_snapshot(self, sid: int, zxid: int) -> None:
        from ..persistence.snapshot import encode_snapshot_bytes

        # The core committed everything up to ``zxid`` before asking; the tree
        # may still be applying it (the chain's final stage).  A fuzzy snapshot
        # taken at or after zxid is sound: the learner replays what follows.
        while self.state.tree.last_processed_zxid < zxid:
            await self.commit_wait.park()
        tree = self.state.tree
        data = encode_snapshot_bytes(tree, self.state.tracker.session_timeouts())
        self.links.send(sid, (zp.Snap(tree.last_processed_zxid, data),))

    def _submit_forwarded(self, sid: int, payload: Any) -> None:
        state = self.state
        try:
            req = decode_forwarded(payload, state.now_ms(), state.config.jute_max_buffer)
        except ForwardError as exc:
            log.warning("learner %d forwarded garbage: %s", sid, exc)
            return
        if req.type == _CREATE_SESSION:
            state.tracker.track_session(req.session_id, req.record, state.now_ms())  # type: ignore[arg-type]
        req.owner = learner_owner(sid)
        self.clients.submit([req])

    def end(self, reason: str) -> None:
        super().end(reason)
        self.commit_wait.unpark_all()  # the commit stage stops waiting (CommitStage.handle)

    # ------------------------------------------------------------ the zab actor
    async def run(self, ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *,
                  task_status: trio.TaskStatus[None]) -> None:
        try:
            await super().run(ctx, inbox, task_status=task_status)
        finally:
            self.finished = True
            self.commit_wait.unpark_all()

    async def begin(self) -> bool:
        # No drain here: learners may have sent FOLLOWERINFO before this role
        # started.  A stale packet of an older epoch is out of place for the
        # core, which drops that learner (it re-registers).
        await self.execute(self.core.start(self.now()))
        return True

    async def on_inbound(self, item: Any) -> None:
        if isinstance(item, Batch):
            now = self.now()
            for packet in item.messages:
                await self.execute(self.core.receive(item.sid, cast(zp.Packet, packet), now))
        elif isinstance(item, LinkDown):
            await self.execute(self.core.learner_lost(item.sid))


def learner_owner(sid: int) -> tuple[str, int]:
    """The session owner a leader records for sessions served by learner ``sid``."""
    return ("learner", sid)


def _last_zxid(batch: list[Request]) -> int | None:
    return max((req.hdr.zxid for req in batch if req.hdr is not None), default=None)  # type: ignore[attr-defined]


class ProposeStage(NoDirectStage):
    """Propose the batch's txns (zxids from prep, PROPOSALs to the learners)."""

    name = "propose"

    def __init__(self, driver: LeaderDriver) -> None:
        self.driver = driver

    def handle_now(self, batch: list[Request]) -> None:
        hdrs = [req for req in batch if req.hdr is not None]
        if not hdrs:
            return
        txns = [encode_txn(req.hdr, req.txn) for req in hdrs]  # type: ignore[arg-type,unused-ignore]
        zxids, effects = self.driver.core.propose_many(txns)
        expected = [req.hdr.zxid for req in hdrs]  # type: ignore[attr-defined]
        if zxids != expected[: len(zxids)]:
            raise RuntimeError(f"leader: prep zxids {expected[:3]}... != ZAB zxids {zxids[:3]}...")
        rest = self.driver.execute_now(effects)
        if rest:
            raise RuntimeError(f"leader: unexpected effects from propose: {rest!r}")


class LeaderSyncStage(SyncStage):
    """Group commit of the leader's own log, then its own ACK to the core."""

    def __init__(self, driver: LeaderDriver) -> None:
        super().__init__(driver.state.storage, driver.state.stats)
        self.driver = driver

    def accepts_direct(self, batch: list[Request]) -> bool:
        return False

    async def handle(self, batch: list[Request]) -> None:
        await super().handle(batch)
        last = _last_zxid(batch)
        if last is not None:
            await self.driver.execute(self.driver.core.persisted(last))


class CommitStage(NoDirectStage):
    """Hold each batch until the core committed its last txn (a quorum has it)."""

    name = "commit"

    def __init__(self, driver: LeaderDriver) -> None:
        self.driver = driver

    def handle_now(self, batch: list[Request]) -> None:
        raise RuntimeError("the leader's commit stage has no direct path")

    async def handle(self, batch: list[Request]) -> None:
        last = _last_zxid(batch)
        driver = self.driver
        while last is not None and driver.committed < last:
            if driver.ended is not None or driver.finished:
                self._abandon(batch)
                return
            await driver.commit_wait.park()

    def _abandon(self, batch: list[Request]) -> None:
        """The leader stopped: pass on the committed prefix, drop the rest unanswered.

        Nothing after the first uncommitted txn may be applied or answered; its
        clients are closed when the role ends (they see a connection loss, as
        with ZooKeeper).  Without this the stage waited out its stop grace for
        commits that could never come, holding the peer out of the election.
        """
        committed = self.driver.committed
        k = next((i for i, req in enumerate(batch)
                  if req.hdr is not None and req.hdr.zxid > committed), len(batch))  # type: ignore[attr-defined]
        dropped = batch[k:]
        del batch[k:]
        self.driver.state.stats.outstanding -= len(dropped)
        for req in dropped:
            if req.conn is not None:
                req.conn.outstanding -= 1
        if self.driver.chain is not None:
            self.driver.chain.in_flight -= len(dropped)
        log.info("leader stopped: %d requests of a batch dropped uncommitted", len(dropped))


def leading_role(state: PeerState, clients: ClientPort, links: Any, *, my_sid: int, voters: set[int],
                 on_chain: Callable[[Chain | None], None], on_established: Callable[[int], None],
                 history: list[zp.Proposal], history_base: int | None) -> ChildSpec:
    """The ``leading`` role's subtree (temporary; its clean end means: go LOOKING)."""
    cfg = state.config
    quorum = cfg.quorum
    assert quorum is not None

    async def run_role(ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *,
                       task_status: trio.TaskStatus[Chain]) -> str | None:
        storage: Any = state.storage
        core = LeaderCore(
            my_sid, voters, accepted_epoch=storage.accepted_epoch, current_epoch=storage.current_epoch,
            last_zxid=state.last_zxid, history=history, history_base=history_base,
            tick_time=cfg.tick_time, init_limit=quorum.init_limit, sync_limit=quorum.sync_limit,
        )
        # Every session gets a full timeout from now, as ZooKeeper's new leader
        # builds its session tracker: the touches of clients on other servers
        # went to the old leader, so the buckets this peer has are stale.
        state.tracker.restore(state.tracker.session_timeouts(), state.now_ms())
        driver = LeaderDriver(state, clients, links, core, on_established)
        prep = Prep(state.tree, state.auth, state.tracker, extended_types=cfg.extended_types_enabled)
        prep.reset(state.last_zxid)
        driver.prep = prep
        chain = Chain([PrepStage(prep), ProposeStage(driver), LeaderSyncStage(driver), CommitStage(driver),
                       FinalStage(state, prep, clients)], read_check=_read_check(prep))
        driver.chain = chain
        children = chain.child_specs() + [
            ChildSpec("zab", driver.run, restart=TEMPORARY, mailbox=0, shutdown=1.0, significant=True),
            ChildSpec("session-expirer", _session_expirer(state, clients), mailbox=0, shutdown=1.0),
            ChildSpec("container-checker", _container_checker(state, clients), mailbox=0, shutdown=1.0),
        ]
        await run_chain_role(ctx, chain, children, clients, on_chain, task_status, serve_now=False)
        return driver.ended  # why the role ended on its own (the role loop logs it)

    return ChildSpec("leading", cast(Any, run_role), restart=TEMPORARY, mailbox=0, shutdown=float("inf"))


def _read_check(prep: Prep) -> Callable[[Request], None]:
    from ..protocol.consts import KeeperError

    def check(req: Request) -> None:
        try:
            prep.prepare(req.session_id, req.xid, req.type, req.record, req.auth_ids, 0, owner=req.conn)
        except KeeperError as exc:
            req.err = exc.code

    return check

