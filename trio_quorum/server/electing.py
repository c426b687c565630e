"""The election listener: peer links on the election port + the FLE core (``QuorumCnxManager`` + FLE driver).

``peer-N/election`` lives as long as the peer.  It owns the election links
(``listener``, ``sender-<sid>``: net/links.py) and the sans-IO
:class:`~trio_quorum.quorum.election.Election` core, and keeps answering
LOOKING peers in every role (ZooKeeper's ``WorkerReceiver``).  The role loop
calls :meth:`ElectionService.look` when the peer goes LOOKING and gets the
decision back.

Driver contract (docs/election.md): effects run in list order; every
notification is the current vote, so the per-peer outbox is latest-value (the
links resend it when a link comes up); a notification whose ``sid`` is not the
peer of its link is dropped; ``tick`` runs when ``next_deadline`` passes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import trio

from actors import Context

from ..net import Batch, LinkDown, LinksConfig, LinkUp, Network, open_peer_links
from ..quorum.election import Broadcast, Elected, Election, Notification, SendTo
from ..quorum.messages import ELECTION, ELECTION_LIMITS
from ..quorum.verifier import QuorumVerifier
from ..quorum.wire import Channel

__all__ = ["ElectionService"]

log = logging.getLogger("trio_quorum.server.election")


class ElectionService:
    """The ``election`` actor and the role loop's way into it."""

    def __init__(self, network: Network, my_sid: int, addresses: Mapping[int, str],
                 verifier: QuorumVerifier, *, links_config: LinksConfig | None = None,
                 finalize_wait: float = 0.05) -> None:
        self.network = network
        self.my_sid = my_sid
        self.addresses = dict(addresses)
        self.verifier = verifier
        self.links_config = links_config or LinksConfig(limits=ELECTION_LIMITS)
        self.core = Election(my_sid, verifier, 0, 0, finalize_wait=finalize_wait)
        self._links: Any = None
        self._decided: Elected | None = None
        self._started = False
        #: Set when a decision arrives (``look`` waits on it).
        self._decision = trio.Event()
        #: Set when the core's next deadline may have moved (the ticker waits on it).
        self._changed = trio.Event()
        #: The round's first start and decision times (for the role-change log line).
        self.started_at: float | None = None
        self.decided_at: float | None = None

    async def look(self, last_zxid: int, current_epoch: int) -> Elected:
        """Go LOOKING with this peer's last zxid and epoch; return the decision."""
        self._decided = None
        self._decision = trio.Event()
        self.started_at = trio.current_time()
        self._started = True
        self._execute(self.core.start(trio.current_time(), last_zxid=last_zxid, current_epoch=current_epoch))
        self._changed.set()
        while self._decided is None:
            await self._decision.wait()
        self.decided_at = trio.current_time()
        return self._decided

    def established(self, epoch: int) -> None:
        """The role established ``epoch``: answers carry it from now on."""
        self.core.update_election_vote(epoch)

    def _execute(self, effects: list[Any]) -> None:
        links = self._links
        for eff in effects:
            if isinstance(eff, Broadcast):
                if links is not None:
                    for sid in eff.to:
                        links.send(sid, (eff.notification,))
            elif isinstance(eff, SendTo):
                if links is not None:
                    links.send(eff.sid, (eff.notification,))
            elif isinstance(eff, Elected):
                log.info("elected: leader %d (%s), epoch %d, zxid 0x%x", eff.leader, eff.state.name,
                         eff.peer_epoch, eff.zxid)
                self._decided = eff
                self._decision.set()

    async def run(self, ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *,
                  task_status: trio.TaskStatus[None]) -> None:
        addresses: dict[int, str | None] = dict(self.addresses)
        async with open_peer_links(self.network, self.my_sid, addresses, Channel.ELECTION, ELECTION,
                                   config=self.links_config, parent=ctx) as links:
            self._links = links
            task_status.started()
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._ticker)
                    nursery.start_soon(_stop_when_asked, ctx, nursery.cancel_scope)
                    async for item in links.inbound:
                        if isinstance(item, Batch):
                            now = trio.current_time()
                            for n in item.messages:
                                if not isinstance(n, Notification) or n.sid != item.sid:
                                    log.warning("election: dropped a message from %d claiming sid %s",
                                                item.sid, getattr(n, "sid", "?"))
                                    continue
                                if not self._started:  # never LOOKING yet: no vote to answer with
                                    continue
                                self._execute(self.core.receive(n, now))
                            self._changed.set()
                        elif isinstance(item, (LinkUp, LinkDown)):
                            log.debug("election link %s", item)
                    nursery.cancel_scope.cancel()
            finally:
                self._links = None

    async def _ticker(self) -> None:
        """Run ``tick`` at the core's deadlines (re-sends, the finalize window)."""
        while True:
            deadline = self.core.next_deadline()
            changed = self._changed = trio.Event()
            if deadline is None:
                await changed.wait()
                continue
            with trio.move_on_at(deadline):
                await changed.wait()
            if trio.current_time() >= deadline:
                self._execute(self.core.tick(trio.current_time()))


async def _stop_when_asked(ctx: Context, scope: trio.CancelScope) -> None:
    """A stop request ends the actor at once (its links close with it), not after its grace."""
    await ctx.wait_stop_requested()
    scope.cancel(reason=f"{ctx.path} asked to stop")
