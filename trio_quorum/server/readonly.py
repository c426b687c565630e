"""Read-only mode: what a LOOKING peer serves with ``readonlymode.enabled`` (ZooKeeper's ``ReadOnlyZooKeeperServer``).

A peer cut off from its quorum keeps answering clients that asked for a
read-only session (ConnectRequest ``readOnly`` true, kazoo ``read_only=True``)
from the tree it has, until an election decides.  The role loop
(``quorumpeer.py``) starts this subtree when the peer goes LOOKING and stops
it as soon as the election returns, before the elected role starts::

    peer-N/read-only          one_for_one, auto_shutdown: any significant child
      final, read-only        the chain (significant): read-only -> final
      startup                 serves after the grace period (ZooKeeper: max(2 s, tickTime))
      session-expirer         expires the local sessions

* ``read-only`` (``ReadOnlyRequestProcessor``): sync, create(2/TTL/Container),
  delete(Container), setData, reconfig, setACL, multi and check are answered
  NOTREADONLY (a bare reply header), in order with the other replies of the
  connection (ZooKeeper answers them from that processor's thread, so there
  they may overtake an earlier read's reply; here they never do).
* ``final`` (``PrepRequestProcessor`` + ``FinalRequestProcessor`` of a server
  whose sessions are all local): a session check for every request, reads
  answered from the tree, createSession answered with the ConnectResponse,
  closeSession (the client's or the expirer's) closes the local session and
  its connection.  No request makes a txn: nothing is logged, no zxid moves.

Sessions (``ReadOnlyZooKeeperServer`` uses a ``LearnerSessionTracker`` whose
new sessions are local): a session created here lives in a tracker of its
own, never in the tree's session table, the log or a snapshot; its id has the
usual shape (``myid`` in the high byte), it expires here, and it is forgotten
when the subtree stops: the client's next server, a read-write one, answers
"session expired" and the client starts a new session (kazoo does).  A client
reconnecting with a GLOBAL session (one in the tree) is refused ("Refusing
global session reconnection in RO mode"); a client that did not ask for
read-only is refused too (``connection.py``).

Differences from ZooKeeper 3.8.0, on purpose: ZooKeeper makes new sessions
local only with ``localSessionsEnabled=true``; without it, 3.8.0's read-only
server answers a new session's createSession with a bare NOTREADONLY header,
which clients cannot parse (no read-only session can be opened).  Here new
read-only sessions are always local, whatever ``localSessionsEnabled`` says.

Invariants: the tree is only read (this subtree has no writer); the client
port routes to this chain only between ``startup``'s attach and the subtree's
stop, and uses the local session tracker for exactly that time; every
connection is closed when the subtree stops (``roles.run_chain_role``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import trio

from actors import TEMPORARY, ChildSpec, Context

from ..core.sessions import SessionTracker
from ..protocol.consts import Err, KeeperError, OpCode
from ..protocol.records import encode_reply
from .chain import Chain
from .clientport import ClientPort
from .request import UNIMPLEMENTED, Client, Request, conn_timeout
from .roles import run_chain_role
from .state import PeerState

__all__ = ["WRITE_OPS", "LocalSessionFinalStage", "ReadOnlyStage", "grace_period", "read_only_role"]

log = logging.getLogger("trio_quorum.server.readonly")

#: What ``ReadOnlyRequestProcessor`` answers NOTREADONLY.
WRITE_OPS = frozenset(
    int(o) for o in (
        OpCode.sync, OpCode.create, OpCode.create2, OpCode.createTTL, OpCode.createContainer,
        OpCode.delete, OpCode.deleteContainer, OpCode.setData, OpCode.reconfig, OpCode.setACL,
        OpCode.multi, OpCode.check,
    )
)
_NOTREADONLY = int(Err.NOTREADONLY)
_CREATE_SESSION = int(OpCode.createSession)
_CLOSE_SESSION = int(OpCode.closeSession)


def grace_period(tick_time_ms: int) -> float:
    """Seconds a LOOKING peer waits before it serves read-only (``QuorumPeer``: max(2000, tickTime) ms)."""
    return max(2000, tick_time_ms) / 1000


def local_session_tracker(state: PeerState) -> SessionTracker:
    """A tracker for the read-only server's local sessions: ids seeded from ``myid`` and the wall clock."""
    cfg = state.config
    tracker = SessionTracker(cfg.my_id, state.wall_ms(), tick_time=cfg.tick_time,
                             min_session_timeout=cfg.min_session_timeout,
                             max_session_timeout=cfg.max_session_timeout)
    tracker.restore({}, state.now_ms())  # the id seed wanted wall time; the buckets want our clock
    # Never an id the peer's own tracker handed out (both seed from myid and the clock:
    # seeded in the same millisecond they would start equal).
    tracker.next_session_id = max(tracker.next_session_id, state.tracker.next_session_id)
    return tracker


class ReadOnlyStage:
    """``ReadOnlyRequestProcessor``: state-changing requests are answered NOTREADONLY (by ``final``, in order)."""

    name = "read-only"
    merge = 0
    shutdown = 5.0

    def accepts_direct(self, batch: list[Request]) -> bool:
        return True

    async def handle(self, batch: list[Request]) -> None:
        self.handle_now(batch)

    def handle_now(self, batch: list[Request]) -> None:
        for req in batch:
            if req.type in WRITE_OPS:
                req.err = _NOTREADONLY


class LocalSessionFinalStage:
    """Session checks, reads, and the local sessions' create / close (see the module docstring)."""

    name = "final"
    merge = 0
    shutdown = 5.0

    def __init__(self, state: PeerState, sessions: SessionTracker, clients: ClientPort) -> None:
        self.state = state
        self.sessions = sessions
        self.clients = clients

    def accepts_direct(self, batch: list[Request]) -> bool:
        return self.state.tree_trusted

    async def handle(self, batch: list[Request]) -> None:
        self.handle_now(batch)

    def check(self, req: Request) -> None:
        """The session check of a request (``PrepRequestProcessor``'s): sets ``req.err``."""
        if req.err:
            return
        if req.record is UNIMPLEMENTED:
            req.err = Err.UNIMPLEMENTED
            return
        try:
            self.sessions.check_session(req.session_id, req.conn)
        except KeeperError as exc:
            req.err = exc.code

    def handle_now(self, batch: list[Request]) -> None:
        state = self.state
        sessions = self.sessions
        out: dict[Client, list[bytes]] = {}
        to_close: list[Client] = []
        for req in batch:
            typ = req.type
            conn = req.conn
            if typ == _CREATE_SESSION:
                if conn is not None:
                    sid = req.session_id
                    conn.finish_session_init(sid, conn_timeout(req), sid in sessions and not sessions.is_closing(sid))
                continue
            if typ == _CLOSE_SESSION and not req.err:
                # The client's closeSession, or the expirer's (conn None): no txn, the session is local.
                sessions.remove(req.session_id)
                target = conn or self.clients.connection_for(req.session_id)
                if conn is not None:
                    out.setdefault(conn, []).append(encode_reply(req.xid, state.last_zxid, 0))
                if target is not None:
                    to_close.append(target)
                continue
            if conn is None:
                continue
            self.check(req)
            frames = out.setdefault(conn, [])
            try:
                state.answer_read(req, frames)
            except Exception:  # a read changes nothing: SYSTEMERROR for it, serve on
                log.exception("internal error processing %s (type %s)", req.record, req.type)
                frames.append(encode_reply(req.xid, state.last_zxid, Err.SYSTEMERROR))
        for target, frames in out.items():
            target.deliver(frames)
        self._account(batch)
        for target in to_close:
            target.close_after_flush()

    def _account(self, batch: list[Request]) -> None:
        state = self.state
        st = state.stats
        now = state.now_ms()
        zxid = state.last_zxid
        st.outstanding -= len(batch)
        for req in batch:
            conn = req.conn
            if conn is None:
                continue
            conn.outstanding -= 1
            st.update_latency(now - req.start)
            conn.stats.update_for_response(req.xid, zxid, req.type, req.start, now)
        self.clients.outstanding_released()


def read_only_role(state: PeerState, clients: ClientPort, *, on_serving: Callable[[bool], None],
                   grace: float | None = None) -> ChildSpec:
    """The ``read-only`` subtree as a child spec of the peer (temporary; the role loop stops it).

    ``on_serving(True)`` once clients are served read-only (after ``grace``
    seconds, default :func:`grace_period`), ``on_serving(False)`` when that ends.
    """
    wait = grace_period(state.config.tick_time) if grace is None else grace

    async def run_role(ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *,
                       task_status: trio.TaskStatus[Chain]) -> None:
        sessions = local_session_tracker(state)
        final = LocalSessionFinalStage(state, sessions, clients)
        chain = Chain([ReadOnlyStage(), final], read_check=final.check)

        async def startup(ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *,
                          task_status: trio.TaskStatus[None]) -> None:
            task_status.started()
            # Partitioned, or only electing?  ZooKeeper waits before it decides.
            with trio.move_on_after(wait):
                await ctx.wait_stop_requested()
            if ctx.stop_requested or not chain.running:
                return
            clients.attach_local_sessions(sessions)
            clients.attach_chain(chain)
            on_serving(True)
            log.info("Read-only server started (LOOKING for %.1f s)", wait)
            await ctx.wait_stop_requested()

        children = chain.child_specs() + [
            ChildSpec("startup", startup, restart=TEMPORARY, mailbox=0, shutdown=1.0),
            ChildSpec("session-expirer", _local_session_expirer(state, sessions, clients), mailbox=0,
                      shutdown=1.0),
        ]
        try:
            await run_chain_role(ctx, chain, children, clients, None, task_status, serve_now=False)
        finally:
            on_serving(False)
            clients.detach_local_sessions(sessions)
            # A client may still hold a local id; the peer's tracker must never hand it out
            # again (the password derives from the id).
            tracker = state.tracker
            tracker.next_session_id = max(tracker.next_session_id, sessions.next_session_id)

    return ChildSpec("read-only", run_role, restart=TEMPORARY, mailbox=0, shutdown=float("inf"))


def _local_session_expirer(state: PeerState, sessions: SessionTracker, clients: ClientPort) -> Any:
    async def session_expirer(ctx: Context, inbox: trio.abc.ReceiveChannel[Any], *,
                              task_status: trio.TaskStatus[None]) -> None:
        """The local tracker's expiry: sleep to the next bucket, submit closeSession for what expired."""
        task_status.started()
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:

                async def cancel_on_stop() -> None:
                    await ctx.wait_stop_requested()
                    scope.cancel(reason=f"{ctx.path} asked to stop")

                nursery.start_soon(cancel_on_stop)
                while True:
                    nxt = sessions.next_expiration_time()
                    # The client port sets it on every createSession (a new bucket may be earlier).
                    state.expirer_wakeup = trio.Event()
                    if nxt is None:
                        await state.expirer_wakeup.wait()
                        continue
                    with trio.move_on_at(nxt / 1000):
                        await state.expirer_wakeup.wait()
                    now = state.now_ms()
                    batch = []
                    for sid in sessions.expire(now):
                        log.info("Expiring local session 0x%x, timeout of %sms exceeded",
                                 sid & 0xFFFFFFFFFFFFFFFF, sessions.timeout_of(sid))
                        batch.append(Request(None, sid, 0, _CLOSE_SESSION, None, now))
                    if batch:
                        clients.submit(batch)

    return session_expirer
