"""The Trio driver of a ZooKeeper session: connections, reconnects, pings, request dispatch.

:class:`SessionDriver` owns one :class:`~.core.ClientCore` and the tasks that
serve it, all in a nursery opened by :func:`~trio_quorum.client.open_client`
(the user never sees it):

* ``_run_session`` connects to the hosts in shuffled order, one after the
  other, with a capped exponential backoff between failed rounds; each
  connection resumes the same session (ConnectRequest with the session id,
  password and ``lastZxidSeen``) and re-sends watches and auth data.
* per connection, a reader task feeds frames to the core and wakes the tasks
  whose replies arrived; a keeper task sends a ping after ``timeout/3`` without
  sending and drops the connection after ``2*timeout/3`` without receiving
  (the Java client's ``readTimeout``), so a dead server is left in bounded time.
* requests are written by the calling task itself (no writer task: one
  scheduler round less per call); whoever finds the socket idle writes every
  queued frame, in submission order, so many callers pipeline into one
  ``send_all``.  The write is shielded: a cancelled caller never leaves half a
  frame on the wire; it abandons its reply instead.

A final state (expired, auth failed) fails every call, ends every watch
iterator with the error, and cancels the ``open_client`` block, which then
raises the error.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import trio

from ..protocol.consts import Err, OpCode
from ..protocol.framing import FrameDecoder
from .core import (
    FINAL_STATES,
    AuthReply,
    ClientCore,
    ClientProtocolError,
    Notification,
    Pending,
    SessionState,
    WatchedEvent,
    WatchKind,
)
from .errors import (
    AuthFailedError,
    ClientClosedError,
    ConnectionLoss,
    SessionExpiredError,
    ZookeeperError,
    error_for,
)
from .hosts import ConnectString

__all__ = ["SessionDriver", "EventQueue"]

_DONE = object()        # Pending.waiter: the reply came before the caller started waiting
_ABANDONED = object()   # Pending.waiter: the caller was cancelled; drop the reply
_RECV = 256 * 1024
_NET_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError, ClientProtocolError, ConnectionLoss)


class EventQueue:
    """An unbounded queue one consumer reads with ``await get()``; ``close`` ends it.

    Watches and state iterators use it: the reader task must never block on a
    slow consumer, so delivery is a synchronous append.
    """

    __slots__ = ("_items", "_wakeup", "_closed", "_error")

    def __init__(self) -> None:
        self._items: deque[Any] = deque()
        self._wakeup = trio.Event()
        self._closed = False
        self._error: BaseException | None = None

    def put(self, item: Any) -> None:
        if not self._closed:
            self._items.append(item)
            self._wakeup.set()

    def close(self, error: BaseException | None = None) -> None:
        if not self._closed:
            self._closed = True
            self._error = error
            self._wakeup.set()

    @property
    def closed(self) -> bool:
        return self._closed

    async def get(self) -> Any:
        """The next item; raises the closing error, or StopAsyncIteration once closed and empty."""
        while not self._items:
            if self._closed:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            if self._wakeup.is_set():
                self._wakeup = trio.Event()
            await self._wakeup.wait()
        return self._items.popleft()


class _AuthWaiter:
    __slots__ = ("done", "err")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.err = 0


class SessionDriver:
    """One ZooKeeper session over successive connections (see the module docstring)."""

    def __init__(self, connect: ConnectString, *, session_timeout: float, read_only: bool = False,
                 auth: list[tuple[str, bytes]] | None = None, ssl_context: Any = None,
                 connect_timeout: float | None = None, max_backoff: float = 1.0) -> None:
        self._hosts = list(connect.hosts)
        self.chroot = connect.chroot
        self._core = ClientCore(int(session_timeout * 1000), read_only=read_only)
        for scheme, cred in auth or ():
            self._core.auth_data.append((scheme, cred))
        self._ssl = ssl_context
        self._connect_timeout = connect_timeout
        self._max_backoff = max_backoff
        self._stream: trio.abc.Stream | None = None
        self._conn_scope: trio.CancelScope | None = None
        self._connected = trio.Event()
        self._sending = False
        self._last_send = 0.0
        self._last_recv = 0.0
        self._state_queues: list[EventQueue] = []
        self._watch_queues: set[EventQueue] = set()
        self._fatal: ZookeeperError | None = None
        self._body_scope: trio.CancelScope | None = None
        self._closing = False
        #: (host, port) of the server this client is connected to, None between connections
        self.server: tuple[str, int] | None = None
        #: every (host, port) connected to, in order (tests and the chaos runner read it)
        self.connections: list[tuple[str, int]] = []

    # ---------------------------------------------------------------- public state

    @property
    def state(self) -> SessionState:
        return self._core.state

    @property
    def session_id(self) -> int:
        return self._core.session_id

    @property
    def session_timeout(self) -> float:
        """The negotiated session timeout in seconds (0 before the first connection)."""
        return self._core.negotiated_timeout_ms / 1000

    @property
    def last_zxid(self) -> int:
        return self._core.last_zxid

    @property
    def connected(self) -> bool:
        return self._core.state in (SessionState.CONNECTED, SessionState.CONNECTED_READ_ONLY)

    async def session_states(self) -> AsyncIterator[SessionState]:
        """The current state, then every change, until a final state (yielded last)."""
        q = EventQueue()
        q.put(self._core.state)
        if self._core.state in FINAL_STATES:
            q.close()
        self._state_queues.append(q)
        try:
            while True:
                try:
                    st = await q.get()
                except StopAsyncIteration:
                    return
                yield st
        finally:
            if q in self._state_queues:
                self._state_queues.remove(q)

    async def wait_connected(self) -> None:
        """Wait until connected (raises the final error, or ClientClosedError)."""
        while not self.connected:
            self._check_final()
            await self._connected.wait()

    def _set_state(self, st: SessionState) -> None:
        if self._core.state is not st:
            self._core.state = st
        for q in self._state_queues:
            q.put(st)
            if st in FINAL_STATES:
                q.close()

    def _check_final(self) -> None:
        if self._fatal is not None:
            raise type(self._fatal)(self._fatal.path)
        if self._closing:
            raise ClientClosedError()

    # ---------------------------------------------------------------- calls

    async def _call(self, opcode: int, record: Any = None, path: str | None = None,
                    watch: tuple[WatchKind, object] | None = None) -> Any:
        """Send one request and wait for its reply; raise its error as an exception.

        Cancelled while waiting, the reply is dropped when it comes (the request
        itself may still take effect on the server, as in every ZooKeeper client).
        """
        core = self._core
        if not self.connected:
            await self.wait_connected()
        p = core.submit(opcode, record, path=path, watch=watch)
        if not self._sending:
            await self._send_queued()
        await self._wait_reply(p)
        if p.err:
            raise error_for(p.err, self._strip(path))
        return p.result

    async def _wait_reply(self, p: Pending) -> None:
        if p.waiter is _DONE:
            return
        p.waiter = trio.lowlevel.current_task()

        def abort(_: Any) -> trio.lowlevel.Abort:
            p.waiter = _ABANDONED
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def _strip(self, path: str | None) -> str | None:
        if path is None or not self.chroot:
            return path
        if path.startswith(self.chroot):
            return path[len(self.chroot):] or "/"
        return path

    async def _send_queued(self) -> None:
        """Write every queued frame; shielded so no frame is ever cut (see the module docstring)."""
        stream = self._stream
        core = self._core
        if stream is None or not core.outbox:
            return
        self._sending = True
        try:
            with trio.CancelScope(shield=True):
                while core.outbox and self._stream is stream:
                    data = core.take_outbox()
                    await stream.send_all(data)
                    self._last_send = trio.current_time()
        except _NET_ERRORS:
            self._drop_connection()
        finally:
            self._sending = False

    def _drop_connection(self) -> None:
        if self._conn_scope is not None:
            self._conn_scope.cancel()

    async def add_auth(self, scheme: str, credential: bytes | str) -> None:
        """Authenticate with ``scheme`` (e.g. ``"digest"``, ``"user:pass"``) on this session.

        The credential is kept and re-sent on every later connection.

        Raises:
            AuthFailedError: the server refused it (the session is then unusable).
        """
        cred = credential.encode() if isinstance(credential, str) else credential
        await self.wait_connected()
        w = _AuthWaiter()
        self._core.add_auth(scheme, cred, w)
        if not self._sending:
            await self._send_queued()
        await w.done.wait()
        if w.err:
            raise error_for(w.err)

    def _queue(self) -> EventQueue:
        q = EventQueue()
        if self._fatal is not None:
            q.close(type(self._fatal)())
        self._watch_queues.add(q)
        return q

    def _forget(self, q: EventQueue) -> list[tuple[WatchKind, str, bool]]:
        self._watch_queues.discard(q)
        q.close()
        return self._core.remove_watcher(q)

    # ---------------------------------------------------------------- dispatch

    def _dispatch(self, results: list[Pending | Notification | AuthReply]) -> None:
        reschedule = trio.lowlevel.reschedule
        for r in results:
            if type(r) is Pending:
                w = r.waiter
                if w is None:
                    r.waiter = _DONE
                elif w is not _ABANDONED and w is not _DONE:
                    r.waiter = _DONE
                    reschedule(w)
            elif type(r) is Notification:
                ev = r.event
                if self.chroot:
                    ev = WatchedEvent(ev.type, ev.state, self._strip(ev.path) or "/")
                for q in r.watchers:
                    if isinstance(q, EventQueue):
                        q.put(ev)
            elif type(r) is AuthReply:
                if isinstance(r.waiter, _AuthWaiter):
                    r.waiter.err = r.err
                    r.waiter.done.set()
                if r.err == Err.AUTHFAILED:
                    self._finish(AuthFailedError(), SessionState.AUTH_FAILED)

    def _fail(self, failed: list[Pending]) -> None:
        self._dispatch(list(failed))

    def _finish(self, error: ZookeeperError, state: SessionState) -> None:
        """Enter a final state: fail everything, end watches, cancel the user's block."""
        if self._fatal is None and not self._closing:
            self._fatal = error
        self._fail(self._core.fail_all(state, error.code))
        self._set_state(state)
        for q in list(self._watch_queues):
            q.close(type(error)())
        self._watch_queues.clear()
        self._connected.set()  # wake wait_connected, which raises
        self._drop_connection()
        if self._body_scope is not None and self._fatal is error:
            self._body_scope.cancel()

    # ---------------------------------------------------------------- connections

    async def _run_session(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        hosts = self._hosts[:]
        random.shuffle(hosts)
        backoff = 0.0
        started = False
        n = len(hosts)
        timeout = self._connect_timeout or max(self._core.session_timeout_ms / 1000 / n, 0.5)
        i = 0
        while self._core.state not in FINAL_STATES and not self._closing:
            host, port = hosts[i % n]
            i += 1
            try:
                await self._serve_connection(host, port, timeout, task_status if not started else None)
                started = True
                backoff = 0.0
            except SessionExpiredError as exc:
                self._finish(exc, SessionState.EXPIRED)
                if not started:
                    raise
                return
            except (*_NET_ERRORS, trio.TooSlowError):
                pass
            finally:
                self._stream = None
                self.server = None
                self._connected = trio.Event() if self._connected.is_set() else self._connected
                if self._core.state not in FINAL_STATES:
                    self._fail(self._core.connection_lost())
                    if self._core.session_id:
                        self._set_state(SessionState.SUSPENDED)
            if self._core.state in FINAL_STATES or self._closing:
                return
            if i % n == 0:  # a whole round failed: back off (jittered, capped)
                backoff = min(self._max_backoff, max(0.05, backoff * 2))
                await trio.sleep(backoff * (0.5 + random.random() / 2))

    async def _serve_connection(self, host: str, port: int, limit: float,
                                task_status: trio.TaskStatus[None] | None) -> None:
        core = self._core
        with trio.fail_after(limit):
            stream: trio.abc.Stream
            if self._ssl is not None:
                stream = await trio.open_ssl_over_tcp_stream(host, port, ssl_context=self._ssl)
            else:
                stream = await trio.open_tcp_stream(host, port)
            try:
                await stream.send_all(core.connect_frame())
                decoder = FrameDecoder(four_letter_words=False)
                frames: list[Any] = []
                while not frames:
                    data = await stream.receive_some(_RECV)
                    if not data:
                        raise ConnectionLoss()
                    decoder.feed(data)
                    frames = decoder.frames()
                core.connected(frames[0])
            except BaseException:
                with trio.CancelScope(shield=True):
                    await stream.aclose()
                raise
        try:
            now = trio.current_time()
            self._last_recv = self._last_send = now
            self._stream = stream
            self.server = (host, port)
            self.connections.append((host, port))
            rest = frames[1:]
            async with trio.open_nursery() as nursery:
                self._conn_scope = nursery.cancel_scope
                await self._send_queued()  # setWatches and auth first, before any request
                self._set_state(core.state)
                self._connected.set()
                if task_status is not None:
                    task_status.started()
                nursery.start_soon(self._keep_alive)
                try:
                    await self._read(stream, decoder, rest)
                except _NET_ERRORS:
                    pass  # the connection is over; the session loop connects again
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            self._conn_scope = None
            self._stream = None
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _read(self, stream: trio.abc.Stream, decoder: FrameDecoder, frames: list[Any]) -> None:
        core = self._core
        if frames:
            self._dispatch(core.receive(frames))
        receive = stream.receive_some
        while True:
            data = await receive(_RECV)
            if not data:
                raise ConnectionLoss()
            self._last_recv = trio.current_time()
            decoder.feed(data)
            results = core.receive(decoder.frames())
            if results:
                self._dispatch(results)
            if core.outbox and not self._sending:
                await self._send_queued()

    async def _keep_alive(self) -> None:
        """Ping after timeout/3 without a send; drop the connection after 2*timeout/3 without a receive."""
        t = self._core.negotiated_timeout_ms / 1000
        read_timeout = t * 2 / 3
        ping_every = t / 3
        while True:
            now = trio.current_time()
            if now - self._last_recv >= read_timeout:
                self._drop_connection()
                return
            if now - self._last_send >= ping_every:
                self._last_send = now  # sent now, or by the task that is sending
                self._core.outbox.append(self._core.ping_frame())
                if not self._sending:
                    await self._send_queued()
                continue
            await trio.sleep_until(min(self._last_send + ping_every, self._last_recv + read_timeout))

    # ---------------------------------------------------------------- closing

    async def _close_session(self, limit: float) -> None:
        """closeSession (bounded), then the final CLOSED state."""
        if self._fatal is None and self.connected:
            self._closing = True  # the server closes the connection after the reply: no reconnect
            with trio.move_on_after(limit) as scope:
                scope.shield = True
                try:
                    await self._call(OpCode.closeSession)
                except ZookeeperError:
                    pass
        self._closing = True
        self._fail(self._core.fail_all(SessionState.CLOSED, Err.CONNECTIONLOSS))
        self._set_state(SessionState.CLOSED)
        for q in list(self._watch_queues):
            q.close(ClientClosedError())
        self._connected.set()


