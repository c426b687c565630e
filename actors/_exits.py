"""How an actor's incarnation ended: the ``ChildExit`` record and exception classification.

Invariants: these helpers only read exceptions (never raise, never await);
:func:`only_cancelled` is true for a bare ``trio.Cancelled`` or a group whose
every leaf is one, which is how a supervisor tells "the subtree is being
cancelled" from "the actor failed".
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

__all__ = ["ChildExit", "cancel_info", "leaves", "only_cancelled"]


@dataclass(frozen=True, slots=True)
class ChildExit:
    """How one incarnation of a child ended, as its supervisor saw it.

    ``Supervisor.auto_shutdown_cause`` is one of these.

    Attributes:
      id: the child id.  path: its path in the tree.
      time: when it ended (``trio.current_time()``).
      reason: the same text as its ``ActorStopped.reason`` (``"returned"``,
        ``"crashed: ..."``, ``"cancelled by <who>: <why>"``, ``"stop requested: ..."``).
      exc: the exception it crashed with (``None`` if it returned or was cancelled).
      cancelled: it was cancelled without anyone asking it to stop (e.g. an
        injected cancel); a crash is not a cancel.
      requested: its supervisor had asked it to stop (``stop_child``, a restart
        of its siblings, the supervisor's own shutdown).  An auto_shutdown is
        never caused by a requested exit, so it is always false there.
    """

    id: str
    path: str
    time: float
    reason: str
    exc: BaseException | None
    cancelled: bool
    requested: bool

    @property
    def crashed(self) -> bool:
        """It raised (or had a crash injected)."""
        return self.exc is not None

    @property
    def abnormal(self) -> bool:
        """A crash or an unrequested cancel: what restarts a transient child."""
        return self.exc is not None or self.cancelled


def leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    """The non-group exceptions inside ``group``, depth first, in order."""
    out: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop()
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(reversed(exc.exceptions))
        else:
            out.append(exc)
    return out


def only_cancelled(exc: BaseException) -> bool:
    """A ``trio.Cancelled``, or a group of nothing but."""
    if isinstance(exc, trio.Cancelled):
        return True
    return isinstance(exc, BaseExceptionGroup) and all(
        isinstance(e, trio.Cancelled) for e in leaves(exc)
    )


def cancel_info(exc: BaseException) -> tuple[str | None, str | None, str]:
    """(who cancelled, the reason given, trio's cancel source) of a ``Cancelled`` (or group)."""
    if isinstance(exc, BaseExceptionGroup):
        exc = leaves(exc)[0]
    return (
        getattr(exc, "source_task", None),
        getattr(exc, "reason", None),
        str(getattr(exc, "source", "unknown")),
    )
