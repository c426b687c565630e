"""Prep's per-op txn builders: one request in, one txn record out (sans-IO).

One method per write op (create*, delete, deleteContainer, setData, setACL,
check), each ``(op, request, zxid, session_id, auth_ids) -> TxnRecord``: it
validates the request against the outstanding changes and the tree in
ZooKeeper 3.8.0's ``PrepRequestProcessor`` order, adds the change records the
txn makes, and raises :class:`~trio_quorum.protocol.consts.KeeperError` for a
request that fails (prep turns that into an error txn).  ``Prep.prepare`` and
a multi's sub-ops reach them through the same table, ``prep._OPS``.

Invariants: a builder that raises has added no record; the sequential suffix
comes from the parent's *persisted* cversion (``%010d``, Java int overflow)
and is appended before the NODEEXISTS check; the full path of a create is
validated only after its parent was found.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..protocol.consts import EPHEMERAL_CONTAINER, MAX_TTL, TTL_MASK, Err, KeeperError, Perm
from ..protocol.data import ACL, OPEN_ACL_UNSAFE, Id, ttl_owner
from ..protocol.records import (
    CheckVersionRequest,
    CreateRequest,
    CreateTTLRequest,
    DeleteRequest,
    SetACLRequest,
    SetDataRequest,
)
from ..protocol.txn import (
    CheckVersionTxn,
    CreateContainerTxn,
    CreateTTLTxn,
    CreateTxn,
    DeleteTxn,
    SetACLTxn,
    SetDataTxn,
    TxnRecord,
)
from .acl import check as acl_check
from .auth import AuthRegistry
from .codes import T_CREATE_CONTAINER, T_CREATE_TTL
from .node import DataNode
from .paths import SPECIAL_PATHS, path_error
from .prep_changes import ChangeRecord, Outstanding

__sans_io__ = True

__all__ = ["TxnBuilders", "fixup_acl"]

_INT_MAX = 0x7FFFFFFF
_PERM_CREATE = int(Perm.CREATE)
_PERM_WRITE = int(Perm.WRITE)
_OPEN_ACL_ENTRY = OPEN_ACL_UNSAFE[0]
_Ids = Sequence[Id]
_new = object.__new__


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



class TxnBuilders(Outstanding):
    """The per-op txn builders of a :class:`~trio_quorum.core.prep.Prep` (its base)."""

    auth: AuthRegistry
    extended_types: bool

    def _create(self, op: int, req: Any, zxid: int, session_id: int, auth_ids: _Ids) -> TxnRecord:
        """create, create2, createContainer, createTTL."""
        if op == T_CREATE_TTL:
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
        elif ttl >= 0 or op == T_CREATE_TTL:
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
        if op == T_CREATE_CONTAINER:
            rec = CreateContainerTxn(path, data, acl, new_cversion)
            owner = EPHEMERAL_CONTAINER
        elif op == T_CREATE_TTL:
            rec = CreateTTLTxn(path, data, acl, new_cversion, ttl)
            owner = ttl_owner(ttl)
        else:
            ephemeral = flags == 1 or flags == 3
            # CreateTxn(path, data, acl, ephemeral, new_cversion): the one place
            # prep makes one, its slots stored without the constructor call.
            crec: CreateTxn = _new(CreateTxn)
            crec.path, crec.data, crec.acl = path, data, acl  # (<= 3 at once: no tuple made)
            crec.ephemeral, crec.parent_cversion = ephemeral, new_cversion
            rec = crec
            owner = session_id if ephemeral else 0
        self._put(
            zxid, parent.path, True, parent.data, pacl, parent.version, new_cversion,
            parent.aversion, powner, parent.child_count + 1,
        )
        self._put(zxid, path, True, data, acl, 0, 0, 0, owner, 0)
        return rec

    def _delete(self, op: int, req: Any, zxid: int, session_id: int, auth_ids: _Ids) -> TxnRecord:
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
        self._child_removed(parent, zxid)
        self._put(zxid, path, False)
        return DeleteTxn(path)

    def _delete_container(self, op: int, req: Any, zxid: int, session_id: int, auth_ids: _Ids) -> TxnRecord:
        path = req.path if isinstance(req, DeleteRequest) else req
        if not isinstance(path, str):
            raise KeeperError(Err.MARSHALLINGERROR)
        parent_path = self._parent_for_delete(path)
        node = self._record(path)
        if node.child_count > 0:
            raise KeeperError(Err.NOTEMPTY, path)
        if _is_normal_ephemeral(node.ephemeral_owner, self.extended_types):
            raise KeeperError(Err.BADVERSION, path)
        self._child_removed(self._record(parent_path), zxid)
        self._put(zxid, path, False)
        return DeleteTxn(path)

    @staticmethod
    def _parent_for_delete(path: Any) -> str:
        """``getParentPathAndValidate``: no full path check, as in ZooKeeper."""
        if not isinstance(path, str):
            raise KeeperError(Err.MARSHALLINGERROR)
        slash = path.rfind("/")
        if slash == -1 or "\x00" in path or path in SPECIAL_PATHS:
            raise KeeperError(Err.BADARGUMENTS, path)
        return path[:slash] or "/"

    def _set_data(self, op: int, req: Any, zxid: int, session_id: int, auth_ids: _Ids) -> TxnRecord:
        # The hottest write, so its lookups are written out here (what
        # _validate_known + _record + _check_acl do, in the same order): the node
        # is read from the tree without a zxid -1 record in between.
        if type(req) is not SetDataRequest and not isinstance(req, SetDataRequest):
            raise KeeperError(Err.MARSHALLINGERROR)
        path = req.path
        prev = self.by_path.get(path)
        cur: ChangeRecord | DataNode
        if prev is None:
            tree = self.tree
            node = tree.nodes.get(path)
            if node is None:
                if path_error(path) is not None:
                    raise KeeperError(Err.BADARGUMENTS, path)
                raise KeeperError(Err.NONODE, path)
            cur = node
            acl_id = node.acl
            acl = OPEN_ACL_UNSAFE if acl_id == -1 else tree.acl_cache.get(acl_id)
            c = node.children
            child_count = 0 if c is None else len(c)
        else:
            if not prev.exists:
                raise KeeperError(Err.NONODE, path)
            cur = prev
            acl = prev.acl
            child_count = prev.child_count
        if acl is not OPEN_ACL_UNSAFE and not self.skip_acl and not acl_check(acl, _PERM_WRITE, auth_ids):
            raise KeeperError(Err.NOAUTH, path)
        data = req.data
        if self.enforce_quota:
            self._check_quota(path, cur.data, data)
        version = req.version
        cur_version = cur.version
        if version != -1 and version != cur_version:
            raise KeeperError(Err.BADVERSION, path)
        new_version = cur_version + 1 if cur_version != _INT_MAX else -0x80000000
        self._put(
            zxid, path, True, data, acl, new_version, cur.cversion, cur.aversion, cur.ephemeral_owner,
            child_count,
        )
        # SetDataTxn(path, data, new_version): the one place prep makes one, its
        # slots stored without the constructor call.
        txn: SetDataTxn = _new(SetDataTxn)
        txn.path, txn.data, txn.version = path, data, new_version
        return txn

    def _set_acl(self, op: int, req: Any, zxid: int, session_id: int, auth_ids: _Ids) -> TxnRecord:
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
        # ZooKeeper leaves the record's old ACL here; a pipelined op behind this
        # one must be checked against the new ACL, so we keep the new one.
        self._put(
            zxid, path, True, node.data, acl, node.version, node.cversion, new_version,
            node.ephemeral_owner, node.child_count,
        )
        return SetACLTxn(path, acl, new_version)

    def _check(self, op: int, req: Any, zxid: int, session_id: int, auth_ids: _Ids) -> TxnRecord:
        if not isinstance(req, CheckVersionRequest):
            raise KeeperError(Err.MARSHALLINGERROR)
        path = req.path
        self._validate_known(path)
        node = self._record(path)
        self._check_acl(node.acl, Perm.READ, auth_ids, path)
        if req.version != -1 and req.version != node.version:
            raise KeeperError(Err.BADVERSION, path)
        return CheckVersionTxn(path, _inc32(node.version))

