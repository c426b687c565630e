"""Mailboxes and actor references.

An actor receives from its inbox, a ``trio.abc.ReceiveChannel``:

* a bounded FIFO (a trio memory channel): ``send`` waits while it is full
  (backpressure), ``send_nowait`` raises ``trio.WouldBlock``.  Messages from one
  sender arrive in the order sent; the channel is the whole per-message path.
* a latest-value mailbox: one slot, a new message replaces a pending one
  (election votes, "current state" notifications).  Sends never block.

:class:`ActorRef` is the send side handed to other actors.  It outlives
restarts: the supervisor points it at each new incarnation's inbox, so a ref
held by a sibling stays valid.  Messages pending in a dead incarnation's inbox
are lost, as in Erlang; pending :class:`Call` requests are failed with
:class:`ActorNotRunning` so no caller waits for a reply that cannot come.

``call`` is request/response: it sends a :class:`Call` envelope carrying a
one-shot reply slot; the actor answers with ``msg.reply(value)`` or
``msg.fail(exc)``.
"""

from __future__ import annotations

import math
from typing import Any, Generic, Protocol, TypeVar

import trio

from ._errors import ActorNotRunning, CallTimeout, MessageReplaced

__all__ = [
    "LATEST",
    "ActorRef",
    "Call",
    "LatestReceiveChannel",
    "LatestSendChannel",
    "open_mailbox",
]

T = TypeVar("T")
R = TypeVar("R")

#: ``ChildSpec(mailbox=LATEST)`` selects a latest-value mailbox.
LATEST = "latest"

_GONE = (trio.ClosedResourceError, trio.BrokenResourceError)


class Call(Generic[R]):
    """A request sent with :meth:`ActorRef.call`; answer it exactly once.

    Attributes:
      request: what the caller sent.
    """

    __slots__ = ("request", "_event", "_value", "_error")

    def __init__(self, request: Any) -> None:
        self.request = request
        self._event = trio.Event()
        self._value: R | None = None
        self._error: BaseException | None = None

    @property
    def answered(self) -> bool:
        """True once :meth:`reply` or :meth:`fail` was called."""
        return self._event.is_set()

    def reply(self, value: R) -> None:
        """Send ``value`` back to the caller (no effect if the caller gave up)."""
        if self._event.is_set():
            raise RuntimeError("this call was already answered")
        self._value = value
        self._event.set()

    def fail(self, exc: BaseException) -> None:
        """Make the caller's ``call`` raise ``exc``."""
        if self._event.is_set():
            raise RuntimeError("this call was already answered")
        self._error = exc
        self._event.set()

    def __repr__(self) -> str:
        return f"Call({self.request!r})"


class _Sender(Protocol):
    async def send(self, value: Any, /) -> None: ...
    def send_nowait(self, value: Any, /) -> None: ...
    def close(self) -> None: ...


class ActorRef(Generic[T]):
    """The send side of an actor's inbox: how other actors talk to it.

    Attributes:
      path: the actor's path in its tree, e.g. ``"peer-2/leading/learner-handler-3"``.
    """

    __slots__ = ("path", "_send")

    def __init__(self, path: str, sender: _Sender | None = None) -> None:
        self.path = path
        self._send: _Sender = sender if sender is not None else _DEAD

    async def send(self, msg: T) -> None:
        """Send ``msg``, waiting while the inbox is full.

        Raises:
          ActorNotRunning: the actor is stopped or between restarts.
        """
        try:
            await self._send.send(msg)
        except _GONE:
            raise ActorNotRunning(self.path) from None

    def send_nowait(self, msg: T) -> None:
        """Send ``msg`` if there is room.

        Raises:
          trio.WouldBlock: the inbox is full.
          ActorNotRunning: the actor is stopped or between restarts.
        """
        try:
            self._send.send_nowait(msg)
        except _GONE:
            raise ActorNotRunning(self.path) from None

    # A timeout argument on purpose: a call without one is a bug waiting for a
    # lost reply, and CallTimeout names the actor, which a bare fail_after cannot.
    async def call(self, request: Any, *, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """Send ``request`` in a :class:`Call` and wait for the actor's answer.

        The timeout covers both the wait for room in the inbox and the wait for
        the reply.

        Raises:
          CallTimeout: no answer within ``timeout`` seconds.
          ActorNotRunning: the actor is not running, or stopped before answering.
          MessageReplaced: (latest-value mailbox) a newer message replaced it.
          Exception: whatever the actor passed to :meth:`Call.fail`.
        """
        call: Call[Any] = Call(request)
        with trio.move_on_after(math.inf if timeout is None else timeout) as scope:
            await self.send(call)  # type: ignore[arg-type]
            await call._event.wait()
        if scope.cancelled_caught and not call._event.is_set():
            raise CallTimeout(self.path, math.inf if timeout is None else timeout)
        if call._error is not None:
            raise call._error
        return call._value

    @property
    def alive(self) -> bool:
        """True when the current incarnation's inbox is open."""
        return self._send is not _DEAD

    def __repr__(self) -> str:
        return f"<ActorRef {self.path}>"


class _DeadSender:
    """The sender of a ref whose actor is not running: every send fails."""

    async def send(self, value: Any, /) -> None:
        await trio.lowlevel.checkpoint()
        raise trio.ClosedResourceError

    def send_nowait(self, value: Any, /) -> None:
        raise trio.ClosedResourceError

    def close(self) -> None:
        pass


_DEAD = _DeadSender()


class _LatestState:
    __slots__ = ("path", "value", "full", "closed", "waiter")

    def __init__(self, path: str) -> None:
        self.path = path
        self.value: Any = None
        self.full = False
        self.closed = False  # send side closed: the receiver drains then ends
        self.waiter: trio.Event | None = None

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            waiter.set()


class LatestSendChannel(trio.abc.SendChannel[T]):
    """Send side of a latest-value mailbox: a pending message is replaced, never queued."""

    __slots__ = ("_state",)

    def __init__(self, state: _LatestState) -> None:
        self._state = state

    def send_nowait(self, value: T) -> None:
        """Store ``value``, replacing (and failing, if a :class:`Call`) any pending message."""
        state = self._state
        if state.closed:
            raise trio.ClosedResourceError
        old = state.value
        if state.full and isinstance(old, Call) and not old.answered:
            old.fail(MessageReplaced(state.path))
        state.value = value
        state.full = True
        state.wake()

    async def send(self, value: T) -> None:
        """Like :meth:`send_nowait` (never blocks), plus a checkpoint."""
        await trio.lowlevel.checkpoint()
        self.send_nowait(value)

    def close(self) -> None:
        """Close the mailbox: the receiver gets the pending message, then ``EndOfChannel``."""
        self._state.closed = True
        self._state.wake()

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()


class LatestReceiveChannel(trio.abc.ReceiveChannel[T]):
    """Receive side of a latest-value mailbox."""

    __slots__ = ("_state",)

    def __init__(self, state: _LatestState) -> None:
        self._state = state

    def receive_nowait(self) -> T:
        """Take the pending message; ``trio.WouldBlock`` if none, ``EndOfChannel`` once closed."""
        state = self._state
        if state.full:
            value: T = state.value
            state.value = None
            state.full = False
            return value
        if state.closed:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    async def receive(self) -> T:
        """Wait for a message and take it."""
        state = self._state
        while not state.full and not state.closed:
            if state.waiter is None:
                state.waiter = trio.Event()
            await state.waiter.wait()
        await trio.lowlevel.checkpoint()
        return self.receive_nowait()

    def close(self) -> None:
        # Closing the receive side is how an incarnation ends: senders fail from now on.
        self._state.closed = True
        self._state.value = None
        self._state.full = False

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()


def open_mailbox(path: str, size: int | str) -> tuple[_Sender, trio.abc.ReceiveChannel[Any]]:
    """Create an inbox: bounded FIFO of ``size`` messages, or latest-value if ``size == LATEST``."""
    if size == LATEST:
        state = _LatestState(path)
        return LatestSendChannel(state), LatestReceiveChannel(state)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError(f"mailbox must be a size >= 0 or LATEST, not {size!r}")
    send, recv = trio.open_memory_channel[Any](size)
    return send, recv


def fail_pending(recv: trio.abc.ReceiveChannel[Any], path: str) -> None:
    """Close a dead incarnation's inbox, failing every unanswered :class:`Call` in it."""
    receive_nowait = getattr(recv, "receive_nowait", None)
    if receive_nowait is not None:
        for _ in range(1_000_000):  # bounded: an inbox never holds more than its size
            try:
                msg = receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            if isinstance(msg, Call) and not msg.answered:
                msg.fail(ActorNotRunning(path))
    close = getattr(recv, "close", None)
    if close is not None:
        close()
