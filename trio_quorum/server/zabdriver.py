"""What every role's ``zab`` actor does, leader or learner: run a ZAB core's effects, tick, end.

The effect contract (docs/zab.md): the effects of one core call run in
order, all of them before the core's next input; the synchronous ones
(epochs, TRUNC, SNAP, a learner's log fsync) are awaited where they stand.
A role's driver subclasses :class:`ZabDriver` with two methods:

* ``execute_now(effects)`` runs the leading effects that need no await and
  returns the rest, from the first one that does;
* ``execute_one(effect)`` awaits one such effect and returns the core's
  follow-up input, if the effect ends in one (``core.persisted(zxid)`` after
  a learner's fsync), to be fed only once the whole list has run.

:class:`NoDirectStage` is the shape of the replicated chains' own stages:
no direct path, ``handle`` is ``handle_now``.

Invariants: a driver ends once (``end``): the ``zab`` actor returns, its role
(whose ``zab`` is significant) shuts down, the peer goes LOOKING.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import trio

from actors import Context

from .request import Request

__all__ = ["NoDirectStage", "ZabDriver", "drain"]

log = logging.getLogger("trio_quorum.server.zab")


class ZabDriver:
    """The shared half of a leader's or learner's ``zab`` actor (see the module docstring)."""

    #: "leader" / "learner": log lines say whose driver ended.
    kind = "zab"

    def __init__(self, links: Any, core: Any, tick_seconds: float) -> None:
        self.links = links
        self.core = core
        self.tick_seconds = tick_seconds
        #: Why the driver ended (stepped down, leader lost), or None while it runs.
        self.ended: str | None = None
        self._stop = trio.Event()

    # ------------------------------------------------------------ effects
    def execute_now(self, effects: list[Any]) -> list[Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    async def execute_one(self, effect: Any) -> Callable[[], list[Any]] | None:  # pragma: no cover
        raise NotImplementedError

    async def execute(self, effects: list[Any]) -> None:
        """Run ``effects`` in order, awaiting the synchronous ones; then the core's follow-ups."""
        while effects:
            followups: list[Callable[[], list[Any]]] = []
            rest = self.execute_now(effects)
            while rest:
                then = await self.execute_one(rest[0])
                if then is not None:
                    followups.append(then)
                rest = self.execute_now(rest[1:])
            effects = [eff for then in followups for eff in then()]

    def end(self, reason: str) -> None:
        if self.ended is None:
            self.ended = reason
            log.warning("%s driver ends: %s", self.kind, reason)
            self._stop.set()

    # ------------------------------------------------------------ the actor
    async def begin(self) -> bool:
        """Before the inbound loop (the learner waits for its leader's link); False: ended."""
        return True

    async def on_inbound(self, item: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def now(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    async def run(self, ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *,
                  task_status: trio.TaskStatus[None]) -> None:
        """The ``zab`` actor: begin, then inbound batches and ticks until ended or asked to stop."""
        task_status.started()
        async with trio.open_nursery() as nursery:

            async def stopper() -> None:
                await self._stop.wait()
                nursery.cancel_scope.cancel(reason=f"{self.kind} driver ended: {self.ended}")

            async def stop_on_request() -> None:
                await ctx.wait_stop_requested()
                nursery.cancel_scope.cancel(reason=f"{ctx.path} asked to stop")

            async def ticker() -> None:
                while True:
                    await trio.sleep(self.tick_seconds)
                    await self.execute(self.core.tick(self.now()))

            nursery.start_soon(stopper)
            nursery.start_soon(stop_on_request)
            if not await self.begin():
                return
            nursery.start_soon(ticker)
            async for item in self.links.inbound:
                await self.on_inbound(item)


def drain(channel: Any) -> None:
    """Drop what is buffered in ``channel`` (a previous role's traffic)."""
    while True:
        try:
            channel.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            return


class NoDirectStage:
    """A chain stage with no direct path whose awaiting step is its synchronous one."""

    name = "stage"
    merge = 0
    shutdown = 5.0

    def accepts_direct(self, batch: list[Request]) -> bool:
        return False

    async def handle(self, batch: list[Request]) -> None:
        self.handle_now(batch)

    def handle_now(self, batch: list[Request]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError
