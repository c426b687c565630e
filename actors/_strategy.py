"""The restart decision, as pure data (sans-IO).

This module is Erlang/OTP's supervisor restart logic with the IO taken out:
given the supervisor's children (in start order, with their restart types), the
child that exited, whether the exit was abnormal and the current time, it says
which children to stop, which to (re)start, which to forget, and whether the
restart intensity is exceeded.  The supervisor (``_supervisor.py``) executes the
decision; this module never touches trio, a clock or a task.

Rules (OTP's ``supervisor`` module):

* ``PERMANENT`` children are always restarted; ``TRANSIENT`` children only after
  an abnormal exit (a crash, or a cancellation nobody asked for);
  ``TEMPORARY`` children never.  A child that is not restarted is forgotten.
* A temporary child never causes its siblings to be restarted, even when it
  crashes; a child that needs no restart never counts against the intensity.
* ``ONE_FOR_ONE`` restarts the exited child only; ``ONE_FOR_ALL`` stops all
  the other children and restarts every one of them; ``REST_FOR_ONE`` stops
  and restarts the children started after the exited one.  Temporary children
  stopped as collateral are forgotten, not restarted.
* Stop lists are in reverse start order, start lists in start order.
* Intensity: a supervisor may restart at most ``max_restarts`` times within any
  ``max_seconds`` window, the window being ``(now - max_seconds, now]``.  One
  more and it gives up: it stops every child and fails, and its parent decides.

Automatic shutdown (OTP's ``auto_shutdown`` flag, with ``significant`` children):
a child that exits on its own and is not restarted (any exit of a temporary
child, a normal exit of a transient one) may end its supervisor.
:func:`auto_shutdown_due` says whether it does; significant children are
never permanent (a permanent child is always restarted, so it never "ends").

Invariants of :meth:`RestartPlanner.decide`: the exited child is never in
``stop``; ``start`` and ``forget`` are disjoint; a temporary child is never in
``start``; when ``give_up`` is true, ``start`` and ``stop`` are empty (the
supervisor stops everything itself).
"""

from __future__ import annotations

__sans_io__ = True

import enum
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AutoShutdown",
    "Decision",
    "Restart",
    "RestartPlanner",
    "Strategy",
    "auto_shutdown_due",
    "needs_restart",
]


class Restart(enum.Enum):
    """When a child is restarted (OTP's ``restart`` in a child spec)."""

    #: Always restarted, whatever the reason it exited.
    PERMANENT = "permanent"
    #: Restarted only after an abnormal exit (crash or unrequested cancellation).
    TRANSIENT = "transient"
    #: Never restarted; forgotten when it exits (e.g. one actor per connection).
    TEMPORARY = "temporary"


class Strategy(enum.Enum):
    """Which siblings are restarted with a child that needs a restart."""

    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


class AutoShutdown(enum.Enum):
    """When a supervisor shuts itself down after significant children exit (OTP's ``auto_shutdown``)."""

    #: Never (the default); significant children are then rejected.
    NEVER = "never"
    #: As soon as one significant child exits on its own and is not restarted.
    ANY_SIGNIFICANT = "any_significant"
    #: When the last significant child exits on its own and is not restarted.
    ALL_SIGNIFICANT = "all_significant"


@dataclass(frozen=True, slots=True)
class Decision:
    """What the supervisor does after a child exited.

    Attributes:
      stop: running children to stop, in the order to stop them (reverse start order).
      start: children to (re)start, in start order (includes the exited child if restarted).
      forget: children to remove from the supervisor (not restarted).
      give_up: the restart intensity is exceeded: stop everything and fail.
      restarts: restarts counted inside the current window (after this one).
    """

    stop: tuple[str, ...]
    start: tuple[str, ...]
    forget: tuple[str, ...]
    give_up: bool
    restarts: int


def needs_restart(restart: Restart, abnormal: bool) -> bool:
    """Whether a child with this restart type is restarted after this kind of exit."""
    return restart is Restart.PERMANENT or (abnormal and restart is Restart.TRANSIENT)


def auto_shutdown_due(policy: AutoShutdown, significant_left: int) -> bool:
    """Whether a supervisor shuts down after a significant child ended for good.

    Args:
      policy: the supervisor's ``auto_shutdown``.
      significant_left: significant children the supervisor still has, the one
        that ended excluded (a child waiting for its restart still counts).
    """
    if policy is AutoShutdown.ANY_SIGNIFICANT:
        return True
    return policy is AutoShutdown.ALL_SIGNIFICANT and significant_left == 0


class RestartPlanner:
    """Pure restart decisions for one supervisor, with its intensity window.

    Args:
      strategy: one_for_one, one_for_all or rest_for_one.
      max_restarts: restarts allowed within ``max_seconds`` (0: give up on the first).
      max_seconds: the length of the sliding window, in seconds (> 0).
    """

    __slots__ = ("strategy", "max_restarts", "max_seconds", "_history")

    def __init__(self, strategy: Strategy, max_restarts: int, max_seconds: float) -> None:
        if max_restarts < 0:
            raise ValueError(f"max_restarts must be >= 0, not {max_restarts!r}")
        if not max_seconds > 0:
            raise ValueError(f"max_seconds must be > 0, not {max_seconds!r}")
        self.strategy = strategy
        self.max_restarts = max_restarts
        self.max_seconds = max_seconds
        # Times of the restarts still inside the window, oldest first.  Never
        # longer than max_restarts + 1, so memory is bounded by configuration.
        self._history: deque[float] = deque()

    def restarts_in_window(self, now: float) -> int:
        """Restarts counted in ``(now - max_seconds, now]``."""
        self._prune(now)
        return len(self._history)

    def _prune(self, now: float) -> None:
        horizon = now - self.max_seconds
        history = self._history
        while history and history[0] <= horizon:
            history.popleft()

    def decide(
        self,
        children: Sequence[tuple[str, Restart]],
        exited: str,
        abnormal: bool,
        now: float,
    ) -> Decision:
        """Decide what follows the exit of child ``exited``.

        Args:
          children: every child the supervisor knows, in start order, as
            ``(id, restart)``; must contain ``exited``.
          exited: the id of the child that exited (it is no longer running).
          abnormal: it crashed or was cancelled without being asked to stop.
          now: the current time in seconds (any monotonic clock).

        Raises:
          KeyError: ``exited`` is not among ``children``.
        """
        ids = [cid for cid, _ in children]
        try:
            index = ids.index(exited)
        except ValueError:
            raise KeyError(exited) from None
        restart = children[index][1]
        if not needs_restart(restart, abnormal):
            return Decision((), (), (exited,), False, self.restarts_in_window(now))
        self._prune(now)
        self._history.append(now)
        count = len(self._history)
        if count > self.max_restarts:
            # Keep only what can still matter: the window is over-full anyway.
            while len(self._history) > self.max_restarts + 1:
                self._history.popleft()
            return Decision((), (), (), True, count)
        if self.strategy is Strategy.ONE_FOR_ONE:
            return Decision((), (exited,), (), False, count)
        if self.strategy is Strategy.ONE_FOR_ALL:
            affected = list(children)
        else:
            affected = list(children[index:])
        stop = tuple(cid for cid, _ in reversed(affected) if cid != exited)
        start = tuple(cid for cid, r in affected if cid == exited or r is not Restart.TEMPORARY)
        forget = tuple(cid for cid, r in affected if cid != exited and r is Restart.TEMPORARY)
        return Decision(stop, start, forget, False, count)
