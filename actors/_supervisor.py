"""Supervisors: nurseries that start, watch, restart and stop actors.

Shape
-----
``open_supervisor`` is an ``async with`` block around a trio nursery.  Inside it
run one task per child incarnation (named by the child's path) plus one control
task.  The block's body runs in the nursery's scope, so the body can start and
stop dynamic children and is cancelled if the supervisor gives up.

Invariants
----------
* A child's exception never reaches the nursery: the child's wrapper task
  (``_run_child``) catches it, publishes the events, and reports the exit to the
  control task through an unbounded channel (``send_nowait``: a dying child
  never waits).  Only ``Cancelled`` coming from *outside* the child's own
  scope propagates, because then the whole subtree is being cancelled.
* Every change to the set of running children (start, stop, restart, give up,
  shutdown) happens under ``_lock``, one at a time, so a restart decision is
  taken and executed against a stable child list.  Exits that need no restart
  (temporary children, transient ones exiting normally) take a lock-free fast
  path so thousands of short-lived children cost one dict insert and one pop.
* The restart decision itself is ``_strategy.RestartPlanner``: pure, no trio.
* Children start in order, each awaited until it calls
  ``task_status.started()``; they stop in reverse order.  Stopping = ask (close
  the inbox, set ``ctx.stop_requested``), wait the child's grace, then cancel its
  scope with a reason.  Dynamic children are asked together and waited for
  against one shared deadline, so a thousand connections stop in one grace
  period, not a thousand.
* A hard cancel from outside (the enclosing scope is cancelled) is not graceful:
  every actor in the subtree sees ``Cancelled`` at once, records who cancelled
  and why, and stops; children still finish before their parents.
* The body's own exception is re-raised unwrapped; several errors become one
  ``SupervisorError`` with the group as ``__cause__``; a supervisor that gives up
  raises ``SupervisorGaveUp`` with the last crash as ``__cause__``.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

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
    EventBus,
)
from ._mailbox import _DEAD, LATEST, ActorRef, _Sender, fail_pending, open_mailbox
from ._strategy import Restart, RestartPlanner, Strategy, needs_restart

__all__ = [
    "ActorFn",
    "ActorTree",
    "ChildSpec",
    "Context",
    "Supervisor",
    "SupervisorStatistics",
    "open_supervisor",
    "supervisor_spec",
]


class ActorFn(Protocol):
    """An actor: ``async def run(ctx, inbox, *, task_status)``.

    It must call ``task_status.started(value=None)`` once it is ready to serve,
    then usually loops ``async for msg in inbox``; the loop ends when the
    supervisor asks it to stop (the inbox is closed), and returning then is a
    clean stop.
    """

    def __call__(
        self,
        ctx: Context,
        inbox: trio.abc.ReceiveChannel[Any],
        /,
        *,
        task_status: trio.TaskStatus[Any],
    ) -> Awaitable[None]: ...


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to run one child (OTP's child specification, as data).

    Attributes:
      id: unique among its siblings; the last component of the child's path (no ``/``).
      start: the actor function.
      restart: PERMANENT (default), TRANSIENT or TEMPORARY.
      shutdown: grace in seconds between the stop request and the cancel
        (``math.inf`` for a child that is itself a supervisor: it stops its own
        children first).
      mailbox: inbox capacity (FIFO, backpressure when full; 0 is a rendezvous),
        or ``LATEST`` for a one-slot latest-value mailbox.
    """

    id: str
    start: ActorFn
    restart: Restart = Restart.PERMANENT
    shutdown: float = 5.0
    mailbox: int | str = 64

    def __post_init__(self) -> None:
        if not self.id or "/" in self.id:
            raise ValueError(f"child id must be non-empty and contain no '/': {self.id!r}")
        if not self.shutdown >= 0:
            raise ValueError(f"shutdown grace must be >= 0, not {self.shutdown!r}")
        if self.mailbox != LATEST and (
            not isinstance(self.mailbox, int) or isinstance(self.mailbox, bool) or self.mailbox < 0
        ):
            raise ValueError(f"mailbox must be a size >= 0 or LATEST, not {self.mailbox!r}")


class ActorTree:
    """What all supervisors of one tree share: the event bus and a registry of live actors.

    Create one up front to subscribe before anything starts, and pass it to the
    root ``open_supervisor(..., tree=tree)``.
    """

    __slots__ = ("events", "_actors")

    def __init__(self, events: EventBus | None = None) -> None:
        #: Lifecycle events of every actor in the tree.
        self.events = events if events is not None else EventBus()
        self._actors: dict[str, Context] = {}

    def lookup(self, path: str) -> Context:
        """The context of the running actor at ``path``.

        Raises:
          ActorNotRunning: nothing runs at ``path``.
        """
        try:
            return self._actors[path]
        except KeyError:
            raise ActorNotRunning(path) from None

    def ref(self, path: str) -> ActorRef[Any]:
        """A reference to the actor running at ``path`` (see :meth:`lookup`)."""
        return self.lookup(path).ref

    def paths(self) -> list[str]:
        """Paths of all running actors (children of supervisors; roots are not actors)."""
        return list(self._actors)


class Context:
    """What an actor incarnation knows about itself; passed as ``ctx``.

    Attributes:
      id: the child id.  path: its path in the tree.  ref: a reference to itself.
      supervisor: its parent.  tree: the tree (event bus, registry).
      incarnation: 0 for the first start, +1 per restart.
    """

    __slots__ = (
        "id",
        "path",
        "ref",
        "supervisor",
        "tree",
        "incarnation",
        "value",
        "_scope",
        "_send",
        "_recv",
        "_stop_reason",
        "_stop_event",
        "_started",
        "_finished",
        "_done_event",
        "_injected",
        "_cancel_by",
    )

    def __init__(
        self,
        child: _Child,
        supervisor: Supervisor,
        send: _Sender,
        recv: trio.abc.ReceiveChannel[Any],
        incarnation: int,
    ) -> None:
        self.id = child.spec.id
        self.path = child.path
        self.ref = child.ref
        self.supervisor = supervisor
        self.tree = supervisor.tree
        self.incarnation = incarnation
        #: The value passed to ``task_status.started()``.
        self.value: Any = None
        self._scope = trio.CancelScope()
        self._send = send
        self._recv = recv
        self._stop_reason: str | None = None
        self._stop_event: trio.Event | None = None
        self._started = False
        self._finished = False
        self._done_event: trio.Event | None = None
        self._injected: BaseException | None = None
        self._cancel_by: str | None = None

    @property
    def stop_requested(self) -> bool:
        """True once the supervisor asked this actor to stop."""
        return self._stop_reason is not None

    async def wait_stop_requested(self) -> None:
        """Wait until the supervisor asks this actor to stop (for actors that do not read the inbox)."""
        if self._stop_reason is None:
            if self._stop_event is None:
                self._stop_event = trio.Event()
            await self._stop_event.wait()
        else:
            await trio.lowlevel.checkpoint()

    def _request_stop(self, reason: str) -> None:
        self._stop_reason = reason
        if self._stop_event is not None:
            self._stop_event.set()
        self._send.close()

    async def _wait_finished(self) -> None:
        if not self._finished:
            if self._done_event is None:
                self._done_event = trio.Event()
            await self._done_event.wait()

    def _cancel(self, by: str, reason: str, injected: BaseException | None = None) -> None:
        if self._cancel_by is None:
            self._cancel_by = by
        if injected is not None and self._injected is None:
            self._injected = injected
        self._scope.cancel(reason=reason)

    def __repr__(self) -> str:
        return f"<Context {self.path} #{self.incarnation}>"


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


@dataclass(frozen=True, slots=True)
class SupervisorStatistics:
    """A snapshot of a supervisor (trio's ``statistics()`` convention)."""

    path: str
    children: int
    running: int
    restarts_in_window: int
    child_ids: tuple[str, ...] = field(default=())


def _cancel_info(exc: BaseException) -> tuple[str | None, str | None, str]:
    if isinstance(exc, BaseExceptionGroup):
        exc = _leaves(exc)[0]
    return (
        getattr(exc, "source_task", None),
        getattr(exc, "reason", None),
        str(getattr(exc, "source", "unknown")),
    )


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop()
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(reversed(exc.exceptions))
        else:
            out.append(exc)
    return out


def _only_cancelled(exc: BaseException) -> bool:
    if isinstance(exc, trio.Cancelled):
        return True
    return isinstance(exc, BaseExceptionGroup) and all(
        isinstance(e, trio.Cancelled) for e in _leaves(exc)
    )


class Supervisor:
    """A running supervisor; obtain one from :func:`open_supervisor`.

    Attributes:
      path: its path (the root's name, or the path of the actor that opened it).
      tree: the tree it belongs to.
      strategy: its restart strategy.
    """

    def __init__(
        self,
        path: str,
        tree: ActorTree,
        strategy: Strategy,
        max_restarts: int,
        max_seconds: float,
    ) -> None:
        self.path = path
        self.tree = tree
        self.strategy = strategy
        self._planner = RestartPlanner(strategy, max_restarts, max_seconds)
        self._children: dict[str, _Child] = {}
        self._lock = trio.Lock()
        self._exits_send, self._exits_recv = trio.open_memory_channel[
            tuple[_Child, Context, BaseException | None]
        ](math.inf)
        self._nursery: trio.Nursery | None = None
        self._closing = False
        self._gave_up: SupervisorGaveUp | None = None

    # -- public API ---------------------------------------------------------

    async def start_child(self, spec: ChildSpec) -> ActorRef[Any]:
        """Start a dynamic child and wait until it is ready.

        Returns:
          a reference to it (valid across its restarts).

        Raises:
          ValueError: a child with this id exists.
          ChildStartFailed: it crashed before calling ``task_status.started()``.
          SupervisorError: the supervisor is shutting down.
        """
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

    def _add(self, spec: ChildSpec, dynamic: bool) -> _Child:
        if self._closing:
            raise SupervisorError(f"supervisor {self.path!r} is shutting down")
        if spec.id in self._children:
            raise ValueError(f"supervisor {self.path!r} already has a child {spec.id!r}")
        child = _Child(spec, f"{self.path}/{spec.id}", dynamic)
        self._children[spec.id] = child
        return child

    def _forget(self, child: _Child) -> None:
        if self._children.get(child.spec.id) is child:
            del self._children[child.spec.id]

    async def _start_incarnation(self, child: _Child, restarted: bool) -> None:
        assert self._nursery is not None
        send, recv = open_mailbox(child.path, child.spec.mailbox)
        incarnation = child.restarts
        ctx = Context(child, self, send, recv, incarnation)
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
                    if _only_cancelled(exc):
                        cancel = exc
                    raise
        except BaseException as exc:
            if _only_cancelled(exc) or not isinstance(exc, Exception):
                # Cancelled from outside our scope (the subtree is being torn
                # down), or KeyboardInterrupt & co: record, then let it propagate.
                self._finish(child, ctx, None if _only_cancelled(exc) else exc, cancel or exc)
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
            return
        if crash is None and cancel is not None:
            by, why, _ = _cancel_info(cancel)
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
            by, why, source = _cancel_info(cancel)
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
                by, why, source = _cancel_info(cancel)
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

    # -- restarting ---------------------------------------------------------

    async def _control_loop(self) -> None:
        async for child, ctx, exc in self._exits_recv:
            async with self._lock:
                if self._closing or self._children.get(child.spec.id) is not child:
                    continue
                if child.ctx is not ctx:
                    continue  # stale: this incarnation was already stopped or replaced
                child.ctx = None
                await self._handle_exit(child, exc)

    async def _handle_exit(self, child: _Child, exc: BaseException | None) -> None:
        pending: tuple[_Child, BaseException | None] | None = (child, exc)
        for _ in range(10_000):  # bounded: each round counts a restart, intensity ends it
            if pending is None:
                return
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
        leaves = _leaves(rest)
        if len(leaves) == 1:
            return leaves[0]
        error = SupervisorError(f"supervisor {self.path!r} failed with {len(leaves)} errors")
        error.__cause__ = rest
        return error


@asynccontextmanager
async def open_supervisor(
    parent: Context | str,
    *,
    strategy: Strategy = Strategy.ONE_FOR_ONE,
    children: Iterable[ChildSpec] = (),
    max_restarts: int = 3,
    max_seconds: float = 5.0,
    tree: ActorTree | None = None,
) -> AsyncIterator[Supervisor]:
    """Run a supervisor for the duration of an ``async with`` block.

    Args:
      parent: the root's name (a new root, which publishes its own lifecycle
        events), or the ``ctx`` of the actor whose body this supervisor is
        (its children's paths extend ``ctx.path``).
      strategy: ONE_FOR_ONE (default), ONE_FOR_ALL or REST_FOR_ONE.
      children: static children, started in order before the body runs.
      max_restarts, max_seconds: restart intensity (OTP's MaxR within MaxT).
      tree: (roots only) the tree to join, e.g. one you subscribed to already.

    When the body finishes, the children are stopped gracefully in reverse
    order and the block exits.  If the body raises, or the block is cancelled,
    the children are cancelled at once.

    Raises:
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
    sup = Supervisor(path, the_tree, strategy, max_restarts, max_seconds)
    bus = the_tree.events
    if is_root and bus.active:
        bus.publish(ActorStarting(path, trio.current_time(), 0))
    error: BaseException | None = None
    stop_reason = "returned"
    try:
        async with trio.open_nursery() as nursery:
            sup._nursery = nursery
            nursery.start_soon(sup._control_loop, name=f"{path}:supervisor")
            await sup._start_static(children)
            if is_root and bus.active:
                bus.publish(ActorStarted(path, trio.current_time()))
            yield sup
            stop_reason = "stop requested: supervisor block exited"
            if is_root and bus.active:
                bus.publish(ActorStopping(path, trio.current_time(), "block exited", math.inf))
            await sup._shutdown("supervisor block exited")  # also ends the control task
    except BaseException as exc:  # a group, or a bare exception under strict_exception_groups=False
        error = sup._present(exc) if isinstance(exc, BaseExceptionGroup) else exc
        if _only_cancelled(error):
            if is_root and bus.active:
                by, why, source = _cancel_info(error)
                now = trio.current_time()
                bus.publish(ActorCancelled(path, now, by, why, source))
                bus.publish(ActorStopped(path, now, f"cancelled by {by}: {why or source}"))
            raise
    if sup._gave_up is not None:
        error = sup._gave_up
    if is_root and bus.active:
        if error is None and nursery.cancel_scope.cancelled_caught and stop_reason == "returned":
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
    restart: Restart = Restart.PERMANENT,
    shutdown: float = math.inf,
) -> ChildSpec:
    """A child spec whose actor is a supervisor of ``children`` (a subtree as data).

    Its started value is the :class:`Supervisor`; asked to stop, it stops its
    children in reverse order and returns.  If it gives up, it crashes with
    ``SupervisorGaveUp`` and its own parent decides (escalation).
    """
    specs = tuple(children)

    async def run_subtree(
        ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *, task_status: trio.TaskStatus[Any]
    ) -> None:
        async with open_supervisor(
            ctx,
            strategy=strategy,
            children=specs,
            max_restarts=max_restarts,
            max_seconds=max_seconds,
        ) as sup:
            task_status.started(sup)
            async for _ in inbox:  # ends when the stop request closes the inbox
                pass

    return ChildSpec(id, run_subtree, restart, shutdown, mailbox=0)
