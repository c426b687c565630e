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

The multi failure record (reference 1.7): a MultiTxn whose sub-txns are all
``ErrorTxn``: 0 (OK) before the failing op, its code at it, RUNTIMEINCONSISTENCY
after.  (ZooKeeper itself logs the real sub-txns before the failure and lets the
tree rewrite them; this form is what every reader of a failed multi ends up with.)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from ..protocol.consts import EPHEMERAL_CONTAINER, MAX_TTL, TTL_MASK, Err, KeeperError, OpCode, Perm
from ..protocol.data import ACL, OPEN_ACL_UNSAFE, Id, ttl_owner
from ..protocol.records import (
    CheckVersionRequest,
    CreateRequest,
    CreateTTLRequest,
    DeleteRequest,
    MultiRequest,
    SetACLRequest,
    SetDataRequest,
)
from ..protocol.txn import (
    CheckVersionTxn,
    CloseSessionTxn,
    CreateContainerTxn,
    CreateSessionTxn,
    CreateTTLTxn,
    CreateTxn,
    DeleteTxn,
    ErrorTxn,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
    TxnHeader,
    TxnRecord,
)
from .acl import check as acl_check
from .auth import AuthRegistry
from .node import AclCache, DataNode
from .paths import SPECIAL_PATHS, path_error
from .sessions import SessionTracker

__sans_io__ = True

__all__ = ["ChangeRecord", "Prep", "TreeView", "fixup_acl", "parse_stats_track", "ERROR_TYPE"]

ERROR_TYPE = int(OpCode.error)
_INT_MAX = 0x7FFFFFFF
# Plain ints for the hot comparisons (an IntEnum member compares through Enum code).
_OP_CREATE_TTL = int(OpCode.createTTL)
_OP_CREATE_CONTAINER = int(OpCode.createContainer)
_OP_DELETE_CONTAINER = int(OpCode.deleteContainer)
_OP_MULTI = int(OpCode.multi)
_CREATE = int(OpCode.create)
_CREATE2 = int(OpCode.create2)
_SET_DATA = int(OpCode.setData)
_OP_CREATE_SESSION = int(OpCode.createSession)
_OP_CLOSE_SESSION = int(OpCode.closeSession)
_OP_RECONFIG = int(OpCode.reconfig)
_PERM_CREATE = int(Perm.CREATE)
_PERM_WRITE = int(Perm.WRITE)
_OPEN_ACL_ENTRY = OPEN_ACL_UNSAFE[0]
_new = object.__new__

_CREATE_OPS = frozenset({OpCode.create, OpCode.create2, OpCode.createContainer, OpCode.createTTL})
#: Sub-ops a write multi may hold (``MultiOperationRecord``).
_MULTI_OPS = frozenset(
    {
        OpCode.create,
        OpCode.create2,
        OpCode.createTTL,
        OpCode.createContainer,
        OpCode.delete,
        OpCode.setData,
        OpCode.check,
    }
)
_QUOTA_ROOT = "/zookeeper/quota"


class TreeView(Protocol):
    """What prep reads of the data tree (``trio_quorum.core.datatree.DataTree``)."""

    nodes: dict[str, DataNode]
    acl_cache: AclCache
    ephemerals: dict[int, set[str]]
    last_processed_zxid: int


def _inc32(v: int) -> int:
    """Java ``int + 1`` (wraps at 2**31)."""
    return v + 1 if v != _INT_MAX else -0x80000000


def _is_normal_ephemeral(owner: int, extended: bool) -> bool:
    """``EphemeralType.get(owner) == NORMAL``: a session's ephemeral."""
    if owner == 0 or owner == EPHEMERAL_CONTAINER:
        return False
    if extended and owner & TTL_MASK == TTL_MASK:
        return False
    return True


class ChangeRecord:
    """A node as it will be once every prepared txn is applied (``ChangeRecord``).

    ``exists`` False marks a pending delete.  ``zxid`` -1 means "read from the
    tree" (such a record is never stored).
    """

    __slots__ = (
        "zxid",
        "path",
        "exists",
        "data",
        "acl",
        "version",
        "cversion",
        "aversion",
        "ephemeral_owner",
        "child_count",
    )

    def __init__(
        self,
        zxid: int,
        path: str,
        exists: bool,
        data: bytes = b"",
        acl: tuple[ACL, ...] = (),
        version: int = 0,
        cversion: int = 0,
        aversion: int = 0,
        ephemeral_owner: int = 0,
        child_count: int = 0,
    ) -> None:
        self.zxid = zxid
        self.path = path
        self.exists = exists
        self.data = data
        self.acl = acl
        self.version = version
        self.cversion = cversion
        self.aversion = aversion
        self.ephemeral_owner = ephemeral_owner
        self.child_count = child_count

    def duplicate(self, zxid: int) -> ChangeRecord:
        return ChangeRecord(
            zxid,
            self.path,
            self.exists,
            self.data,
            self.acl,
            self.version,
            self.cversion,
            self.aversion,
            self.ephemeral_owner,
            self.child_count,
        )

    def __repr__(self) -> str:
        if not self.exists:
            return f"ChangeRecord({self.zxid:#x}, {self.path!r}, deleted)"
        return (
            f"ChangeRecord({self.zxid:#x}, {self.path!r}, v={self.version}, cv={self.cversion}, "
            f"av={self.aversion}, owner={self.ephemeral_owner:#x}, children={self.child_count})"
        )


def fixup_acl(
    path: str, auth_ids: Sequence[Id], acls: Sequence[ACL], registry: AuthRegistry
) -> tuple[ACL, ...]:
    """``PrepRequestProcessor.fixupACL``: dedupe, validate and expand an ACL list.

    ``auth`` entries become one entry per *authenticated* id of the caller
    (digest, not ip); none -> INVALIDACL.  ``world`` must be ``anyone``; other
    schemes must have a provider whose ``is_valid`` accepts the id.
    """
    if acls is OPEN_ACL_UNSAFE:  # the decoder hands out the shared tuple
        return OPEN_ACL_UNSAFE
    if not acls:
        raise KeeperError(Err.INVALIDACL, path)
    if len(acls) == 1 and acls[0] == _OPEN_ACL_ENTRY:
        return OPEN_ACL_UNSAFE
    uniq: list[ACL] = []
    for a in acls:
        if a not in uniq:
            uniq.append(a)
    out: list[ACL] = []
    for a in uniq:
        ident = a.id
        scheme = ident.scheme
        if scheme == "world" and ident.id == "anyone":
            out.append(a)
        elif scheme == "auth":
            found = False
            for cid in auth_ids:
                if registry.is_authenticated(cid.scheme):
                    found = True
                    out.append(ACL(a.perms, cid))
            if not found:
                raise KeeperError(Err.INVALIDACL, path)
        elif registry.is_valid(ident):
            out.append(a)
        else:
            raise KeeperError(Err.INVALIDACL, path)
    return tuple(out)


def parse_stats_track(data: bytes) -> dict[str, int]:
    """Parse a quota node's ``StatsTrack`` text (``count=1,bytes=10[,countHardLimit=..]``)."""
    out: dict[str, int] = {}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return out
    for part in text.split(","):
        k, eq, v = part.partition("=")
        if eq:
            try:
                out[k.strip()] = int(v.strip())
            except ValueError:
                continue
    return out


class Prep:
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
        self._ops: Mapping[int, Callable[..., tuple[int, TxnRecord]]] = {
            OpCode.create: self._create,
            OpCode.create2: self._create,
            OpCode.createContainer: self._create,
            OpCode.createTTL: self._create,
            OpCode.delete: self._delete,
            OpCode.deleteContainer: self._delete_container,
            OpCode.setData: self._set_data,
            OpCode.setACL: self._set_acl,
            OpCode.check: self._check,
        }

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
        if op == _SET_DATA or op == _CREATE:
            # The hot writes: what the general branch below does, without the
            # handler dispatch and its (type, record) tuple.
            zxid = self.last_zxid + 1
            self.last_zxid = zxid
            try:
                sessions = self.sessions
                if sessions is not None:
                    sessions.check_session(session_id, owner)
                if op == _SET_DATA:
                    rec: TxnRecord = self._set_data_txn(request, zxid, auth_ids)
                else:
                    rec = self._create_txn(op, request, zxid, session_id, auth_ids)
            except KeeperError as e:
                return TxnHeader(session_id, cxid, zxid, now, ERROR_TYPE), ErrorTxn(int(e.code))
            hdr = _new(TxnHeader)  # TxnHeader(session_id, cxid, zxid, now, op), in place
            hdr.client_id = session_id
            hdr.cxid = cxid
            hdr.zxid = zxid
            hdr.time = now
            hdr.type = op
            return hdr, rec
        if op in _READ_OPS:  # reads: they make no txn, only the session check
            if self.sessions is not None:
                self.sessions.check_session(session_id, owner)
            return None
        handler = self._ops.get(op)
        if handler is not None:
            zxid = self.last_zxid + 1
            self.last_zxid = zxid
            try:
                sessions = self.sessions
                if sessions is not None and op != _OP_DELETE_CONTAINER:
                    sessions.check_session(session_id, owner)
                typ, rec = handler(op, request, zxid, now, session_id, auth_ids)
            except KeeperError as e:
                return TxnHeader(session_id, cxid, zxid, now, ERROR_TYPE), ErrorTxn(int(e.code))
            return TxnHeader(session_id, cxid, zxid, now, typ), rec
        if op == _OP_MULTI:
            return self._multi(session_id, cxid, request, auth_ids, now, owner)
        if op == _OP_CREATE_SESSION:
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
        if op == _OP_CLOSE_SESSION:
            return self._close_session(session_id, cxid, now)
        if op == _OP_RECONFIG:
            # Reconfig needs the quorum's view; it is prepared by the leader role.
            zxid = self.last_zxid = self.last_zxid + 1
            code = Err.UNIMPLEMENTED if self.reconfig_enabled else Err.RECONFIGDISABLED
            return TxnHeader(session_id, cxid, zxid, now, ERROR_TYPE), ErrorTxn(int(code))
        # ZooKeeper answers unknown types before prep (UnimplementedRequestProcessor).
        raise KeeperError(Err.UNIMPLEMENTED)

    def released(self, zxid: int) -> int:
        """The tree has applied every txn up to ``zxid``: drop their records.

        Returns how many records were dropped.
        """
        q = self._changes
        by_path = self.by_path
        if q and q[-1].zxid <= zxid:
            # All of them (the common case): every record of by_path is in q.
            n = len(q)
            q.clear()
            by_path.clear()
            return n
        n = 0
        while q and q[0].zxid <= zxid:
            c = q.popleft()
            if by_path.get(c.path) is c:
                del by_path[c.path]
            n += 1
        return n

    def reset(self, last_zxid: int) -> None:
        """Forget every outstanding change and restart the counter (role change)."""
        self._changes.clear()
        self.by_path.clear()
        self._undo = None
        self.last_zxid = last_zxid

    def outstanding(self) -> int:
        """Number of outstanding change records (a metric)."""
        return len(self._changes)

    def record_for(self, path: str) -> ChangeRecord | None:
        """The node at ``path`` as prep sees it (``None`` if absent or pending delete)."""
        try:
            return self._record(path)
        except KeeperError:
            return None

    # -- outstanding changes ----------------------------------------------------

    def _record(self, path: str) -> ChangeRecord:
        """``getRecordForPath``: the newest view of ``path``, or NONODE.

        A record built from the tree has zxid -1 and is private to the caller,
        which may fill it in and add it (no second copy on the hot path).
        """
        rec = self.by_path.get(path)
        if rec is not None:
            if not rec.exists:
                raise KeeperError(Err.NONODE, path)
            return rec
        node = self.tree.nodes.get(path)
        if node is None:
            raise KeeperError(Err.NONODE, path)
        c = node.children
        return ChangeRecord(
            -1,
            path,
            True,
            node.data,
            self.tree.acl_cache.get(node.acl),
            node.version,
            node.cversion,
            node.aversion,
            node.ephemeral_owner,
            0 if c is None else len(c),
        )

    def _validate_known(self, path: str) -> None:
        """``validatePath`` for ops on an existing node: a path the tree or the
        outstanding changes hold was validated when it was created, so only
        unknown paths pay for the full check (same answers, cheaper)."""
        if (
            path not in self.by_path
            and path not in self.tree.nodes
            and path_error(path) is not None
        ):
            raise KeeperError(Err.BADARGUMENTS, path)

    def _for_update(self, rec: ChangeRecord, zxid: int) -> ChangeRecord:
        if rec.zxid == -1:
            rec.zxid = zxid
            return rec
        return rec.duplicate(zxid)

    def _exists(self, path: str) -> bool:
        rec = self.by_path.get(path)
        if rec is not None:
            return rec.exists
        return path in self.tree.nodes

    def _add(self, rec: ChangeRecord) -> None:
        self._changes.append(rec)
        prev = self.by_path.get(rec.path)
        self.by_path[rec.path] = rec
        if self._undo is not None:
            self._undo.append((rec.path, prev))

    def _check_acl(
        self, acl: tuple[ACL, ...], perm: int, auth_ids: Sequence[Id], path: str
    ) -> None:
        if acl is OPEN_ACL_UNSAFE or self.skip_acl:
            return
        if not acl_check(acl, perm, auth_ids):
            raise KeeperError(Err.NOAUTH, path)

    # -- ops ------------------------------------------------------------------

    def _create(
        self, op: int, req: Any, zxid: int, now: int, session_id: int, auth_ids: Sequence[Id]
    ) -> tuple[int, TxnRecord]:
        return op, self._create_txn(op, req, zxid, session_id, auth_ids)

    def _create_txn(
        self, op: int, req: Any, zxid: int, session_id: int, auth_ids: Sequence[Id]
    ) -> TxnRecord:
        if op == _OP_CREATE_TTL:
            if not isinstance(req, CreateTTLRequest):
                raise KeeperError(Err.MARSHALLINGERROR)
            ttl = req.ttl
        else:
            if type(req) is not CreateRequest and not isinstance(req, CreateRequest):
                raise KeeperError(Err.MARSHALLINGERROR)
            ttl = -1
        path = req.path
        flags = req.flags
        if not 0 <= flags <= 6:  # CreateMode.fromFlag
            raise KeeperError(Err.BADARGUMENTS, path)
        is_ttl = flags >= 5
        if is_ttl and not self.extended_types:
            raise KeeperError(Err.UNIMPLEMENTED, path)
        if is_ttl:
            if ttl > MAX_TTL or ttl <= 0:
                raise KeeperError(Err.BADARGUMENTS, path)
        elif ttl >= 0 or op == _OP_CREATE_TTL:
            # A createTTL with a non-TTL mode would make a CreateTTLTxn the tree
            # cannot honour; ZooKeeper refuses it when ttl >= 0, we always do.
            raise KeeperError(Err.BADARGUMENTS, path)
        # validatePathForCreate: only the cheap checks before the parent lookup.
        slash = path.rfind("/") if isinstance(path, str) else -1
        if slash == -1 or "\x00" in path:
            raise KeeperError(Err.BADARGUMENTS, path)
        parent_path = path[:slash] or "/"
        acl = req.acl
        if acl is not OPEN_ACL_UNSAFE:
            acl = fixup_acl(path, auth_ids, acl, self.auth)
        by_path = self.by_path
        parent = by_path.get(parent_path)
        if parent is None or not parent.exists:
            parent = self._record(parent_path)
        pacl = parent.acl
        if pacl is not OPEN_ACL_UNSAFE and not self.skip_acl and not acl_check(pacl, _PERM_CREATE, auth_ids):
            raise KeeperError(Err.NOAUTH, path)
        cversion = parent.cversion
        if flags == 2 or flags == 3 or flags == 6:
            path = f"{path}{cversion:010d}"
        # paths.plain_path(path), inlined: most paths are plainly valid.
        if not (
            path.isascii()
            and path.isprintable()
            and path[0] == "/"
            and path[-1] != "/"
            and "//" not in path
            and "/." not in path
        ) and path_error(path) is not None:
            raise KeeperError(Err.BADARGUMENTS, path)
        existing = by_path.get(path)
        if existing.exists if existing is not None else path in self.tree.nodes:
            raise KeeperError(Err.NODEEXISTS, path)
        powner = parent.ephemeral_owner
        if powner and _is_normal_ephemeral(powner, self.extended_types):
            raise KeeperError(Err.NOCHILDRENFOREPHEMERALS, path)
        new_cversion = cversion + 1 if cversion != _INT_MAX else -0x80000000
        data = req.data
        if self.enforce_quota:
            self._check_quota(path, None, data)
        rec: TxnRecord
        if op == _OP_CREATE_CONTAINER:
            rec = CreateContainerTxn(path, data, acl, new_cversion)
            owner = EPHEMERAL_CONTAINER
        elif op == _OP_CREATE_TTL:
            rec = CreateTTLTxn(path, data, acl, new_cversion, ttl)
            owner = ttl_owner(ttl)
        else:
            ephemeral = flags == 1 or flags == 3
            crec = _new(CreateTxn)  # CreateTxn(path, data, acl, ephemeral, new_cversion)
            crec.path = path
            crec.data = data
            crec.acl = acl
            crec.ephemeral = ephemeral
            crec.parent_cversion = new_cversion
            rec = crec
            owner = session_id if ephemeral else 0
        # _for_update + _add inlined; records built in place (see _set_data_txn)
        if parent.zxid == -1:
            parent.zxid = zxid
            parent.child_count += 1
            parent.cversion = new_cversion
        else:
            prec = parent
            parent = _new(ChangeRecord)
            parent.zxid = zxid
            parent.path = prec.path
            parent.exists = prec.exists
            parent.data = prec.data
            parent.acl = prec.acl
            parent.version = prec.version
            parent.cversion = new_cversion
            parent.aversion = prec.aversion
            parent.ephemeral_owner = prec.ephemeral_owner
            parent.child_count = prec.child_count + 1
        node = _new(ChangeRecord)
        node.zxid = zxid
        node.path = path
        node.exists = True
        node.data = data
        node.acl = acl
        node.version = 0
        node.cversion = 0
        node.aversion = 0
        node.ephemeral_owner = owner
        node.child_count = 0
        changes = self._changes
        undo = self._undo
        if undo is not None:
            undo.append((parent_path, by_path.get(parent_path)))
        changes.append(parent)
        by_path[parent_path] = parent
        if undo is not None:
            undo.append((path, existing))
        changes.append(node)
        by_path[path] = node
        return rec

    def _delete(
        self, op: int, req: Any, zxid: int, now: int, session_id: int, auth_ids: Sequence[Id]
    ) -> tuple[int, TxnRecord]:
        if not isinstance(req, DeleteRequest):
            raise KeeperError(Err.MARSHALLINGERROR)
        path = req.path
        parent_path = self._parent_for_delete(path)
        parent = self._record(parent_path)
        self._check_acl(parent.acl, Perm.DELETE, auth_ids, path)
        node = self._record(path)
        if req.version != -1 and req.version != node.version:
            raise KeeperError(Err.BADVERSION, path)
        if node.child_count > 0:
            raise KeeperError(Err.NOTEMPTY, path)
        parent = self._for_update(parent, zxid)
        parent.child_count -= 1
        self._add(parent)
        self._add(ChangeRecord(zxid, path, False))
        return op, DeleteTxn(path)

    def _delete_container(
        self, op: int, req: Any, zxid: int, now: int, session_id: int, auth_ids: Sequence[Id]
    ) -> tuple[int, TxnRecord]:
        path = req.path if isinstance(req, DeleteRequest) else req
        if not isinstance(path, str):
            raise KeeperError(Err.MARSHALLINGERROR)
        parent_path = self._parent_for_delete(path)
        node = self._record(path)
        if node.child_count > 0:
            raise KeeperError(Err.NOTEMPTY, path)
        if _is_normal_ephemeral(node.ephemeral_owner, self.extended_types):
            raise KeeperError(Err.BADVERSION, path)
        parent = self._for_update(self._record(parent_path), zxid)
        parent.child_count -= 1
        self._add(parent)
        self._add(ChangeRecord(zxid, path, False))
        return op, DeleteTxn(path)

    @staticmethod
    def _parent_for_delete(path: Any) -> str:
        """``getParentPathAndValidate``: no full path check, as in ZooKeeper."""
        if not isinstance(path, str):
            raise KeeperError(Err.MARSHALLINGERROR)
        slash = path.rfind("/")
        if slash == -1 or "\x00" in path or path in SPECIAL_PATHS:
            raise KeeperError(Err.BADARGUMENTS, path)
        return path[:slash] or "/"

    def _set_data(
        self, op: int, req: Any, zxid: int, now: int, session_id: int, auth_ids: Sequence[Id]
    ) -> tuple[int, TxnRecord]:
        return op, self._set_data_txn(req, zxid, auth_ids)

    def _set_data_txn(self, req: Any, zxid: int, auth_ids: Sequence[Id]) -> SetDataTxn:
        # The hot write: _validate_known + _record + _check_acl + _for_update +
        # _add inlined, same checks in the same order, one ChangeRecord built.
        if type(req) is not SetDataRequest and not isinstance(req, SetDataRequest):
            raise KeeperError(Err.MARSHALLINGERROR)
        path = req.path
        prev = self.by_path.get(path)
        if prev is None:
            tree = self.tree
            node = tree.nodes.get(path)
            if node is None:
                if path_error(path) is not None:
                    raise KeeperError(Err.BADARGUMENTS, path)
                raise KeeperError(Err.NONODE, path)
            tnode: DataNode = node
            acl_id = node.acl
            acl = OPEN_ACL_UNSAFE if acl_id == -1 else tree.acl_cache.get(acl_id)
            cur_version = node.version
            cur_data = node.data
        else:
            if not prev.exists:
                raise KeeperError(Err.NONODE, path)
            acl = prev.acl
            cur_version = prev.version
            cur_data = prev.data
        if acl is not OPEN_ACL_UNSAFE and not self.skip_acl and not acl_check(acl, _PERM_WRITE, auth_ids):
            raise KeeperError(Err.NOAUTH, path)
        data = req.data
        if self.enforce_quota:
            self._check_quota(path, cur_data, data)
        version = req.version
        if version != -1 and version != cur_version:
            raise KeeperError(Err.BADVERSION, path)
        new_version = cur_version + 1 if cur_version != _INT_MAX else -0x80000000
        # ChangeRecord(...) and SetDataTxn(...) built in place: a class call with
        # a Python __init__ costs ~100 ns more than the slot stores themselves
        # (tests/test_hotpath_prep.py compares with the constructors).
        rec = _new(ChangeRecord)
        rec.zxid = zxid
        rec.path = path
        rec.exists = True
        rec.data = data
        rec.acl = acl
        rec.version = new_version
        if prev is None:
            c = tnode.children
            rec.cversion = tnode.cversion
            rec.aversion = tnode.aversion
            rec.ephemeral_owner = tnode.ephemeral_owner
            rec.child_count = 0 if c is None else len(c)
        else:
            rec.cversion = prev.cversion
            rec.aversion = prev.aversion
            rec.ephemeral_owner = prev.ephemeral_owner
            rec.child_count = prev.child_count
        self._changes.append(rec)
        self.by_path[path] = rec
        if self._undo is not None:
            self._undo.append((path, prev))
        txn = _new(SetDataTxn)
        txn.path = path
        txn.data = data
        txn.version = new_version
        return txn

    def _set_acl(
        self, op: int, req: Any, zxid: int, now: int, session_id: int, auth_ids: Sequence[Id]
    ) -> tuple[int, TxnRecord]:
        if not isinstance(req, SetACLRequest):
            raise KeeperError(Err.MARSHALLINGERROR)
        path = req.path
        self._validate_known(path)
        acl = fixup_acl(path, auth_ids, req.acl, self.auth)
        node = self._record(path)
        self._check_acl(node.acl, Perm.ADMIN, auth_ids, path)
        if req.version != -1 and req.version != node.aversion:
            raise KeeperError(Err.BADVERSION, path)
        new_version = _inc32(node.aversion)
        node = self._for_update(node, zxid)
        node.aversion = new_version
        # ZooKeeper leaves the record's old ACL here; a pipelined op behind this
        # one must be checked against the new ACL, so we keep the new one.
        node.acl = acl
        self._add(node)
        return op, SetACLTxn(path, acl, new_version)

    def _check(
        self, op: int, req: Any, zxid: int, now: int, session_id: int, auth_ids: Sequence[Id]
    ) -> tuple[int, TxnRecord]:
        if not isinstance(req, CheckVersionRequest):
            raise KeeperError(Err.MARSHALLINGERROR)
        path = req.path
        self._validate_known(path)
        node = self._record(path)
        self._check_acl(node.acl, Perm.READ, auth_ids, path)
        if req.version != -1 and req.version != node.version:
            raise KeeperError(Err.BADVERSION, path)
        return op, CheckVersionTxn(path, _inc32(node.version))

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
            not isinstance(o, tuple) or len(o) != 2 or o[0] not in _MULTI_OPS for o in req.ops
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
                    t = self._ops[op](op, sub, zxid, now, session_id, auth_ids)
                    if t[0] == _CREATE2:
                        # ZooKeeper logs a create2 inside a multi as a plain create
                        # (and so answers it with a path and no Stat).
                        t = (_CREATE, t[1])
                    txns.append(t)
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

    def _rollback(self, undo: list[tuple[str, ChangeRecord | None]]) -> None:
        q = self._changes
        for path, prev in reversed(undo):
            q.pop()
            if prev is None:
                self.by_path.pop(path, None)
            else:
                self.by_path[path] = prev

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
                parent_rec = self._for_update(parent_rec, zxid)
                parent_rec.child_count -= 1
                self._add(parent_rec)
            self._add(ChangeRecord(zxid, p, False))
        if self.sessions is not None:
            self.sessions.set_closing(session_id)
        return TxnHeader(session_id, cxid, zxid, now, int(OpCode.closeSession)), CloseSessionTxn(
            paths
        )

    # -- quotas ---------------------------------------------------------------

    def _check_quota(self, path: str, last_data: bytes | None, data: bytes) -> None:
        """``ZooKeeperServer.checkQuota``: hard limits of the nearest quota'd ancestor."""
        nodes = self.tree.nodes
        if path == "/zookeeper" or path.startswith("/zookeeper/"):
            return
        prefix = path
        limits = None
        while prefix and prefix != "/":
            limits = nodes.get(f"{_QUOTA_ROOT}{prefix}/zookeeper_limits")
            if limits is not None:
                break
            prefix = prefix[: prefix.rfind("/")]
        if limits is None:
            return
        lim = parse_stats_track(limits.data)
        stats_node = nodes.get(f"{_QUOTA_ROOT}{prefix}/zookeeper_stats")
        if stats_node is None:
            return
        cur = parse_stats_track(stats_node.data)
        count_diff = 1 if last_data is None else 0
        bytes_diff = len(data) - (0 if last_data is None else len(last_data))
        hard_count = lim.get("countHardLimit", -1)
        if count_diff and hard_count > -1 and cur.get("count", 0) + count_diff > hard_count:
            raise KeeperError(Err.QUOTAEXCEEDED, prefix)
        hard_bytes = lim.get("byteHardLimit", -1)
        if bytes_diff and hard_bytes > -1 and cur.get("bytes", 0) + bytes_diff > hard_bytes:
            raise KeeperError(Err.QUOTAEXCEEDED, prefix)


#: Ops that are not transactions: prep checks the session and returns None.
#: (Plain ints: the membership test is the first thing every read meets.)
_READ_OPS = frozenset(
    int(o)
    for o in {
        OpCode.sync,
        OpCode.exists,
        OpCode.getData,
        OpCode.getACL,
        OpCode.getChildren,
        OpCode.getAllChildrenNumber,
        OpCode.getChildren2,
        OpCode.ping,
        OpCode.setWatches,
        OpCode.setWatches2,
        OpCode.checkWatches,
        OpCode.removeWatches,
        OpCode.getEphemerals,
        OpCode.multiRead,
        OpCode.addWatch,
        OpCode.whoAmI,
        OpCode.auth,
        OpCode.sasl,
    }
)
