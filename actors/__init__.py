"""actors: supervised actors for Trio (Erlang/OTP supervision, Trio structured concurrency).

An actor is ``async def run(ctx, inbox, *, task_status)``; a supervisor is an
``async with open_supervisor(...)`` block that starts children in order,
restarts them by strategy within a restart intensity, stops them in reverse
order (ask, grace, cancel with a reason) and publishes every lifecycle step as
a typed event.  This package knows nothing of any particular service.

See ``docs/actors.md``.  Test helpers live in :mod:`actors.testing`.

Constants have one spelling, the enum member: ``Restart.TEMPORARY``,
``Strategy.ONE_FOR_ALL``, ``AutoShutdown.ANY_SIGNIFICANT``.  The bare names
``TEMPORARY``, ``ONE_FOR_ONE``, ``ONE_FOR_ALL`` and ``REST_FOR_ONE`` are kept
as plain aliases of those members only because existing callers import them.
"""

#: The version of the actors library (its own, not the distribution's).
__version__ = "0.2.0"

from ._context import (
    ActorFn,
    ActorTree,
    ChildSpec,
    Context,
    ParentSupervisor,
    SupervisorStatistics,
)
from ._errors import (
    ActorError,
    ActorNotRunning,
    CallTimeout,
    ChildStartFailed,
    MessageReplaced,
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
    LifecycleEvent,
    Subscription,
    SupervisorAutoShutdown,
)
from ._exits import ChildExit
from ._mailbox import LATEST, ActorRef, Call
from ._open import open_supervisor, supervisor_spec
from ._strategy import (
    AutoShutdown,
    Decision,
    Restart,
    RestartPlanner,
    Strategy,
    auto_shutdown_due,
    needs_restart,
)
from ._supervisor import Supervisor

# Aliases (see the module docstring): same objects as the enum members.
TEMPORARY = Restart.TEMPORARY
ONE_FOR_ONE = Strategy.ONE_FOR_ONE
ONE_FOR_ALL = Strategy.ONE_FOR_ALL
REST_FOR_ONE = Strategy.REST_FOR_ONE

__all__ = [
    "LATEST",
    "ONE_FOR_ALL",
    "ONE_FOR_ONE",
    "REST_FOR_ONE",
    "TEMPORARY",
    "ActorCancelled",
    "ActorCrashed",
    "ActorError",
    "ActorFn",
    "ActorGaveUp",
    "ActorNotRunning",
    "ActorRef",
    "ActorRestarted",
    "ActorStarted",
    "ActorStarting",
    "ActorStopped",
    "ActorStopping",
    "ActorTree",
    "AutoShutdown",
    "Call",
    "CallTimeout",
    "ChildExit",
    "ChildSpec",
    "ChildStartFailed",
    "Context",
    "Decision",
    "EventBus",
    "LifecycleEvent",
    "MessageReplaced",
    "ParentSupervisor",
    "Restart",
    "RestartPlanner",
    "Strategy",
    "Subscription",
    "Supervisor",
    "SupervisorAutoShutdown",
    "SupervisorError",
    "SupervisorGaveUp",
    "SupervisorStatistics",
    "auto_shutdown_due",
    "needs_restart",
    "open_supervisor",
    "supervisor_spec",
]
