"""What a child is and what it sees: child specs, the actor's ``Context``, the tree.

This module holds the data a user writes (``ChildSpec``, the ``ActorFn``
signature) and what a running actor is handed (``Context``, ``ActorTree``).
The supervisor that does the work lives in ``_supervisor.py``; an actor sees
its parent only through :class:`ParentSupervisor`, the interface
``Supervisor`` implements (so this module never imports the supervisor, and
the two cannot form an import cycle).

Invariants: a ``ChildSpec`` is valid once constructed (id without ``/``,
grace >= 0, a known mailbox kind, a significant child never permanent);
``ActorTree`` maps the path of every running incarnation to its ``Context``
and nothing else (the supervisor registers before start and removes when the
incarnation ends).
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from ._errors import ActorNotRunning
from ._events import EventBus
from ._exits import ChildExit
from ._mailbox import LATEST, ActorRef, _Sender
from ._strategy import AutoShutdown, Restart, Strategy

__all__ = [
    "ActorFn",
    "ActorTree",
    "ChildSpec",
    "Context",
    "ParentSupervisor",
    "SupervisorStatistics",
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
      restart: ``Restart.PERMANENT`` (default), ``TRANSIENT`` or ``TEMPORARY``.
      shutdown: grace in seconds between the stop request and the cancel
        (``math.inf`` for a child that is itself a supervisor: it stops its own
        children first).
      mailbox: inbox capacity (FIFO, backpressure when full; 0 is a rendezvous),
        or ``LATEST`` for a one-slot latest-value mailbox.
      significant: when it ends on its own and is not restarted, its
        supervisor may shut itself down (see ``auto_shutdown``).  Only for
        transient and temporary children, and only under a supervisor whose
        ``auto_shutdown`` is not ``NEVER`` (as in OTP).
    """

    id: str
    start: ActorFn
    restart: Restart = Restart.PERMANENT
    shutdown: float = 5.0
    mailbox: int | str = 64
    significant: bool = False

    def __post_init__(self) -> None:
        if not self.id or "/" in self.id:
            raise ValueError(f"child id must be non-empty and contain no '/': {self.id!r}")
        if not self.shutdown >= 0:
            raise ValueError(f"shutdown grace must be >= 0, not {self.shutdown!r}")
        if self.mailbox != LATEST and (
            not isinstance(self.mailbox, int) or isinstance(self.mailbox, bool) or self.mailbox < 0
        ):
            raise ValueError(f"mailbox must be a size >= 0 or LATEST, not {self.mailbox!r}")
        if self.significant and self.restart is Restart.PERMANENT:
            raise ValueError(
                f"child {self.id!r}: a significant child must be TRANSIENT or TEMPORARY"
                " (a permanent child is always restarted, so it never ends)"
            )


@dataclass(frozen=True, slots=True)
class SupervisorStatistics:
    """A snapshot of a supervisor (trio's ``statistics()`` convention)."""

    path: str
    children: int
    running: int
    restarts_in_window: int
    child_ids: tuple[str, ...] = field(default=())


class ParentSupervisor(Protocol):
    """The supervisor as its children see it (``ctx.supervisor``); ``Supervisor`` implements it."""

    path: str
    tree: ActorTree
    strategy: Strategy
    auto_shutdown: AutoShutdown

    @property
    def auto_shutdown_cause(self) -> ChildExit | None: ...

    async def start_child(self, spec: ChildSpec) -> ActorRef[Any]: ...

    async def stop_child(self, child_id: str, reason: str = ...) -> None: ...

    def ref(self, child_id: str) -> ActorRef[Any]: ...

    def started_value(self, child_id: str) -> Any: ...

    def child_ids(self) -> list[str]: ...

    def cancel(self, reason: str) -> None: ...

    def statistics(self) -> SupervisorStatistics: ...


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
        id: str,
        path: str,
        ref: ActorRef[Any],
        supervisor: ParentSupervisor,
        send: _Sender,
        recv: trio.abc.ReceiveChannel[Any],
        incarnation: int,
    ) -> None:
        self.id = id
        self.path = path
        self.ref = ref
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

    @property
    def stop_reason(self) -> str | None:
        """The reason the supervisor gave when it asked this actor to stop (None until then)."""
        return self._stop_reason

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
