"""Exceptions raised by the actors library (one domain error per failure, never a raw group)."""

from __future__ import annotations

import trio

__all__ = [
    "ActorError",
    "ActorNotRunning",
    "CallTimeout",
    "ChildStartFailed",
    "MessageReplaced",
    "SupervisorError",
    "SupervisorGaveUp",
]


class ActorError(Exception):
    """Base class of every error this library raises."""


class ActorNotRunning(ActorError):
    """The target actor is not running (stopped, crashed, or between restarts)."""

    def __init__(self, path: str) -> None:
        super().__init__(f"actor {path!r} is not running")
        self.path = path


class CallTimeout(ActorError, trio.TooSlowError):
    """``ActorRef.call`` got no reply in time (also a ``trio.TooSlowError``)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__(f"call to actor {path!r} got no reply within {timeout}s")
        self.path = path
        self.timeout = timeout


class MessageReplaced(ActorError):
    """A call sent to a latest-value mailbox was replaced by a newer message before it was read."""

    def __init__(self, path: str) -> None:
        super().__init__(f"call to actor {path!r} was replaced by a newer message")
        self.path = path


class SupervisorError(ActorError):
    """A supervisor failed; ``__cause__`` holds what went wrong."""


class ChildStartFailed(SupervisorError):
    """A child raised (or was cancelled) before reporting readiness; the crash is ``__cause__``."""

    def __init__(self, path: str, exc: BaseException) -> None:
        super().__init__(f"actor {path!r} failed to start: {exc!r}")
        self.path = path


class SupervisorGaveUp(SupervisorError):
    """A supervisor exceeded its restart intensity, stopped its children and failed.

    ``__cause__`` is the crash that exceeded the intensity; ``child`` is the path
    of the actor that crashed.
    """

    def __init__(
        self, path: str, child: str, restarts: int, max_restarts: int, max_seconds: float
    ) -> None:
        super().__init__(
            f"supervisor {path!r} gave up: {restarts} restarts within {max_seconds}s"
            f" (max {max_restarts}); last exit: {child!r}"
        )
        self.path = path
        self.child = child
        self.restarts = restarts
        self.max_restarts = max_restarts
        self.max_seconds = max_seconds
