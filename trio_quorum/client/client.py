"""``open_client``: a ZooKeeper session whose lifetime is an ``async with`` block.

The session's tasks (connection loop, reader, keep-alive) run in a nursery
inside the block; the block's body runs in a cancel scope the session can
cancel.  On a clean exit the session is closed (closeSession, bounded) and
every task ends before ``open_client`` returns.  If the session expires (or
an auth packet is refused) the body is cancelled and the block raises
:class:`~.errors.SessionExpiredError` (:class:`~.errors.AuthFailedError`).
An exception from the body leaves the block as itself, not wrapped in an
exception group: the body's exception is caught at the ``yield``, the
session's nursery is cancelled, and the exception is re-raised after it
closed (the session's own tasks never raise out of the nursery).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import trio

from .errors import ConnectionLoss
from .hosts import parse_connect_string
from .ops import Operations
from .recipes.barrier import Barrier, DoubleBarrier
from .recipes.counter import Counter
from .recipes.election import Election
from .recipes.lock import Lock
from .recipes.semaphore import Semaphore

__all__ = ["Client", "open_client"]


class Client(Operations):
    """A ZooKeeper session: the operations (:class:`~.ops.Operations`) and the recipes."""

    def lock(self, path: str, identifier: str = "") -> Lock:
        """A mutex: ``async with zk.lock("/locks/x"):`` (kazoo's znode layout)."""
        return Lock(self, path, identifier)

    def election(self, path: str, identifier: str = "") -> Election:
        """Leader election: ``async with zk.election(p).run() as leadership:`` (see Election)."""
        return Election(self, path, identifier)

    def counter(self, path: str, default: int = 0) -> Counter:
        return Counter(self, path, default)

    def barrier(self, path: str) -> Barrier:
        return Barrier(self, path)

    def double_barrier(self, path: str, num_clients: int, identifier: str = "") -> DoubleBarrier:
        return DoubleBarrier(self, path, num_clients, identifier)

    def semaphore(self, path: str, max_leases: int = 1, identifier: str = "") -> Semaphore:
        return Semaphore(self, path, max_leases, identifier)


@asynccontextmanager
async def open_client(
    hosts: str,
    *,
    session_timeout: float = 10.0,
    auth: Sequence[tuple[str, bytes | str]] = (),
    read_only: bool = False,
    ssl_context: ssl.SSLContext | None = None,
    connect_timeout: float | None = None,
    start_timeout: float = 15.0,
    close_timeout: float = 5.0,
) -> AsyncIterator[Client]:
    """Open a session on one of ``hosts`` (``"h1:2181,h2:2181/chroot"``) for the block.

    Args:
        session_timeout: seconds to ask for (the server bounds it by its
            min/maxSessionTimeout; ``zk.session_timeout`` is what it granted).
        auth: ``(scheme, credential)`` pairs sent on every connection
            (e.g. ``[("digest", "user:pass")]``).
        read_only: accept read-only servers (``CONNECTED_READ_ONLY`` state).
        ssl_context: TLS to the servers' secure client port.
        connect_timeout: per-attempt bound on TCP connect + handshake
            (default: session_timeout / number of hosts, at least 0.5 s).
        start_timeout: bound on the first connection.
        close_timeout: bound on closeSession when leaving.

    Raises:
        ConnectionLoss: no server could be reached within ``start_timeout``.
        SessionExpiredError: the session expired while the block ran.
        AuthFailedError: a server refused the auth data.
    """
    cs = parse_connect_string(hosts)
    creds = [(s, c.encode() if isinstance(c, str) else bytes(c)) for s, c in auth]
    zk = Client(cs, session_timeout=session_timeout, read_only=read_only, auth=creds,
                ssl_context=ssl_context, connect_timeout=connect_timeout)
    error: BaseException | None = None
    async with trio.open_nursery() as nursery:
        # nothing raises inside the nursery's body (it would come out wrapped in an
        # exception group): errors are kept and raised once the nursery closed
        try:
            with trio.move_on_after(start_timeout) as starting:
                await nursery.start(zk._run_session)
            if starting.cancelled_caught:
                error = ConnectionLoss(f"could not connect to {hosts} within {start_timeout}s")
        except BaseException as exc:
            error = exc
        if error is not None:
            nursery.cancel_scope.cancel()
        else:
            try:
                with trio.CancelScope() as body:
                    zk._body_scope = body
                    yield zk
            except BaseException as exc:
                error = exc
            finally:
                zk._body_scope = None
                with trio.CancelScope(shield=True):
                    await zk._close_session(close_timeout)
                nursery.cancel_scope.cancel()
    if error is not None:
        raise error
    if zk._fatal is not None:
        raise zk._fatal
