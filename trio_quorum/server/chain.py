"""A request chain: composable stages passing BATCHES, plus the direct path.

ZooKeeper's ``RequestProcessor`` chain, as data: a chain is a list of
:class:`Stage` objects (standalone: prep -> sync -> final; a leader and a
follower compose other lists from the same kind of parts).  Each stage runs
as an actor (``peer-N/<role>/<stage>``) that takes batches from its inbox,
does its work and sends the batch to the next stage; every message is a whole
batch (a trio channel message costs ~10 us, so never one per request).

:class:`Chain` is the facade the client port talks to:

* ``submit(batch)`` never blocks.  With nothing in flight and every stage
  willing (``Stage.accepts_direct``), the batch takes the **direct path**:
  each stage's ``handle_now`` runs in order in the caller's step (no stage
  hops, no thread hand-off; on this machine those cost more than the fsync a
  lone client waits for).  It contains no ``await``, so nothing interleaves:
  zxid order, per-session FIFO and "reply after sync" hold exactly as in the
  stages, which run the same methods' awaiting twins (``handle``).
* A failure in the direct path is sent to the stage whose work failed as a
  :class:`_Crash`, which that stage's actor raises: the same escalation as a
  crash in the stage itself.

Supervision (decided here, see docs/server.md): stages are started
downstream-first (final, sync, prep), so a graceful stop in reverse order
DRAINS: each stage finishes its inbox and hands it on before the next is
asked to stop.  Stages are temporary and significant: a stage is never
restarted in-process (it may have left its core half-updated), and its exit
ends the role.

Invariants: nothing is replied before the sync that covers it returned; the
tree is written only by the final stage; a chain serves one role once
(a role change builds a new chain).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import trio

from actors import TEMPORARY, ActorNotRunning, ActorRef, ChildSpec, Context, Supervisor

from .request import Request

__all__ = ["Chain", "Stage"]

log = logging.getLogger("trio_quorum.server.chain")

#: Stage inboxes are unbounded in practice: ``submit`` is called from
#: synchronous code and must never block; globalOutstandingLimit is the bound.
_INBOX = sys.maxsize


class Stage(Protocol):
    """One processor of a chain (see the module docstring)."""

    #: The actor's id under the role (``prep``, ``sync``, ``final``...).
    name: str
    #: > 0: before ``handle``, merge batches already waiting in the inbox, up
    #: to this many requests (group commit); 0: one batch at a time.
    merge: int
    #: Grace (s) a graceful stop gives this stage to drain its inbox.
    shutdown: float

    async def handle(self, batch: list[Request]) -> None:
        """Do this stage's work on ``batch`` (the chain then passes it on)."""

    def handle_now(self, batch: list[Request]) -> None:
        """The same work without awaiting: the direct path."""

    def accepts_direct(self, batch: list[Request]) -> bool:
        """False to keep ``batch`` off the direct path (e.g. a slow disk, other committers)."""


class _Crash:
    """A stage's inbox message: raise ``exc`` (its work failed in the direct path)."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Chain:
    """The stages of one role's request chain, and how batches enter it."""

    def __init__(self, stages: Sequence[Stage], *, read_check: Callable[[Request], None] | None = None,
                 confirm_session: Callable[[Any, int, int], None] | None = None) -> None:
        if not stages:
            raise ValueError("a chain needs at least one stage")
        self.stages = list(stages)
        self._read_check = read_check
        self._confirm_session = confirm_session
        self._sup: Supervisor | None = None
        # A dead ref until attached: submit raises ActorNotRunning.
        self._head: ActorRef[Any] = ActorRef(f"chain/{self.stages[0].name}")
        #: Requests handed to the stage actors and not yet through the last stage.
        self.in_flight = 0
        #: The stages run and no stop was asked: the direct path may run.
        self.running = False
        #: The direct path (tests switch it off to drive the stages).
        self.direct_enabled = True
        self.direct_batches = 0

    # ------------------------------------------------------------ the actors
    def child_specs(self) -> list[ChildSpec]:
        """The stage actors in START order: downstream first, so stopped upstream first."""
        specs = []
        for i in reversed(range(len(self.stages))):
            stage = self.stages[i]
            nxt = self.stages[i + 1].name if i + 1 < len(self.stages) else None
            specs.append(ChildSpec(stage.name, self._actor(stage, nxt), restart=TEMPORARY, mailbox=_INBOX,
                                   shutdown=stage.shutdown, significant=True))
        return specs

    def attach(self, sup: Supervisor) -> None:
        """The supervisor running :meth:`child_specs` is up: start taking batches."""
        self._sup = sup
        self._head = sup.ref(self.stages[0].name)
        self.running = True

    def detach(self) -> None:
        """No more batches (the role is stopping); what is in flight drains."""
        self.running = False

    def _actor(self, stage: Stage, nxt: str | None) -> Any:
        chain = self

        async def run_stage(ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *,
                            task_status: trio.TaskStatus[None]) -> None:
            send = ctx.supervisor.ref(nxt).send if nxt is not None else None
            receive_nowait = inbox.receive_nowait  # type: ignore[attr-defined]
            handle = stage.handle
            merge = stage.merge
            task_status.started()
            async for batch in inbox:
                if batch.__class__ is _Crash:
                    raise batch.exc
                while merge and len(batch) < merge:  # group commit: what piled up meanwhile
                    try:
                        more = receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                    if more.__class__ is _Crash:
                        raise more.exc
                    batch = batch + more
                await handle(batch)
                if send is None:
                    chain.in_flight -= len(batch)
                    continue
                try:
                    await send(batch)
                except ActorNotRunning:
                    # Only while the role is failing (a later stage is gone): this
                    # batch cannot be completed, its clients get no reply.
                    log.warning("%s: next stage is gone, dropping a batch of %d requests", ctx.path, len(batch))
                    return

        run_stage.__qualname__ = f"stage:{stage.name}"
        return run_stage

    # ------------------------------------------------------------ entry
    def confirm_session(self, conn: Any, session_id: int, timeout: int) -> None:
        """A reconnect checked out locally: finish the handshake (a learner asks its leader first)."""
        if self._confirm_session is not None:
            self._confirm_session(conn, session_id, timeout)
        else:
            conn.finish_session_init(session_id, timeout, True)

    def check_read(self, req: Request) -> None:
        """The session check this role does for a read a connection answers itself (sets ``req.err``)."""
        if self._read_check is not None:
            self._read_check(req)

    def submit(self, batch: list[Request]) -> None:
        """Process a batch: now, in the caller (direct path), or queued for the first stage.

        Never blocks.  Replies are delivered to the connections either way.

        Raises:
          ActorNotRunning: the chain is not running (stopping, failed, or gone).
        """
        if self.in_flight == 0 and self.running and self.direct_enabled:
            for stage in self.stages:
                if not stage.accepts_direct(batch):
                    break
            else:
                self._run_direct(batch)
                return
        self._head.send_nowait(batch)
        self.in_flight += len(batch)

    def _run_direct(self, batch: list[Request]) -> None:
        for stage in self.stages:
            try:
                stage.handle_now(batch)
            except BaseException as exc:
                return self._crash(stage.name, exc, batch)
        self.direct_batches += 1
        return None

    def _crash(self, name: str, exc: BaseException, batch: list[Request]) -> None:
        """Make stage ``name`` raise ``exc``: the role ends, the peer escalates."""
        self.running = False  # no more direct batches: the state is not to be trusted
        log.error("direct path: %s failed on a batch of %d requests: %r", name, len(batch), exc)
        if self._sup is None:
            raise exc
        try:
            self._sup.ref(name).send_nowait(_Crash(exc))
        except ActorNotRunning:
            log.warning("%s is gone; %r not escalated through it", name, exc)
