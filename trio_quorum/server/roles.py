"""Roles: the replaceable subtrees a peer runs in front of its state.

A role is a supervised subtree (``peer-N/<role>``) holding the request chain
for that role plus the role's own timers and links.  The peer starts one role
at a time; leaving a role stops its whole subtree with a reason, drains the
chain, and closes every client connection (they reconnect, as with
ZooKeeper).  The tree, sessions and storage stay with the peer.

``standalone`` (the only role so far)::

    peer-N/standalone        one_for_one, auto_shutdown: any significant child
      final, sync, prep      the chain (chain.py, stages.py); temporary, significant
      session-expirer        permanent: sleeps until the next expiry bucket, submits closeSession
      container-checker      permanent: deleteContainer / TTL deletes every checkIntervalMs

Invariants: a role's chain is built fresh (a new ``Prep`` core reset to the
tree's last zxid: outstanding changes never cross a role change); a stage's
exit ends the role (significant), which the peer treats as fatal; the
timers are stateless and restarted within the role's intensity.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import trio

from actors import ONE_FOR_ONE, TEMPORARY, AutoShutdown, ChildSpec, Context, open_supervisor

from ..core.prep import Prep
from ..protocol.consts import KeeperError, OpCode
from .chain import Chain
from .clientport import ClientPort
from .request import Request
from .stages import FinalStage, PrepStage, SyncStage
from .state import PeerState

__all__ = ["RoleFailed", "run_chain_role", "standalone_chain", "standalone_role"]

log = logging.getLogger("trio_quorum.server.roles")

_CLOSE_SESSION = int(OpCode.closeSession)


class RoleFailed(Exception):
    """A role ended on its own: one of its significant actors (a chain stage) exited.

    The message names that actor and how it ended; ``__cause__`` is its crash, if any.
    """


def standalone_chain(state: PeerState, clients: ClientPort) -> Chain:
    """prep -> sync -> final over the peer's state, with a fresh Prep core."""
    prep = Prep(state.tree, state.auth, state.tracker, extended_types=state.config.extended_types_enabled)
    prep.reset(state.last_zxid)

    def read_check(req: Request) -> None:
        try:
            prep.prepare(req.session_id, req.xid, req.type, req.record, req.auth_ids, 0, owner=req.conn)
        except KeeperError as exc:
            req.err = exc.code

    return Chain([PrepStage(prep), SyncStage(state.storage, state.stats), FinalStage(state, prep, clients)],
                 read_check=read_check)


def standalone_role(state: PeerState, clients: ClientPort,
                    on_chain: Callable[[Chain | None], None] | None = None) -> ChildSpec:
    """The ``standalone`` role's subtree as a child spec of the peer (temporary, significant)."""

    async def run_role(ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *,
                       task_status: trio.TaskStatus[Chain]) -> None:
        chain = standalone_chain(state, clients)
        children = chain.child_specs() + [
            ChildSpec("session-expirer", _session_expirer(state, clients), mailbox=0, shutdown=1.0),
            ChildSpec("container-checker", _container_checker(state, clients), mailbox=0, shutdown=1.0),
        ]
        await run_chain_role(ctx, chain, children, clients, on_chain, task_status)

    return ChildSpec("standalone", run_role, restart=TEMPORARY, mailbox=0, shutdown=float("inf"),
                     significant=True)


async def run_chain_role(ctx: Context, chain: Chain, children: list[ChildSpec], clients: ClientPort,
                         on_chain: Callable[[Chain | None], None] | None,
                         task_status: trio.TaskStatus[Chain], *, serve_now: bool = True) -> None:
    """Run a role's subtree around ``chain``; on leaving: drain the chain, close the clients.

    With ``serve_now`` False the chain runs but clients are routed to it only
    when the role calls ``clients.attach_chain(chain)`` (a replicated role
    serves once synced with its leader).

    Raises:
      RoleFailed: a significant actor of the role (a stage, the ZAB driver)
        crashed; a clean exit of one (leader lost) is a normal return.
    """
    reason = "role ended"
    try:
        async with open_supervisor(ctx, strategy=ONE_FOR_ONE, children=children, max_restarts=3,
                                   max_seconds=5.0, auto_shutdown=AutoShutdown.ANY_SIGNIFICANT) as sup:
            chain.attach(sup)
            if serve_now:
                clients.attach_chain(chain)
            if on_chain is not None:
                on_chain(chain)
            task_status.started(chain)
            await ctx.wait_stop_requested()
            reason = ctx.stop_reason or reason
            # Graceful, in reverse start order (timers, then prep, sync, final:
            # each stage drains into the next), each child told why.
            chain.detach()
            for cid in reversed(sup.child_ids()):
                try:
                    await sup.stop_child(cid, reason=reason)
                except KeyError:
                    pass  # a temporary child already gone
        cause = sup.auto_shutdown_cause
        if cause is not None:
            reason = f"{cause.path} {cause.reason}"
            if cause.crashed:
                raise RoleFailed(reason) from cause.exc
    finally:
        chain.detach()
        if chain.in_flight:
            # Requests the stages never got through (cancelled with the role):
            # never answered, so released here or stats.outstanding leaks.
            clients.stats.outstanding -= chain.in_flight
            chain.in_flight = 0
        clients.detach_chain(chain)
        if on_chain is not None:
            on_chain(None)
        clients.close_all(f"{ctx.path} stopped: {reason}")


def _session_expirer(state: PeerState, clients: ClientPort) -> Any:
    async def session_expirer(ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *,
                              task_status: trio.TaskStatus[None]) -> None:
        """``SessionTrackerImpl.run``: sleep until the next bucket, expire it, submit closeSession."""
        tracker = state.tracker
        task_status.started()
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_on_stop, ctx, scope)
                while True:
                    nxt = tracker.next_expiration_time()
                    state.expirer_wakeup = trio.Event()
                    if nxt is None:
                        await state.expirer_wakeup.wait()
                        continue
                    with trio.move_on_at(nxt / 1000):
                        await state.expirer_wakeup.wait()
                    now = state.now_ms()
                    expired = tracker.expire(now)
                    if expired:
                        batch = []
                        for sid in expired:
                            log.info("Expiring session 0x%x, timeout of %sms exceeded",
                                     sid & 0xFFFFFFFFFFFFFFFF, tracker.timeout_of(sid))
                            batch.append(Request(None, sid, 0, _CLOSE_SESSION, None, now))
                        clients.submit(batch)

    return session_expirer


def _container_checker(state: PeerState, clients: ClientPort) -> Any:
    async def container_checker(ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *,
                                task_status: trio.TaskStatus[None]) -> None:
        """``ContainerManager``: periodically delete empty containers and expired TTL nodes."""
        interval = state.config.container_check_interval_ms / 1000
        task_status.started()
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_on_stop, ctx, scope)
                while True:
                    await trio.sleep(interval)
                    batch = state.container_cleanup_requests()
                    if batch:
                        clients.submit(batch)

    return container_checker


async def _cancel_on_stop(ctx: Context, scope: trio.CancelScope) -> None:
    """End ``scope`` (a clean return of the actor) when the supervisor asks ``ctx`` to stop."""
    await ctx.wait_stop_requested()
    scope.cancel(reason=f"{ctx.path} asked to stop")
