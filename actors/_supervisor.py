"""Supervisors: nurseries that start, watch, restart and stop actors.

Shape
-----
A ``Supervisor`` runs inside the nursery of an ``open_supervisor`` block
(``_open.py``): one task per child incarnation (named by the child's path)
plus one control task.  The block's body runs in the nursery's scope, so the
body can start and stop dynamic children and is cancelled if the supervisor
gives up or shuts itself down.

Invariants
----------
* A child's exception never reaches the nursery: the child's wrapper task
  (``_run_child``) catches it, publishes the events, and reports the exit to the
  control task through an unbounded channel (``send_nowait``: a dying child
  never waits).  Only ``Cancelled`` coming from *outside* the child's own
  scope propagates, because then the whole subtree is being cancelled.
* Every change to the set of running children (start, stop, restart, give up,
  shutdown, auto shutdown) happens under ``_lock``, one at a time, so a restart
  decision is taken and executed against a stable child list.  Exits that need
  no restart (temporary children, transient ones exiting normally) take a
  lock-free fast path so thousands of short-lived children cost one dict
  insert and one pop.
* The restart decision itself is ``_strategy.RestartPlanner``: pure, no trio.
* Children start in order, each awaited until it calls
  ``task_status.started()``; they stop in reverse order.  Stopping = ask (close
  the inbox, set ``ctx.stop_requested``), wait the child's grace, then cancel its
  scope with a reason.  Dynamic children are asked together and waited for
  against one shared deadline, so a thousand connections stop in one grace
  period, not a thousand.
* An exit is *requested* when the supervisor asked the child to stop before it
  ended (``ctx._stop_reason`` is set first, always under the lock or on the
  way to shutdown).  Only an exit that is not requested, not restarted and not
  during the supervisor's own shutdown can trigger auto_shutdown; the decision
  (and ``auto_shutdown_cause``) is taken synchronously when the child ends, the
  stopping is done by the control task under the lock.
* A hard cancel from outside (the enclosing scope is cancelled) is not graceful:
  every actor in the subtree sees ``Cancelled`` at once, records who cancelled
  and why, and stops; children still finish before their parents.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import trio

from ._context import ActorTree, ChildSpec, Context, SupervisorStatistics
from ._errors import (
    ActorError,
    ActorNotRunning,
    ChildStartFailed,
    SupervisorError,
    SupervisorGaveUp,
)
from ._events import (
    ActorCancelled,
    ActorCrashed,
    ActorGaveUp,
    ActorRestarted,
    ActorStarted,
    ActorStarting,
    ActorStopped,
    ActorStopping,
    SupervisorAutoShutdown,
)
from ._exits import ChildExit, cancel_info, leaves, only_cancelled
from ._mailbox import _DEAD, ActorRef, fail_pending, open_mailbox
from ._strategy import AutoShutdown, RestartPlanner, Strategy, auto_shutdown_due, needs_restart

__all__ = ["Supervisor"]


class _Child:
    """A supervisor's record of one child across its incarnations."""

    __slots__ = ("spec", "path", "ref", "ctx", "restarts", "dynamic")

    def __init__(self, spec: ChildSpec, path: str, dynamic: bool) -> None:
        self.spec = spec
        self.path = path
        self.ref: ActorRef[Any] = ActorRef(path)
        self.ctx: Context | None = None  # the running incarnation
        self.restarts = 0
        self.dynamic = dynamic


#: What a child's wrapper tells the control task: (child, incarnation, crash or
#: None for a normal exit), or None when an auto shutdown is due.
_Exit = tuple[_Child, Context, BaseException | None] | None


class _Status(trio.TaskStatus[Any]):
    """Wraps trio's task status to publish ``ActorStarted``."""

    __slots__ = ("_ctx", "_inner")

    def __init__(self, ctx: Context, inner: trio.TaskStatus[Any]) -> None:
        self._ctx = ctx
        self._inner = inner

    def started(self, value: Any = None) -> None:
        ctx = self._ctx
        if ctx._started:
            raise RuntimeError(f"{ctx.path}: task_status.started() called twice")
        ctx._started = True
        ctx.value = value
        bus = ctx.tree.events
        if bus.active:
            bus.publish(ActorStarted(ctx.path, trio.current_time()))
        self._inner.started(value)


class Supervisor:
    """A running supervisor; obtain one from :func:`open_supervisor`.

    Attributes:
      path: its path (the root's name, or the path of the actor that opened it).
      tree: the tree it belongs to.
      strategy: its restart strategy.
      auto_shutdown: when significant children's exits shut it down.
    """

    def __init__(
        self,
        path: str,
        tree: ActorTree,
        strategy: Strategy,
        max_restarts: int,
        max_seconds: float,
        auto_shutdown: AutoShutdown = AutoShutdown.NEVER,
    ) -> None:
        self.path = path
        self.tree = tree
        self.strategy = strategy
        self.auto_shutdown = auto_shutdown
        self._planner = RestartPlanner(strategy, max_restarts, max_seconds)
        self._children: dict[str, _Child] = {}
        self._lock = trio.Lock()
        self._exits_send, self._exits_recv = trio.open_memory_channel[_Exit](math.inf)
        self._nursery: trio.Nursery | None = None
        self._closing = False
        self._gave_up: SupervisorGaveUp | None = None
        self._auto_cause: ChildExit | None = None
        self._auto_reason: str | None = None
        self._auto_done = False  # the auto shutdown (not the block's end) stopped the children

    @property
    def auto_shutdown_cause(self) -> ChildExit | None:
        """The significant child's exit that made this supervisor shut itself down, if one did.

        Set as soon as the exit is seen, before the other children are stopped
        (from then on no dynamic child can be started and no restart is
        done); then the children are stopped in reverse start order, the body
        is cancelled and the ``open_supervisor`` block ends without error.
        Never set by a requested stop, nor once the supervisor is already
        shutting down or giving up.  (If the body happens to end first, the
        block's own shutdown stops the children, but the cause stays recorded.)
        """
        return self._auto_cause

    @property
    def auto_shutdown_reason(self) -> str | None:
        """The reason the other children were stopped with, if an auto shutdown happened."""
        return self._auto_reason

    # -- public API ---------------------------------------------------------

    async def start_child(self, spec: ChildSpec) -> ActorRef[Any]:
        """Start a dynamic child and wait until it is ready.

        Returns:
          a reference to it (valid across its restarts).

        Raises:
          ValueError: a child with this id exists, or it is significant and
            this supervisor's ``auto_shutdown`` is ``NEVER``.
          ChildStartFailed: it crashed before calling ``task_status.started()``.
          SupervisorError: the supervisor is shutting down.
        """
        self._refuse_if_closing(dynamic=True)  # fail fast, not after the shutdown's graces
        async with self._lock:
            child = self._add(spec, dynamic=True)
            try:
                await self._start_incarnation(child, restarted=False)
            except Exception as exc:
                self._forget(child)
                raise ChildStartFailed(child.path, exc) from exc
            return child.ref

    async def stop_child(self, child_id: str, reason: str = "stopped by request") -> None:
        """Stop a child gracefully (ask, grace, cancel) and forget it.

        Raises:
          KeyError: no such child.
        """
        async with self._lock:
            child = self._children[child_id]
            await self._stop(child, reason)
            self._forget(child)

    def ref(self, child_id: str) -> ActorRef[Any]:
        """A reference to the child ``child_id`` (raises ``KeyError`` if unknown)."""
        return self._children[child_id].ref

    def started_value(self, child_id: str) -> Any:
        """The value the child's current incarnation passed to ``task_status.started()``."""
        ctx = self._children[child_id].ctx
        if ctx is None:
            raise ActorNotRunning(self._children[child_id].path)
        return ctx.value

    def child_ids(self) -> list[str]:
        """Ids of the children, in start order."""
        return list(self._children)

    def cancel(self, reason: str) -> None:
        """Cancel the supervisor's whole block (body and children) at once, with ``reason``."""
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel(reason=reason)

    def statistics(self) -> SupervisorStatistics:
        """Counts of children and recent restarts."""
        return SupervisorStatistics(
            self.path,
            len(self._children),
            sum(1 for c in self._children.values() if c.ctx is not None),
            self._planner.restarts_in_window(trio.current_time()),
            tuple(self._children),
        )

    # -- starting -----------------------------------------------------------

    def _refuse_if_closing(self, dynamic: bool) -> None:
        # Static children still start while an auto shutdown is pending (as
        # OTP's init finishes before the exit is handled); dynamic ones do not.
        if self._closing or (dynamic and self._auto_cause is not None):
            raise SupervisorError(f"supervisor {self.path!r} is shutting down")

    def _add(self, spec: ChildSpec, dynamic: bool) -> _Child:
        self._refuse_if_closing(dynamic)
        if spec.id in self._children:
            raise ValueError(f"supervisor {self.path!r} already has a child {spec.id!r}")
        self._check_spec(spec)
        child = _Child(spec, f"{self.path}/{spec.id}", dynamic)
        self._children[spec.id] = child
        return child

    def _check_spec(self, spec: ChildSpec) -> None:
        """Raise ``ValueError`` if ``spec`` cannot be a child here (significant under ``NEVER``)."""
        if spec.significant and self.auto_shutdown is AutoShutdown.NEVER:
            raise ValueError(
                f"child {spec.id!r} is significant but supervisor {self.path!r} has"
                " auto_shutdown=NEVER (as in OTP, the combination is rejected)"
            )

    def _forget(self, child: _Child) -> None:
        if self._children.get(child.spec.id) is child:
            del self._children[child.spec.id]

    async def _start_incarnation(self, child: _Child, restarted: bool) -> None:
        assert self._nursery is not None
        send, recv = open_mailbox(child.path, child.spec.mailbox)
        incarnation = child.restarts
        ctx = Context(child.spec.id, child.path, child.ref, self, send, recv, incarnation)
        child.ctx = ctx
        child.ref._send = send
        self.tree._actors[child.path] = ctx
        bus = self.tree.events
        if bus.active:
            bus.publish(ActorStarting(child.path, trio.current_time(), incarnation))
        try:
            await self._nursery.start(self._run_child, child, ctx, name=child.path)
        except BaseException:
            if child.ctx is ctx:
                child.ctx = None
            if not ctx._finished:  # never ran: undo the registration
                if self.tree._actors.get(ctx.path) is ctx:
                    del self.tree._actors[ctx.path]
                child.ref._send = _DEAD
            raise
        if restarted and bus.active:
            bus.publish(ActorRestarted(child.path, trio.current_time(), child.restarts))

    async def _start_static(self, specs: Iterable[ChildSpec]) -> None:
        async with self._lock:
            for spec in specs:
                child = self._add(spec, dynamic=False)
                try:
                    await self._start_incarnation(child, restarted=False)
                except Exception as exc:
                    self._forget(child)
                    await self._stop_all(f"sibling {child.path!r} failed to start")
                    raise ChildStartFailed(child.path, exc) from exc

    # -- the child task -----------------------------------------------------

    async def _run_child(
        self, child: _Child, ctx: Context, *, task_status: trio.TaskStatus[Any]
    ) -> None:
        crash: BaseException | None = None
        cancel: BaseException | None = None
        try:
            with ctx._scope:
                try:
                    await child.spec.start(ctx, ctx._recv, task_status=_Status(ctx, task_status))
                except BaseException as exc:
                    if only_cancelled(exc):
                        cancel = exc
                    raise
        except BaseException as exc:
            if only_cancelled(exc) or not isinstance(exc, Exception):
                # Cancelled from outside our scope (the subtree is being torn
                # down), or KeyboardInterrupt & co: record, then let it propagate.
                self._finish(child, ctx, None if only_cancelled(exc) else exc, cancel or exc)
                raise
            crash = exc
        if crash is None and ctx._injected is not None:
            crash = ctx._injected
            cancel = None
        reason = self._finish(child, ctx, crash, cancel)
        if not ctx._started:
            # Crashed or cancelled during start-up: the starter gets the error.
            if crash is not None:
                raise crash
            raise ActorError(f"actor {ctx.path!r} stopped before it was ready: {reason}")
        if ctx._stop_reason is not None:
            return  # the stopper waits for us and decides
        abnormal = crash is not None or cancel is not None
        if not needs_restart(child.spec.restart, abnormal):
            if child.ctx is ctx:
                child.ctx = None
                self._forget(child)
                if child.spec.significant:
                    self._significant_ended(ctx, reason, crash, cancel is not None)
            return
        if crash is None and cancel is not None:
            by, why, _ = cancel_info(cancel)
            crash = ActorError(f"actor {ctx.path!r} was cancelled by {ctx._cancel_by or by}: {why}")
        try:
            self._exits_send.send_nowait((child, ctx, crash if abnormal else None))
        except trio.ClosedResourceError:
            pass  # the supervisor is shutting down: nothing to restart

    def _finish(
        self,
        child: _Child,
        ctx: Context,
        crash: BaseException | None,
        cancel: BaseException | None,
    ) -> str:
        """Bookkeeping when an incarnation ends; returns the reason it stopped."""
        ctx._finished = True
        if child.ref._send is ctx._send:
            child.ref._send = _DEAD
        fail_pending(ctx._recv, ctx.path)
        if self.tree._actors.get(ctx.path) is ctx:
            del self.tree._actors[ctx.path]
        if crash is not None:
            reason = f"crashed: {crash!r}"
        elif cancel is not None:
            by, why, source = cancel_info(cancel)
            by = ctx._cancel_by or by
            reason = f"cancelled by {by}: {why or source}"
        elif ctx._stop_reason is not None:
            reason = f"stop requested: {ctx._stop_reason}"
        else:
            reason = "returned"
        bus = self.tree.events
        if bus.active:
            now = trio.current_time()
            if crash is not None:
                bus.publish(ActorCrashed(ctx.path, now, crash))
            elif cancel is not None:
                by, why, source = cancel_info(cancel)
                bus.publish(ActorCancelled(ctx.path, now, ctx._cancel_by or by, why, source))
            bus.publish(ActorStopped(ctx.path, now, reason))
        if ctx._done_event is not None:
            ctx._done_event.set()
        return reason

    # -- stopping -----------------------------------------------------------

    def _ask(self, child: _Child, reason: str) -> Context | None:
        ctx = child.ctx
        if ctx is None or ctx._finished:
            child.ctx = None
            return None
        if ctx._stop_reason is None:
            bus = self.tree.events
            if bus.active:
                bus.publish(
                    ActorStopping(ctx.path, trio.current_time(), reason, child.spec.shutdown)
                )
            ctx._request_stop(reason)
        return ctx

    async def _await_stop(self, child: _Child, ctx: Context, deadline: float) -> None:
        if not ctx._finished:
            with trio.move_on_at(deadline):
                await ctx._wait_finished()
            if not ctx._finished:
                ctx._cancel(
                    self.path,
                    f"{ctx._stop_reason}; shutdown grace of {child.spec.shutdown}s expired",
                )
                await ctx._wait_finished()
        if child.ctx is ctx:
            child.ctx = None

    async def _stop(self, child: _Child, reason: str) -> None:
        ctx = self._ask(child, reason)
        if ctx is not None:
            await self._await_stop(child, ctx, trio.current_time() + child.spec.shutdown)

    async def _stop_all(self, reason: str) -> None:
        """Stop every child: dynamic ones together, then static ones in reverse start order."""
        children = list(self._children.values())
        dynamic = [c for c in reversed(children) if c.dynamic]
        now = trio.current_time()
        asked = [(c, ctx) for c in dynamic if (ctx := self._ask(c, reason)) is not None]
        for c, ctx in asked:
            await self._await_stop(c, ctx, now + c.spec.shutdown)
        for c in reversed(children):
            if not c.dynamic:
                await self._stop(c, reason)

    async def _shutdown(self, reason: str) -> None:
        async with self._lock:
            self._closing = True
            await self._stop_all(reason)
            self._children.clear()
            self._exits_send.close()

    # -- auto shutdown (significant children) -------------------------------

    def _significant_ended(
        self, ctx: Context, reason: str, crash: BaseException | None, cancelled: bool
    ) -> None:
        """A significant child ended on its own and was forgotten: shut down if the policy says so.

        Synchronous, so the cause is recorded (and the event published) at
        the moment of the exit; the stopping itself is queued to the control
        task, which needs the lock.
        """
        if self._closing or self._auto_cause is not None:
            return  # already shutting down, giving up, or auto shutting down
        left = sum(1 for c in self._children.values() if c.spec.significant)
        if not auto_shutdown_due(self.auto_shutdown, left):
            return
        now = trio.current_time()
        self._auto_cause = ChildExit(ctx.id, ctx.path, now, reason, crash, cancelled, False)
        why = f"auto_shutdown: significant child {ctx.path!r} exited ({reason})"
        if self.auto_shutdown is AutoShutdown.ALL_SIGNIFICANT:
            why += "; no significant child left"
        self._auto_reason = why
        bus = self.tree.events
        if bus.active:
            bus.publish(SupervisorAutoShutdown(self.path, now, ctx.path, why))
        # Not closed: _closing is set only under the lock, after this check.
        self._exits_send.send_nowait(None)

    async def _auto_shut_down(self, reason: str) -> None:
        """Stop the other children in reverse start order, then end the block (under the lock)."""
        self._closing = True
        self._auto_done = True
        await self._stop_all(reason)
        self._children.clear()
        self._exits_send.close()
        self.cancel(reason)

    # -- restarting ---------------------------------------------------------

    async def _control_loop(self) -> None:
        async for item in self._exits_recv:
            async with self._lock:
                if item is None:  # an auto shutdown is due
                    if not self._closing and self._auto_reason is not None:
                        await self._auto_shut_down(self._auto_reason)
                    continue
                child, ctx, exc = item
                if self._closing or self._auto_cause is not None:
                    continue  # everything stops anyway: restart nothing
                if self._children.get(child.spec.id) is not child:
                    continue
                if child.ctx is not ctx:
                    continue  # stale: this incarnation was already stopped or replaced
                child.ctx = None
                await self._handle_exit(child, exc)

    async def _handle_exit(self, child: _Child, exc: BaseException | None) -> None:
        pending: tuple[_Child, BaseException | None] | None = (child, exc)
        for _ in range(10_000):  # bounded: each round counts a restart, intensity ends it
            if pending is None or self._auto_cause is not None:
                return  # done, or an auto shutdown is due: it stops everything anyway
            child, exc = pending
            pending = None
            decision = self._planner.decide(
                [(c.spec.id, c.spec.restart) for c in self._children.values()],
                child.spec.id,
                exc is not None,
                trio.current_time(),
            )
            if decision.give_up:
                await self._give_up(child, exc, decision.restarts)
                return
            why = f"restarting after {child.path!r} exited"
            for cid in decision.stop:
                sibling = self._children.get(cid)
                if sibling is not None:
                    await self._stop(sibling, why)
            for cid in decision.forget:
                forgotten = self._children.get(cid)
                if forgotten is not None:
                    self._forget(forgotten)
            for cid in decision.start:
                target = self._children.get(cid)
                if self._auto_cause is not None:
                    return  # a significant child ended meanwhile: restart nothing more
                if target is None or target.ctx is not None:
                    continue
                target.restarts += 1
                try:
                    await self._start_incarnation(target, restarted=True)
                except Exception as start_exc:
                    pending = (target, start_exc)  # a crash during restart is an exit too
                    break

    async def _give_up(self, child: _Child, exc: BaseException | None, restarts: int) -> None:
        planner = self._planner
        cause = exc if exc is not None else ActorError(f"actor {child.path!r} exited")
        bus = self.tree.events
        if bus.active:
            bus.publish(
                ActorGaveUp(
                    self.path,
                    trio.current_time(),
                    restarts,
                    planner.max_restarts,
                    planner.max_seconds,
                    cause,
                )
            )
        error = SupervisorGaveUp(
            self.path, child.path, restarts, planner.max_restarts, planner.max_seconds
        )
        error.__cause__ = cause
        self._gave_up = error
        self._closing = True
        await self._stop_all("supervisor gave up")
        self._children.clear()
        self._exits_send.close()
        self.cancel(f"supervisor {self.path!r} gave up")

    def _present(self, group: BaseExceptionGroup[BaseException]) -> BaseException:
        """One clear exception for the user instead of a raw group."""
        _, rest = group.split(trio.Cancelled)
        if rest is None:
            return group  # only cancellation: let the cancelling scope catch it
        found = leaves(rest)
        if len(found) == 1:
            return found[0]
        error = SupervisorError(f"supervisor {self.path!r} failed with {len(found)} errors")
        error.__cause__ = rest
        return error
