"""The supervisor block: ``open_supervisor`` and ``supervisor_spec`` (a subtree as a child).

Invariants: the block's body runs in the supervisor's nursery scope; nothing
the block started outlives it.  The body's own exception is re-raised
unwrapped; several errors become one ``SupervisorError`` with the group as
``__cause__``; a supervisor that gives up raises ``SupervisorGaveUp`` with the
last crash as ``__cause__``; a supervisor that shuts itself down because a
significant child ended exits the block *without* error (OTP's exit reason
``shutdown``), and says why in ``sup.auto_shutdown_cause``.  A root (a
supervisor named by a string) publishes its own lifecycle events; a nested
one's lifecycle is that of the actor whose body it is.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import trio

from ._context import ActorTree, ChildSpec, Context
from ._events import ActorCancelled, ActorStarted, ActorStarting, ActorStopped, ActorStopping
from ._exits import cancel_info, only_cancelled
from ._strategy import AutoShutdown, Restart, Strategy
from ._supervisor import Supervisor

__all__ = ["open_supervisor", "supervisor_spec"]


@asynccontextmanager
async def open_supervisor(
    parent: Context | str,
    *,
    strategy: Strategy = Strategy.ONE_FOR_ONE,
    children: Iterable[ChildSpec] = (),
    max_restarts: int = 3,
    max_seconds: float = 5.0,
    auto_shutdown: AutoShutdown = AutoShutdown.NEVER,
    tree: ActorTree | None = None,
) -> AsyncIterator[Supervisor]:
    """Run a supervisor for the duration of an ``async with`` block.

    Args:
      parent: the root's name (a new root, which publishes its own lifecycle
        events), or the ``ctx`` of the actor whose body this supervisor is
        (its children's paths extend ``ctx.path``).
      strategy: ``Strategy.ONE_FOR_ONE`` (default), ``ONE_FOR_ALL`` or ``REST_FOR_ONE``.
      children: static children, started in order before the body runs.
      max_restarts, max_seconds: restart intensity (OTP's MaxR within MaxT).
      auto_shutdown: ``AutoShutdown.NEVER`` (default), ``ANY_SIGNIFICANT`` or
        ``ALL_SIGNIFICANT``: shut down when significant children end on their own.
      tree: (roots only) the tree to join, e.g. one you subscribed to already.

    When the body finishes, the children are stopped gracefully in reverse
    order and the block exits.  If the body raises, or the block is cancelled,
    the children are cancelled at once.  On an auto shutdown the other
    children are stopped gracefully in reverse order, then the body is
    cancelled and the block exits normally; ``sup.auto_shutdown_cause`` says
    which child ended and how.

    Raises:
      ValueError: a static child is significant and ``auto_shutdown`` is ``NEVER``
        (raised before anything starts).
      ChildStartFailed: a static child failed to start (started ones were stopped).
      SupervisorGaveUp: the restart intensity was exceeded (``__cause__``: the crash).
      SupervisorError: several errors at once (``__cause__``: the group).
    """
    if isinstance(parent, Context):
        if tree is not None and tree is not parent.tree:
            raise ValueError("a nested supervisor belongs to its parent's tree")
        path, the_tree, is_root = parent.path, parent.tree, False
    else:
        if not parent or "/" in parent:
            raise ValueError(f"root name must be non-empty and contain no '/': {parent!r}")
        path, the_tree, is_root = parent, tree if tree is not None else ActorTree(), True
    sup = Supervisor(path, the_tree, strategy, max_restarts, max_seconds, auto_shutdown)
    specs = tuple(children)
    for spec in specs:
        sup._check_spec(spec)
    bus = the_tree.events
    if is_root and bus.active:
        bus.publish(ActorStarting(path, trio.current_time(), 0))
    error: BaseException | None = None
    stop_reason = "returned"
    try:
        async with trio.open_nursery() as nursery:
            sup._nursery = nursery
            nursery.start_soon(sup._control_loop, name=f"{path}:supervisor")
            await sup._start_static(specs)
            if is_root and bus.active:
                bus.publish(ActorStarted(path, trio.current_time()))
            yield sup
            stop_reason = "stop requested: supervisor block exited"
            if is_root and bus.active:
                bus.publish(ActorStopping(path, trio.current_time(), "block exited", math.inf))
            await sup._shutdown("supervisor block exited")  # also ends the control task
    except BaseException as exc:  # a group, or a bare exception under strict_exception_groups=False
        error = sup._present(exc) if isinstance(exc, BaseExceptionGroup) else exc
        if only_cancelled(error):
            if is_root and bus.active:
                by, why, source = cancel_info(error)
                now = trio.current_time()
                bus.publish(ActorCancelled(path, now, by, why, source))
                bus.publish(ActorStopped(path, now, f"cancelled by {by}: {why or source}"))
            raise
    if sup._gave_up is not None:
        error = sup._gave_up
    if is_root and bus.active:
        if error is None and sup._auto_done and sup._auto_reason is not None:
            stop_reason = sup._auto_reason
        elif error is None and nursery.cancel_scope.cancelled_caught and stop_reason == "returned":
            stop_reason = "cancelled: supervisor.cancel()"
        bus.publish(
            ActorStopped(
                path, trio.current_time(), stop_reason if error is None else f"failed: {error!r}"
            )
        )
    if error is not None:
        raise error


def supervisor_spec(
    id: str,
    children: Iterable[ChildSpec],
    *,
    strategy: Strategy = Strategy.ONE_FOR_ONE,
    max_restarts: int = 3,
    max_seconds: float = 5.0,
    auto_shutdown: AutoShutdown = AutoShutdown.NEVER,
    restart: Restart = Restart.PERMANENT,
    shutdown: float = math.inf,
    significant: bool = False,
) -> ChildSpec:
    """A child spec whose actor is a supervisor of ``children`` (a subtree as data).

    Its started value is the :class:`Supervisor`; asked to stop, it stops its
    children in reverse order and returns.  If it gives up, it crashes with
    ``SupervisorGaveUp`` and its own parent decides (escalation).  If it shuts
    itself down (``auto_shutdown``), it returns: a normal exit, so a transient
    subtree is not restarted, and a significant one may shut its parent down in
    turn.

    Raises:
      ValueError: a child is significant and ``auto_shutdown`` is ``NEVER``, or
        the subtree is ``significant`` and ``PERMANENT``.
    """
    specs = tuple(children)
    if auto_shutdown is AutoShutdown.NEVER:
        for spec in specs:
            if spec.significant:
                raise ValueError(
                    f"subtree {id!r}: child {spec.id!r} is significant but auto_shutdown is NEVER"
                )

    async def run_subtree(
        ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *, task_status: trio.TaskStatus[Any]
    ) -> None:
        async with open_supervisor(
            ctx,
            strategy=strategy,
            children=specs,
            max_restarts=max_restarts,
            max_seconds=max_seconds,
            auto_shutdown=auto_shutdown,
        ) as sup:
            task_status.started(sup)
            async for _ in inbox:  # ends when the stop request closes the inbox
                pass

    return ChildSpec(id, run_subtree, restart, shutdown, mailbox=0, significant=significant)
