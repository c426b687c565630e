"""The last stage of request processing: ZooKeeper's ``FinalRequestProcessor`` (sans-IO).

:class:`Final` owns nothing but a reference to the :class:`~trio_quorum.core.datatree.DataTree`.
For a **write** (a txn that went through prep and, where there is one, the
log and the quorum) :meth:`Final.write` applies it to the tree and builds the
client's reply; for a **read** :meth:`Final.read` checks the READ ACL as
ZooKeeper 3.8.0 does, registers the watch, and builds the reply.  Both return
an :class:`Outcome`: reply error, reply body (a ``trio_quorum.protocol.records`` response
record or ``None``), the reply zxid, and the watch events to deliver.  The
caller (the pipeline's final stage) encodes with ``proto.encode_reply(xid,
zxid, err, body)`` and hands each event to its watcher's connection.

Rules taken from ZooKeeper 3.8.0 (``FinalRequestProcessor``):

* The reply zxid is the tree's ``last_processed_zxid`` after this request.
* An ``error`` txn answers its code with no body.  A multi always answers
  err 0 and a ``MultiResponse``; a failed multi's results are all errors.
* Reads: getData / getChildren / getChildren2 / getAllChildrenNumber need READ;
  getACL needs READ or ADMIN and masks digest ids (``user:x``) without ADMIN;
  exists checks no ACL (added in 3.8.4; opt in with ``check_exists_acl``) and
  sets its watch even on NONODE; the other reads set no watch on NONODE/NOAUTH.
* checkWatches / removeWatches answer NOWATCHER when nothing matches; the
  server sends no "watch removed" event (the client library makes those).
* An unknown watcher type or addWatch mode answers MARSHALLINGERROR (ZooKeeper's
  catch-all for an exception while handling a request).

Invariants: no IO, no clock; never raises for client input (bad input becomes
an error reply); the hot read path is a dict lookup, an ACL short-circuit for
OPEN_ACL_UNSAFE (cache id -1) and one ``stat_bytes()``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, NamedTuple

from ..protocol.consts import Err, OpCode, Perm
from ..protocol.data import ACL, OPEN_UNSAFE_ACL_ID, STAT_STRUCT, Id
from ..protocol.records import (
    Create2Response,
    CreateResponse,
    ErrorResponse,
    ExistsResponse,
    GetACLResponse,
    GetAllChildrenNumberResponse,
    GetChildren2Response,
    GetChildrenResponse,
    GetDataResponse,
    GetEphemeralsResponse,
    MultiResponse,
    SetACLResponse,
    SetDataResponse,
    SyncResponse,
    WhoAmIResponse,
    _pack_frame_reply,
    _pack_frame_reply_len,
    _slot_setter,
    encode_reply,
)
from ..protocol.txn import ErrorTxn, TxnHeader, TxnRecord
from .acl import check as acl_check
from .datatree import ApplyResult, DataTree
from .node import DataNode
from .watches import WatchEvent

__sans_io__ = True

__all__ = ["Final", "Outcome", "mask_digest_acl"]

_OK = 0
_NONODE = int(Err.NONODE)
_NOAUTH = int(Err.NOAUTH)
_BADARGUMENTS = int(Err.BADARGUMENTS)
_NOWATCHER = int(Err.NOWATCHER)
_MARSHALLINGERROR = int(Err.MARSHALLINGERROR)
_UNIMPLEMENTED = int(Err.UNIMPLEMENTED)
_READ = int(Perm.READ)
_ADMIN = int(Perm.ADMIN)
_ERROR = int(OpCode.error)
_GET_DATA = int(OpCode.getData)
_MULTI = int(OpCode.multi)
_SET_DATA = int(OpCode.setData)
_CREATE = int(OpCode.create)
_CREATE2_TYPES = frozenset({int(OpCode.create2), int(OpCode.createTTL), int(OpCode.createContainer)})
_SET_ACL = int(OpCode.setACL)
_CHECK = int(OpCode.check)
_RECONFIG = int(OpCode.reconfig)
_GET_EPHEMERALS = int(OpCode.getEphemerals)
_NO_EVENTS: list[WatchEvent] = []  # shared, never mutated
_new_tuple = tuple.__new__
_STAT_SIZE = STAT_STRUCT.size
_new = object.__new__
_set_sd_stat = _slot_setter(SetDataResponse, "stat")
_set_cr_path = _slot_setter(CreateResponse, "path")


class Outcome(NamedTuple):
    """One reply: ``err`` and ``body`` for ``ReplyHeader``/record, ``zxid`` for the
    header, ``events`` to deliver (``(watcher, event_type, path)``), and for a
    write the tree's :class:`~trio_quorum.core.datatree.ApplyResult`."""

    err: int
    body: Any
    zxid: int
    events: list[WatchEvent]
    result: ApplyResult | None = None


def mask_digest_acl(acl: Sequence[ACL]) -> tuple[ACL, ...]:
    """getACL without ADMIN: digest ids become ``user:x`` (``replaceAll(":.*", ":x")``)."""
    out = []
    for a in acl:
        if a.id.scheme == "digest":
            ident = a.id.id
            i = ident.find(":")
            if i >= 0:
                a = ACL(a.perms, Id("digest", ident[:i] + ":x"))
        out.append(a)
    return tuple(out)


_ReadHandler = Callable[[Any, int, Sequence[Id], Hashable], tuple[int, Any, list[WatchEvent]]]


class Final:
    """``FinalRequestProcessor`` over one :class:`DataTree`.

    Args:
        tree: the data tree this server applies to and reads from.
        skip_acl: ZooKeeper's ``zookeeper.skipACL=yes``.
        check_exists_acl: require READ for exists (ZooKeeper 3.8.4+ behaviour).
        who_am_i: maps auth ids to whoAmI entries, ``ClientInfo`` records or
            ``(scheme, user)`` pairs (``AuthRegistry.who_am_i``); the default
            reports the raw ids.
    """

    __slots__ = ("tree", "skip_acl", "check_exists_acl", "_who_am_i", "_reads")

    def __init__(
        self,
        tree: DataTree,
        *,
        skip_acl: bool = False,
        check_exists_acl: bool = False,
        who_am_i: Callable[[Sequence[Id]], Sequence[Any]] | None = None,
    ) -> None:
        self.tree = tree
        self.skip_acl = skip_acl
        self.check_exists_acl = check_exists_acl
        self._who_am_i = who_am_i
        self._reads: dict[int, _ReadHandler] = {
            OpCode.getData: self._get_data,
            OpCode.exists: self._exists,
            OpCode.getChildren: self._get_children,
            OpCode.getChildren2: self._get_children2,
            OpCode.getACL: self._get_acl,
            OpCode.getAllChildrenNumber: self._get_all_children_number,
            OpCode.sync: self._sync,
            OpCode.multiRead: self._multi_read,
            OpCode.checkWatches: self._check_watches,
            OpCode.removeWatches: self._remove_watches,
            OpCode.addWatch: self._add_watch,
            OpCode.setWatches: self._set_watches,
            OpCode.setWatches2: self._set_watches,
            OpCode.whoAmI: self._whoami,
        }

    # ------------------------------------------------------------ writes

    def write(self, hdr: TxnHeader, rec: TxnRecord | None) -> Outcome:
        """Apply a committed txn and build its reply.

        Every txn must come here in zxid order, including those of other
        servers' sessions (their replies are simply not sent) and createSession
        (its reply is the connect response, which the session layer builds).
        """
        tree = self.tree
        rc = tree.apply(hdr, rec)
        zxid = tree.last_processed_zxid
        typ = hdr.type
        # Outcome(...) without the namedtuple's Python-level __new__: same tuple.
        if typ == _SET_DATA:  # the hot writes first (same answers as below)
            err = rc.err
            if err:
                return _new_tuple(Outcome, (err, None, zxid, rc.events, rc))
            sresp = _new(SetDataResponse)  # SetDataResponse(rc.stat), without __init__
            _set_sd_stat(sresp, rc.stat)
            return _new_tuple(Outcome, (_OK, sresp, zxid, rc.events, rc))
        if typ == _CREATE:
            err = rc.err
            if err:
                return _new_tuple(Outcome, (err, None, zxid, rc.events, rc))
            cresp = _new(CreateResponse)  # CreateResponse(rc.path), without __init__
            _set_cr_path(cresp, rc.path)
            return _new_tuple(Outcome, (_OK, cresp, zxid, rc.events, rc))
        return self._outcome(typ, rec, rc, zxid)

    def write_frame(
        self, hdr: TxnHeader, rec: TxnRecord | None, xid: int
    ) -> tuple[bytes, list[WatchEvent], ApplyResult]:
        """:meth:`write` and the reply frame in one call: ``(frame, events, result)``.

        ``frame`` is exactly ``proto.encode_reply(xid, oc.zxid, oc.err, oc.body
        if not oc.err else None)`` for ``oc = write(hdr, rec)``, ``events`` is
        ``oc.events`` and ``result`` is ``oc.result``.  For a caller that only
        sends the frame (the pipeline's final stage) it skips the Outcome, the
        response record and the encoder's dispatch on the hot writes.
        """
        tree = self.tree
        rc = tree.apply(hdr, rec)
        zxid = tree.last_processed_zxid
        typ = hdr.type
        err = rc.err
        if typ == _SET_DATA:
            st = rc.stat
            if err:
                return _pack_frame_reply(16, xid, zxid, err), rc.events, rc
            if st.__class__ is bytes and len(st) == _STAT_SIZE:
                return _pack_frame_reply(84, xid, zxid, 0) + st, rc.events, rc
        elif typ == _CREATE:
            if err:
                return _pack_frame_reply(16, xid, zxid, err), rc.events, rc
            path = rc.path
            if path.__class__ is str:
                p = path.encode()
                n = len(p)
                return _pack_frame_reply_len(20 + n, xid, zxid, 0, n) + p, rc.events, rc
        oc = self._outcome(typ, rec, rc, zxid)
        return encode_reply(xid, oc.zxid, oc.err, oc.body if not oc.err else None), oc.events, rc

    def _outcome(self, typ: int, rec: TxnRecord | None, rc: ApplyResult, zxid: int) -> Outcome:
        """The Outcome of an applied txn of type ``typ`` (``write``'s general part)."""
        tree = self.tree
        if typ == _ERROR:
            err = rec.err if isinstance(rec, ErrorTxn) else rc.err
            return Outcome(err, None, zxid, rc.events, rc)
        if typ == _MULTI:
            return Outcome(_OK, _multi_response(rc), zxid, rc.events, rc)
        err = rc.err
        if err:
            return Outcome(err, None, zxid, rc.events, rc)
        body: Any = None
        if typ == _SET_DATA:
            body = SetDataResponse(rc.stat)  # type: ignore[arg-type]
        elif typ == _CREATE:
            body = CreateResponse(rc.path)  # type: ignore[arg-type]
        elif typ in _CREATE2_TYPES:
            body = Create2Response(rc.path, rc.stat)  # type: ignore[arg-type]
        elif typ == _SET_ACL:
            body = SetACLResponse(rc.stat)  # type: ignore[arg-type]
        elif typ == _CHECK:
            node = tree.nodes.get(rc.path) if rc.path is not None else None
            body = SetDataResponse(node.stat_bytes()) if node is not None else None
        elif typ == _RECONFIG:
            node = tree.nodes.get(rc.path) if rc.path is not None else None
            if node is not None:
                body = GetDataResponse(
                    node.data, rc.stat if rc.stat is not None else node.stat_bytes()
                )
        # delete, deleteContainer, closeSession, createSession: no body
        return Outcome(_OK, body, zxid, rc.events, rc)

    # ------------------------------------------------------------ reads

    def read(
        self, opcode: int, request: Any, session_id: int, auth_ids: Sequence[Id], watcher: Hashable
    ) -> Outcome:
        """Answer a read-only request of ``session_id`` on connection ``watcher``.

        ``request`` is the decoded ``trio_quorum.protocol.records`` record (``None`` for
        whoAmI).  Unknown opcodes answer UNIMPLEMENTED; a malformed record
        answers MARSHALLINGERROR.
        """
        tree = self.tree
        try:
            if opcode == _GET_DATA:  # the hot path, without the dispatch
                path = request.path
                n = tree.nodes.get(path)
                if n is None:
                    return Outcome(_NONODE, None, tree.last_processed_zxid, _NO_EVENTS)
                if n.acl != OPEN_UNSAFE_ACL_ID and not self._allowed(n, _READ, auth_ids):
                    return Outcome(_NOAUTH, None, tree.last_processed_zxid, _NO_EVENTS)
                if request.watch:
                    tree.watches.add_data_watch(path, watcher)
                body = GetDataResponse(n.data, n.stat_bytes())
                return Outcome(_OK, body, tree.last_processed_zxid, _NO_EVENTS)
            if opcode == _GET_EPHEMERALS:
                return self._get_ephemerals(request, session_id)
            handler = self._reads.get(opcode)
            if handler is None:
                return Outcome(_UNIMPLEMENTED, None, tree.last_processed_zxid, _NO_EVENTS)
            err, body, events = handler(request, session_id, auth_ids, watcher)
        except (AttributeError, TypeError, ValueError):
            # A record of the wrong shape (ZooKeeper: exception -> MARSHALLINGERROR).
            err, body, events = _MARSHALLINGERROR, None, _NO_EVENTS
        return Outcome(err, body, tree.last_processed_zxid, events)

    def _allowed(self, node: DataNode, perm: int, auth_ids: Sequence[Id]) -> bool:
        if self.skip_acl or node.acl == OPEN_UNSAFE_ACL_ID:
            return True
        return acl_check(self.tree.get_acl(node), perm, auth_ids)

    def _get_data(
        self, req: Any, session_id: int, auth_ids: Sequence[Id], watcher: Hashable
    ) -> tuple[int, Any, list[WatchEvent]]:
        n = self.tree.nodes.get(req.path)
        if n is None:
            return _NONODE, None, _NO_EVENTS
        if not self._allowed(n, _READ, auth_ids):
            return _NOAUTH, None, _NO_EVENTS
        if req.watch:
            self.tree.watches.add_data_watch(req.path, watcher)
        return _OK, GetDataResponse(n.data, n.stat_bytes()), _NO_EVENTS

    def _exists(
        self, req: Any, session_id: int, auth_ids: Sequence[Id], watcher: Hashable
    ) -> tuple[int, Any, list[WatchEvent]]:
        path = req.path
        if "\0" in path:
            return _BADARGUMENTS, None, _NO_EVENTS
        n = self.tree.nodes.get(path)
        if self.check_exists_acl and n is not None and not self._allowed(n, _READ, auth_ids):
            return _NOAUTH, None, _NO_EVENTS
        if req.watch:
            self.tree.watches.add_data_watch(path, watcher)
        if n is None:
            return _NONODE, None, _NO_EVENTS
        return _OK, ExistsResponse(n.stat_bytes()), _NO_EVENTS

    def _children_of(
        self, req: Any, auth_ids: Sequence[Id], watcher: Hashable
    ) -> tuple[int, DataNode | None]:
        n = self.tree.nodes.get(req.path)
        if n is None:
            return _NONODE, None
        if not self._allowed(n, _READ, auth_ids):
            return _NOAUTH, None
        if req.watch:
            self.tree.watches.add_child_watch(req.path, watcher)
        return _OK, n

    def _get_children(
        self, req: Any, session_id: int, auth_ids: Sequence[Id], watcher: Hashable
    ) -> tuple[int, Any, list[WatchEvent]]:
        err, n = self._children_of(req, auth_ids, watcher)
        if n is None:
            return err, None, _NO_EVENTS
        return _OK, GetChildrenResponse(tuple(n.children or ())), _NO_EVENTS

    def _get_children2(
        self, req: Any, session_id: int, auth_ids: Sequence[Id], watcher: Hashable
    ) -> tuple[int, Any, list[WatchEvent]]:
        err, n = self._children_of(req, auth_ids, watcher)
        if n is None:
            return err, None, _NO_EVENTS
        return _OK, GetChildren2Response(tuple(n.children or ()), n.stat_bytes()), _NO_EVENTS

    def _get_acl(
        self, req: Any, session_id: int, auth_ids: Sequence[Id], watcher: Hashable
    ) -> tuple[int, Any, list[WatchEvent]]:
        n = self.tree.nodes.get(req.path)
        if n is None:
            return _NONODE, None, _NO_EVENTS
        if not self._allowed(n, _READ | _ADMIN, auth_ids):
            return _NOAUTH, None, _NO_EVENTS
        acl = self.tree.get_acl(n)
        if not self._allowed(n, _ADMIN, auth_ids):
            acl = mask_digest_acl(acl)
        return _OK, GetACLResponse(tuple(acl), n.stat_bytes()), _NO_EVENTS

    def _get_all_children_number(
        self, req: Any, session_id: int, auth_ids: Sequence[Id], watcher: Hashable
    ) -> tuple[int, Any, list[WatchEvent]]:
        n = self.tree.nodes.get(req.path)
        if n is None:
            return _NONODE, None, _NO_EVENTS
        if not self._allowed(n, _READ, auth_ids):
            return _NOAUTH, None, _NO_EVENTS
        return (
            _OK,
            GetAllChildrenNumberResponse(self.tree.get_all_children_number(req.path)),
            _NO_EVENTS,
        )

    def _get_ephemerals(self, req: Any, session_id: int) -> Outcome:
        prefix = getattr(req, "prefix_path", None)
        eph = tuple(self.tree.get_ephemerals(session_id, prefix))
        return Outcome(_OK, GetEphemeralsResponse(eph), self.tree.last_processed_zxid, _NO_EVENTS)

    def _sync(
        self, req: Any, session_id: int, auth_ids: Sequence[Id], watcher: Hashable
    ) -> tuple[int, Any, list[WatchEvent]]:
        return _OK, SyncResponse(req.path), _NO_EVENTS

    def _multi_read(
        self, req: Any, session_id: int, auth_ids: Sequence[Id], watcher: Hashable
    ) -> tuple[int, Any, list[WatchEvent]]:
        results: list[tuple[int, Any]] = []
        for opcode, sub in req.ops:
            if opcode == OpCode.getData:
                err, body, _ = self._get_data(sub, session_id, auth_ids, watcher)
            elif opcode == OpCode.getChildren:
                err, body, _ = self._get_children(sub, session_id, auth_ids, watcher)
            else:
                # ZooKeeper fails the whole request (IOException -> MARSHALLINGERROR).
                return _MARSHALLINGERROR, None, _NO_EVENTS
            results.append((int(opcode), body) if err == _OK else (_ERROR, err))
        return _OK, MultiResponse(tuple(results)), _NO_EVENTS

    def _check_watches(
        self, req: Any, session_id: int, auth_ids: Sequence[Id], watcher: Hashable
    ) -> tuple[int, Any, list[WatchEvent]]:
        if self.tree.watches.check_watches(req.path, req.type, watcher):
            return _OK, None, _NO_EVENTS
        return _NOWATCHER, None, _NO_EVENTS

    def _remove_watches(
        self, req: Any, session_id: int, auth_ids: Sequence[Id], watcher: Hashable
    ) -> tuple[int, Any, list[WatchEvent]]:
        if self.tree.watches.remove_watches(req.path, req.type, watcher):
            return _OK, None, _NO_EVENTS
        return _NOWATCHER, None, _NO_EVENTS

    def _add_watch(
        self, req: Any, session_id: int, auth_ids: Sequence[Id], watcher: Hashable
    ) -> tuple[int, Any, list[WatchEvent]]:
        self.tree.watches.add_watch(req.path, watcher, req.mode)
        return _OK, ErrorResponse(0), _NO_EVENTS

    def _set_watches(
        self, req: Any, session_id: int, auth_ids: Sequence[Id], watcher: Hashable
    ) -> tuple[int, Any, list[WatchEvent]]:
        events = self.tree.set_watches(
            req.relative_zxid,
            req.data_watches,
            req.exist_watches,
            req.child_watches,
            req.persistent_watches,
            req.persistent_recursive_watches,
            watcher,
        )
        return _OK, None, events

    def _whoami(
        self, req: Any, session_id: int, auth_ids: Sequence[Id], watcher: Hashable
    ) -> tuple[int, Any, list[WatchEvent]]:
        if self._who_am_i is not None:
            infos = tuple(
                (ci.auth_scheme, ci.user) if hasattr(ci, "auth_scheme") else (ci[0], ci[1])
                for ci in self._who_am_i(auth_ids)
            )
        else:
            infos = tuple((i.scheme, i.id) for i in auth_ids)
        return _OK, WhoAmIResponse(infos), _NO_EVENTS


_CREATE2 = int(OpCode.create2)


def _multi_response(rc: ApplyResult) -> MultiResponse:
    results: list[tuple[int, Any]] = []
    for sub in rc.multi or ():
        t = sub.type
        if t == _ERROR or sub.err:
            results.append((_ERROR, sub.err))
        elif t == OpCode.create:
            results.append((t, CreateResponse(sub.path or "")))
        elif t in (OpCode.create2, OpCode.createTTL, OpCode.createContainer):
            # OpResult.CreateResult with a Stat is always typed create2 on the wire.
            results.append((_CREATE2, Create2Response(sub.path or "", sub.stat or b"\0" * 68)))
        elif t == OpCode.setData:
            results.append((t, SetDataResponse(sub.stat or b"\0" * 68)))
        else:  # delete, deleteContainer, check: no body
            results.append((t, None))
    return MultiResponse(tuple(results))
