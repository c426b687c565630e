"""Lifecycle events and the bus that delivers them.

Every actor lifecycle step is one immutable, slotted record carrying the actor's
path (``peer-2/leading/learner-handler-3``) and a monotonic timestamp
(``trio.current_time()``, so it follows a MockClock in tests).

Per incarnation of an actor the sequence is::

    ActorStarting -> [ActorStarted] -> [ActorStopping] -> [ActorCrashed | ActorCancelled] -> ActorStopped
    (then ActorRestarted after the next incarnation's ActorStarted, if restarted)

``ActorStopped`` is emitted exactly once per ``ActorStarting`` and always says
why.  A supervisor that exceeds its restart intensity emits ``ActorGaveUp``;
one that shuts itself down because a significant child ended emits
``SupervisorAutoShutdown`` (before it stops its other children).

Delivery never blocks the actors: :meth:`EventBus.publish` is synchronous and
appends to a bounded buffer per subscriber; a full buffer drops the event and
counts it in :attr:`Subscription.dropped`.  With no subscriber, publishing is
one attribute test (the supervisor checks :attr:`EventBus.active` before it
even builds the record).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from types import TracebackType

import trio

__all__ = [
    "ActorCancelled",
    "ActorCrashed",
    "ActorGaveUp",
    "ActorRestarted",
    "ActorStarted",
    "ActorStarting",
    "ActorStopped",
    "ActorStopping",
    "EventBus",
    "LifecycleEvent",
    "Subscription",
    "SupervisorAutoShutdown",
]


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    """Base of all lifecycle events: the actor's path and when it happened."""

    path: str
    time: float


@dataclass(frozen=True, slots=True)
class ActorStarting(LifecycleEvent):
    """The actor's start function is about to run (``incarnation`` counts from 0)."""

    incarnation: int


@dataclass(frozen=True, slots=True)
class ActorStarted(LifecycleEvent):
    """The actor reported readiness with ``task_status.started()``."""


@dataclass(frozen=True, slots=True)
class ActorStopping(LifecycleEvent):
    """Its supervisor asked the actor to stop (inbox closed) and waits ``grace`` seconds."""

    reason: str
    grace: float


@dataclass(frozen=True, slots=True)
class ActorCrashed(LifecycleEvent):
    """The actor raised ``exc`` (or had a crash injected)."""

    exc: BaseException


@dataclass(frozen=True, slots=True)
class ActorCancelled(LifecycleEvent):
    """The actor was cancelled.

    Attributes:
      by: who cancelled: a supervisor's path, or trio's description of the task.
      reason: the reason given to ``CancelScope.cancel``, if any.
      source: trio's cancel source ("explicit", "deadline", "nursery", ...).
    """

    by: str | None
    reason: str | None
    source: str


@dataclass(frozen=True, slots=True)
class ActorStopped(LifecycleEvent):
    """The actor's task is finished; ``reason`` says why (always set)."""

    reason: str


@dataclass(frozen=True, slots=True)
class ActorRestarted(LifecycleEvent):
    """A new incarnation is running; ``restarts`` counts this child's restarts so far."""

    restarts: int


@dataclass(frozen=True, slots=True)
class ActorGaveUp(LifecycleEvent):
    """The supervisor at ``path`` exceeded its restart intensity and is failing."""

    restarts: int
    max_restarts: int
    max_seconds: float
    cause: BaseException


@dataclass(frozen=True, slots=True)
class SupervisorAutoShutdown(LifecycleEvent):
    """The supervisor at ``path`` shuts itself down: significant child ``child`` (a path) ended.

    ``reason`` is the reason its other children are stopped with
    (``"auto_shutdown: significant child 'root/x' exited (returned)"``).
    """

    child: str
    reason: str


class Subscription:
    """A bounded queue of lifecycle events for one subscriber.

    Use it as an async iterator, or drain it synchronously with
    :meth:`receive_nowait` / :meth:`drain`.  When the buffer is full new events
    are dropped and counted in :attr:`dropped`; the publisher never waits.
    """

    __slots__ = ("_bus", "_queue", "_max_buffer", "_waiter", "dropped", "_closed")

    def __init__(self, bus: EventBus, max_buffer: int) -> None:
        self._bus = bus
        self._queue: deque[LifecycleEvent] = deque()
        self._max_buffer = max_buffer
        self._waiter: trio.Event | None = None
        #: Events lost because the buffer was full.
        self.dropped = 0
        self._closed = False

    def _push(self, event: LifecycleEvent) -> None:
        if len(self._queue) >= self._max_buffer:
            self.dropped += 1
            return
        self._queue.append(event)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.set()

    def receive_nowait(self) -> LifecycleEvent:
        """Return the oldest buffered event; raises ``trio.WouldBlock`` if none."""
        if not self._queue:
            if self._closed:
                raise trio.EndOfChannel
            raise trio.WouldBlock
        return self._queue.popleft()

    async def receive(self) -> LifecycleEvent:
        """Wait for and return the next event; ``trio.EndOfChannel`` once closed and empty."""
        while not self._queue:
            if self._closed:
                raise trio.EndOfChannel
            if self._waiter is None:
                self._waiter = trio.Event()
            await self._waiter.wait()
        await trio.lowlevel.checkpoint()
        return self._queue.popleft()

    def drain(self) -> list[LifecycleEvent]:
        """Remove and return every buffered event, oldest first."""
        events = list(self._queue)
        self._queue.clear()
        return events

    def close(self) -> None:
        """Unsubscribe; buffered events can still be received."""
        if not self._closed:
            self._closed = True
            self._bus._unsubscribe(self)
            if self._waiter is not None:
                self._waiter.set()
                self._waiter = None

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> LifecycleEvent:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None


class EventBus:
    """Fans lifecycle events out to subscribers without ever blocking the publisher."""

    __slots__ = ("_subscribers", "published")

    def __init__(self) -> None:
        self._subscribers: tuple[Subscription, ...] = ()
        #: Events published while at least one subscriber was listening.
        self.published = 0

    @property
    def active(self) -> bool:
        """True when someone listens (publishers skip building events otherwise)."""
        return bool(self._subscribers)

    def subscribe(self, max_buffer: int = 1024) -> Subscription:
        """Start receiving events; at most ``max_buffer`` are held, the rest dropped."""
        if max_buffer < 1:
            raise ValueError(f"max_buffer must be >= 1, not {max_buffer!r}")
        sub = Subscription(self, max_buffer)
        # Copy-on-write: publish iterates a tuple, so (un)subscribing from a
        # subscriber's own code during publish is safe.
        self._subscribers = (*self._subscribers, sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        self._subscribers = tuple(s for s in self._subscribers if s is not sub)

    def publish(self, event: LifecycleEvent) -> None:
        """Deliver ``event`` to every subscriber (synchronous, never blocks)."""
        subscribers = self._subscribers
        if subscribers:
            self.published += 1
            for sub in subscribers:
                sub._push(event)
