"""actors: supervised actors for Trio (Erlang/OTP supervision, Trio structured concurrency).

An actor is ``async def run(ctx, inbox, *, task_status)``; a supervisor is an
``async with open_supervisor(...)`` block that starts children in order,
restarts them by strategy within a restart intensity, stops them in reverse
order (ask, grace, cancel with a reason) and publishes every lifecycle step as
a typed event.  This package knows nothing of any particular service.

See ``docs/actors.md``.  Test helpers live in :mod:`actors.testing`.
"""

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
)
from ._mailbox import LATEST, ActorRef, Call
from ._strategy import Decision, Restart, RestartPlanner, Strategy, needs_restart
from ._supervisor import (
    ActorFn,
    ActorTree,
    ChildSpec,
    Context,
    Supervisor,
    SupervisorStatistics,
    open_supervisor,
    supervisor_spec,
)

PERMANENT = Restart.PERMANENT
TRANSIENT = Restart.TRANSIENT
TEMPORARY = Restart.TEMPORARY
ONE_FOR_ONE = Strategy.ONE_FOR_ONE
ONE_FOR_ALL = Strategy.ONE_FOR_ALL
REST_FOR_ONE = Strategy.REST_FOR_ONE

__all__ = [
    "LATEST",
    "ONE_FOR_ALL",
    "ONE_FOR_ONE",
    "PERMANENT",
    "REST_FOR_ONE",
    "TEMPORARY",
    "TRANSIENT",
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
    "Call",
    "CallTimeout",
    "ChildSpec",
    "ChildStartFailed",
    "Context",
    "Decision",
    "EventBus",
    "LifecycleEvent",
    "MessageReplaced",
    "Restart",
    "RestartPlanner",
    "Strategy",
    "Subscription",
    "Supervisor",
    "SupervisorError",
    "SupervisorGaveUp",
    "SupervisorStatistics",
    "needs_restart",
    "open_supervisor",
    "supervisor_spec",
]
