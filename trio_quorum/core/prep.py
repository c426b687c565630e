"""PrepRequestProcessor as a sans-IO core: write requests in, transactions out.

:meth:`Prep.prepare` turns one write request into ``(TxnHeader, TxnRecord)``
(``trio_quorum.protocol.txn``).  A request that fails validation is a transaction too:
header type ``error`` (-1) with ``ErrorTxn(code)``; it consumes a zxid and is
logged and applied (as a no-op) like any other, so per-session order holds.

Prep runs *ahead* of the tree.  Requests are prepared long before the tree has
applied the ones in front of them (a pipeline batch, a quorum round), so prep
never reads the tree alone: it reads the **outstanding changes** first,
``ChangeRecord``s (path -> the node as it will be after every prepared txn:
exists or deleted, versions, child count, ACL, ephemeral owner, data) and falls
back to the tree only for paths nobody has touched since.  The tree tells
prep how far it got with :meth:`Prep.released`, which drops the records of
applied zxids.

Invariants:

* Zxids: prep owns the counter.  Every :meth:`prepare` of a write consumes
  exactly one zxid (``last_zxid + 1``), success or failure, multi or not; a
  multi's sub-txns share it.  The counter starts at the tree's
  ``last_processed_zxid``; a new leader calls :meth:`Prep.reset` with
  ``epoch << 32`` before its first proposal.
* Outstanding changes are kept in zxid order; ``by_path[p]`` is the newest
  record for ``p``.  Records are never mutated once added (updates copy).
* A failed multi leaves the outstanding changes exactly as they were before
  it (an undo log, not ZooKeeper's snapshot-and-restore).
* Check order per op follows ZooKeeper 3.8.0's ``PrepRequestProcessor``, so the
  error a client sees for a request with several problems is ZooKeeper's.
  Notably: the sequential suffix (from the parent's *persisted* cversion,
  ``%010d``, Java int overflow) is appended before the NODEEXISTS check, and
  the full path is validated only after the parent was found (so a sequential
  create of ``/a/`` makes ``/a/0000000007``).
* No IO, no clock: wall time for ``TxnHeader.time`` is an argument.

Layout: :class:`Prep` (this module: the zxid counter, :meth:`Prep.prepare`,
multi, closeSession) derives from ``prep_ops.TxnBuilders`` (one txn builder per
write op, reached through the ``_OPS`` table by prepare and by a multi's
sub-ops alike) and ``prep_changes.Outstanding`` (the change records).

The multi failure record (reference 1.7): a MultiTxn whose sub-txns are all
``ErrorTxn``: 0 (OK) before the failing op, its code at it, RUNTIMEINCONSISTENCY
after.  (ZooKeeper itself logs the real sub-txns before the failure and lets the
tree rewrite them; this form is what every reader of a failed multi ends up with.)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from ..protocol.consts import Err, KeeperError, OpCode
from ..protocol.data import Id
from ..protocol.records import MultiRequest
from ..protocol.txn import (
    CloseSessionTxn,
    CreateSessionTxn,
    ErrorTxn,
    MultiTxn,
    TxnHeader,
    TxnRecord,
)
from .auth import AuthRegistry
from .codes import (
    MULTI_OPS,
    T_CLOSE_SESSION,
    T_CREATE,
    T_CREATE2,
    T_CREATE_SESSION,
    T_DELETE_CONTAINER,
    T_ERROR,
    T_MULTI,
    T_RECONFIG,
    T_SET_DATA,
)
from .prep_changes import ChangeRecord, TreeView, parse_stats_track
from .prep_ops import TxnBuilders, fixup_acl
from .sessions import SessionTracker

__sans_io__ = True

__all__ = ["ChangeRecord", "Prep", "TreeView", "fixup_acl", "parse_stats_track", "ERROR_TYPE"]

ERROR_TYPE = T_ERROR
_new = object.__new__

#: A txn builder: ``(prep, op, request, zxid, session_id, auth_ids) -> record``.
_Builder = Callable[[Any, int, Any, int, int, Sequence[Id]], TxnRecord]


class Prep(TxnBuilders):
    """The prep stage's state: zxid counter and outstanding changes.

    Args:
        tree: the data tree (read-only here).
        auth: provider registry (ACL id validation, ``auth`` expansion).
        sessions: when given, every op checks its session like ZooKeeper
            (UNKNOWNSESSION / SESSIONEXPIRED / SESSIONMOVED) and closeSession
            marks the session closing.
        extended_types: ``zookeeper.extendedTypesEnabled`` (TTL nodes).
        enforce_quota: ``zookeeper.enforceQuota`` (hard quota limits -> QUOTAEXCEEDED).
        skip_acl: ``zookeeper.skipACL``.
        reconfig_enabled: ``reconfigEnabled``; reconfig is not prepared here
            either way (RECONFIGDISABLED, or UNIMPLEMENTED when enabled).
        last_zxid: the counter's start (default: the tree's last processed zxid).
    """

    def __init__(
        self,
        tree: TreeView,
        auth: AuthRegistry | None = None,
        sessions: SessionTracker | None = None,
        *,
        extended_types: bool = False,
        enforce_quota: bool = False,
        skip_acl: bool = False,
        reconfig_enabled: bool = False,
        last_zxid: int | None = None,
    ) -> None:
        self.tree = tree
        self.auth = auth if auth is not None else AuthRegistry()
        self.sessions = sessions
        self.extended_types = extended_types
        self.enforce_quota = enforce_quota
        self.skip_acl = skip_acl
        self.reconfig_enabled = reconfig_enabled
        self.last_zxid = tree.last_processed_zxid if last_zxid is None else last_zxid
        self._changes: deque[ChangeRecord] = deque()
        self.by_path: dict[str, ChangeRecord] = {}
        self._undo: list[tuple[str, ChangeRecord | None]] | None = None
    # -- public API -----------------------------------------------------------

    def prepare(
        self,
        session_id: int,
        cxid: int,
        op: int,
        request: Any,
        auth_ids: Sequence[Id],
        now: int,
        owner: object | None = None,
    ) -> tuple[TxnHeader, TxnRecord] | None:
        """Prepare one request of session ``session_id``.

        Args:
            op: the request's opcode; ``request`` its decoded record
                (``proto.CreateRequest``, ..., ``MultiRequest``; for
                createSession the negotiated timeout (int); for closeSession
                ``None``; for deleteContainer a path or ``DeleteRequest``).
            auth_ids: the connection's authenticated ids.
            now: wall-clock ms for ``TxnHeader.time``.
            owner: the connection/server serving the session (SESSIONMOVED).

        Returns:
            ``(header, record)`` for a write (``header.type`` -1 with an
            ``ErrorTxn`` when it failed); ``None`` for an op that makes no
            txn (reads, ping, ...) once its session checked out.

        Raises:
            KeeperError: only for a non-write op: its session check failed, or
                the opcode is unknown (UNIMPLEMENTED; no zxid is consumed).
        """
        # The hot writes ask first: the very builder _OPS holds for them, without the lookup.
        build: _Builder | None
        if op == T_SET_DATA:
            build = _set_data
        elif op == T_CREATE:
            build = _create
        else:
            build = _OPS.get(op)
        if build is not None:
            zxid = self.last_zxid + 1
            self.last_zxid = zxid
            try:
                sessions = self.sessions
                # deleteContainer comes from the server's container manager, no session's.
                if sessions is not None and op != T_DELETE_CONTAINER:
                    sessions.check_session(session_id, owner)
                rec = build(self, op, request, zxid, session_id, auth_ids)
            except KeeperError as e:
                return TxnHeader(session_id, cxid, zxid, now, ERROR_TYPE), ErrorTxn(int(e.code))
            # TxnHeader(session_id, cxid, zxid, now, op): the one place a write's
            # header is made, its slots stored without the constructor call.
            hdr: TxnHeader = _new(TxnHeader)
            hdr.client_id, hdr.cxid = session_id, cxid
            hdr.zxid, hdr.time, hdr.type = zxid, now, op  # (<= 3 at once: no tuple made)
            return hdr, rec
        if op in _READ_OPS:  # reads: they make no txn, only the session check
            if self.sessions is not None:
                self.sessions.check_session(session_id, owner)
            return None
        if op == T_MULTI:
            return self._multi(session_id, cxid, request, auth_ids, now, owner)
        if op == T_CREATE_SESSION:
            zxid = self.last_zxid = self.last_zxid + 1
            if not isinstance(request, int) or isinstance(request, bool):
                return (
                    TxnHeader(session_id, cxid, zxid, now, ERROR_TYPE),
                    ErrorTxn(int(Err.MARSHALLINGERROR)),
                )
            return (
                TxnHeader(session_id, cxid, zxid, now, int(OpCode.createSession)),
                CreateSessionTxn(request),
            )
        if op == T_CLOSE_SESSION:
            return self._close_session(session_id, cxid, now)
        if op == T_RECONFIG:
            # Reconfig needs the quorum's view; it is prepared by the leader role.
            zxid = self.last_zxid = self.last_zxid + 1
            code = Err.UNIMPLEMENTED if self.reconfig_enabled else Err.RECONFIGDISABLED
            return TxnHeader(session_id, cxid, zxid, now, ERROR_TYPE), ErrorTxn(int(code))
        # ZooKeeper answers unknown types before prep (UnimplementedRequestProcessor).
        raise KeeperError(Err.UNIMPLEMENTED)

    def reset(self, last_zxid: int) -> None:
        """Forget every outstanding change and restart the counter (role change)."""
        self._changes.clear()
        self.by_path.clear()
        self._undo = None
        self.last_zxid = last_zxid

    def _multi(
        self,
        session_id: int,
        cxid: int,
        req: Any,
        auth_ids: Sequence[Id],
        now: int,
        owner: object | None,
    ) -> tuple[TxnHeader, TxnRecord]:
        zxid = self.last_zxid = self.last_zxid + 1
        hdr = TxnHeader(session_id, cxid, zxid, now, int(OpCode.multi))
        if not isinstance(req, MultiRequest) or any(
            not isinstance(o, tuple) or len(o) != 2 or o[0] not in MULTI_OPS for o in req.ops
        ):
            # ZooKeeper fails to deserialize such a multi: the whole request errs.
            return (
                TxnHeader(session_id, cxid, zxid, now, ERROR_TYPE),
                ErrorTxn(int(Err.MARSHALLINGERROR)),
            )
        txns: list[tuple[int, TxnRecord]] = []
        undo: list[tuple[str, ChangeRecord | None]] = []
        self._undo = undo
        failed_at = -1
        code = 0
        try:
            for i, (op, sub) in enumerate(req.ops):
                try:
                    if self.sessions is not None:
                        self.sessions.check_session(session_id, owner)
                    rec = _OPS[op](self, op, sub, zxid, session_id, auth_ids)
                    # ZooKeeper logs a create2 inside a multi as a plain create
                    # (and so answers it with a path and no Stat).
                    txns.append((T_CREATE if op == T_CREATE2 else op, rec))
                except KeeperError as e:
                    failed_at, code = i, int(e.code)
                    break
        finally:
            self._undo = None
        if failed_at < 0:
            return hdr, MultiTxn(tuple(txns))
        self._rollback(undo)
        ok, rte = ErrorTxn(0), ErrorTxn(int(Err.RUNTIMEINCONSISTENCY))
        errs = tuple(
            (ERROR_TYPE, ok if i < failed_at else ErrorTxn(code) if i == failed_at else rte)
            for i in range(len(req.ops))
        )
        return hdr, MultiTxn(errs)

    def _close_session(self, session_id: int, cxid: int, now: int) -> tuple[TxnHeader, TxnRecord]:
        zxid = self.last_zxid = self.last_zxid + 1
        es = set(self.tree.ephemerals.get(session_id, ()))
        for c in self._changes:
            if not c.exists:
                es.discard(c.path)
            elif c.ephemeral_owner == session_id:
                es.add(c.path)
        paths = tuple(sorted(es))
        for p in paths:
            # Keep the parent's child count right for requests prepared behind us.
            parent_rec = self.record_for(p[: p.rfind("/")] or "/")
            if parent_rec is not None:
                self._child_removed(parent_rec, zxid)
            self._put(zxid, p, False)
        if self.sessions is not None:
            self.sessions.set_closing(session_id)
        return TxnHeader(session_id, cxid, zxid, now, int(OpCode.closeSession)), CloseSessionTxn(
            paths
        )


#: Every write op's txn builder: prepare and a multi's sub-ops call them as
#: ``build(prep, op, request, zxid, session_id, auth_ids)``.
_OPS: dict[int, _Builder] = {
    int(op): build
    for op, build in (
        (OpCode.create, TxnBuilders._create),
        (OpCode.create2, TxnBuilders._create),
        (OpCode.createContainer, TxnBuilders._create),
        (OpCode.createTTL, TxnBuilders._create),
        (OpCode.delete, TxnBuilders._delete),
        (OpCode.deleteContainer, TxnBuilders._delete_container),
        (OpCode.setData, TxnBuilders._set_data),
        (OpCode.setACL, TxnBuilders._set_acl),
        (OpCode.check, TxnBuilders._check),
    )
}
_set_data = _OPS[T_SET_DATA]
_create = _OPS[T_CREATE]

#: Ops that are not transactions: prep checks the session and returns None.
#: (Plain ints: the membership test is the first thing every read meets.)
_READ_OPS = frozenset(
    int(o)
    for o in (
        *(OpCode.sync, OpCode.exists, OpCode.getData, OpCode.getACL, OpCode.getChildren),
        *(OpCode.getAllChildrenNumber, OpCode.getChildren2, OpCode.ping, OpCode.setWatches),
        *(OpCode.setWatches2, OpCode.checkWatches, OpCode.removeWatches, OpCode.getEphemerals),
        *(OpCode.multiRead, OpCode.addWatch, OpCode.whoAmI, OpCode.auth, OpCode.sasl),
    )
)
