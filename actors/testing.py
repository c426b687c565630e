"""Test helpers for actor trees: event recording, crash injection, a jumping clock.

Nothing here sleeps for real.  Run trees under
``trio.testing.MockClock(autojump_threshold=0)`` (:func:`mock_clock`,
:func:`run`): whenever every task is blocked, the clock jumps to the next
deadline, so graces, timeouts and restart periods elapse instantly and
deterministically.

Crash injection works on any running child actor, by path: its cancel scope is
cancelled with a reason, and (for :func:`inject_crash`) the actor's wrapper
then reports the given exception as the crash, exactly as if the actor had
raised it at its current checkpoint.  Roots are not actors and cannot be
injected into.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from types import TracebackType
from typing import Any, TypeVar

import trio
import trio.testing

from ._context import ActorTree
from ._events import LifecycleEvent, Subscription

__all__ = [
    "EventRecorder",
    "inject_cancel",
    "inject_crash",
    "live_tasks",
    "mock_clock",
    "run",
]

E = TypeVar("E", bound=LifecycleEvent)


class EventRecorder:
    """Records every lifecycle event of a tree, for assertions after (or during) a run.

    Subscribe before the tree starts::

        tree = ActorTree()
        with EventRecorder(tree) as rec:
            async with open_supervisor("root", tree=tree, children=...):
                ...
        assert rec.paths(ActorStopped) == [...]

    The buffer is large (``max_buffer``); :attr:`events` raises if anything was dropped,
    so a test never silently asserts on a partial trace.
    """

    __slots__ = ("_sub", "_events")

    def __init__(self, tree: ActorTree, max_buffer: int = 1_000_000) -> None:
        self._sub: Subscription = tree.events.subscribe(max_buffer)
        self._events: list[LifecycleEvent] = []

    @property
    def events(self) -> list[LifecycleEvent]:
        """All events so far, oldest first."""
        self._events.extend(self._sub.drain())
        if self._sub.dropped:
            raise AssertionError(f"event recorder dropped {self._sub.dropped} events")
        return self._events

    def of_type(self, cls: type[E]) -> list[E]:
        """Events of one type, oldest first."""
        return [e for e in self.events if isinstance(e, cls)]

    def paths(self, cls: type[LifecycleEvent]) -> list[str]:
        """Paths of the events of one type, in order."""
        return [e.path for e in self.of_type(cls)]

    def for_path(self, path: str) -> list[LifecycleEvent]:
        """Events of one actor, oldest first."""
        return [e for e in self.events if e.path == path]

    def kinds(self, path: str) -> list[str]:
        """Class names of one actor's events, e.g. ``["ActorStarting", "ActorStarted", ...]``."""
        return [type(e).__name__ for e in self.for_path(path)]

    async def wait_for(self, match: Callable[[LifecycleEvent], bool]) -> LifecycleEvent:
        """Return the first recorded event (past or future) for which ``match`` is true.

        Event-driven, no polling.  Bound it with ``trio.fail_after`` (Trio's
        convention: timeouts belong to the caller).
        """
        for event in self.events:
            if match(event):
                return event
        while True:
            event = await self._sub.receive()
            self._events.append(event)
            if match(event):
                return event

    async def wait_for_count(
        self, match: Callable[[LifecycleEvent], bool], count: int
    ) -> list[LifecycleEvent]:
        """Wait until ``count`` recorded events satisfy ``match``; return them."""
        found = [e for e in self.events if match(e)]
        while len(found) < count:
            event = await self._sub.receive()
            self._events.append(event)
            if match(event):
                found.append(event)
        return found

    def clear(self) -> None:
        """Forget what was recorded so far."""
        self.events.clear()

    def close(self) -> None:
        """Stop recording (recorded events stay readable)."""
        self._events.extend(self._sub.drain())
        self._sub.close()

    def __enter__(self) -> EventRecorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def inject_crash(tree: ActorTree, path: str, exc: BaseException) -> None:
    """Make the actor at ``path`` crash with ``exc`` at its current or next checkpoint.

    Raises:
      ActorNotRunning: nothing runs at ``path``.
    """
    ctx = tree.lookup(path)
    ctx._cancel("actors.testing", f"injected crash: {exc!r}", injected=exc)


def inject_cancel(tree: ActorTree, path: str, reason: str = "injected cancel") -> None:
    """Cancel the actor at ``path`` (an unrequested cancellation: its supervisor sees an abnormal exit)."""
    ctx = tree.lookup(path)
    ctx._cancel("actors.testing", reason)


def mock_clock() -> trio.testing.MockClock:
    """A clock that jumps to the next deadline as soon as every task is blocked."""
    return trio.testing.MockClock(autojump_threshold=0)


T = TypeVar("T")


def run(async_fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """``trio.run`` under :func:`mock_clock` (for tests outside pytest-trio)."""
    return trio.run(async_fn, *args, clock=mock_clock())


def _walk(task: trio.lowlevel.Task) -> Iterator[trio.lowlevel.Task]:
    yield task
    for nursery in task.child_nurseries:
        for child in nursery.child_tasks:
            yield from _walk(child)


def live_tasks() -> list[str]:
    """Names of every task alive in this ``trio.run`` (for leak checks)."""
    root = trio.lowlevel.current_root_task()
    return [] if root is None else [t.name for t in _walk(root)]
