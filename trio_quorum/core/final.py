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

from ..protocol.consts import OpCode, Perm
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
from ..protocol.txn import TxnHeader, TxnRecord
from .acl import check as acl_check
from .codes import (
    BADARGUMENTS,
    MARSHALLINGERROR,
    NOAUTH,
    NONODE,
    NOWATCHER,
    OK,
    T_CHECK,
    T_CREATE,
    T_CREATE2,
    T_CREATE_CONTAINER,
    T_CREATE_TTL,
    T_ERROR,
    T_GET_CHILDREN,
    T_GET_DATA,
    T_MULTI,
    T_RECONFIG,
    T_SET_ACL,
    T_SET_DATA,
    UNIMPLEMENTED,
)
from .datatree import ApplyResult, DataTree
from .node import DataNode
from .watches import WatchEvent

__sans_io__ = True

__all__ = ["Final", "Outcome", "mask_digest_acl"]

_NO_EVENTS: list[WatchEvent] = []  # shared, never mutated
_STAT_SIZE = STAT_STRUCT.size
#: ``Outcome(...)`` without the namedtuple's Python-level ``__new__``: the same
#: tuple (every write's result goes through it).
_new_tuple = tuple.__new__
_READ = int(Perm.READ)
_ADMIN = int(Perm.ADMIN)

_new = object.__new__


#: The reply body of an applied (err 0) txn that is a response of its result's
#: Stat or path alone, by txn type (ZooKeeper's ``FinalRequestProcessor``
#: switch): ``(response class, the setter of its one slot, True when that slot
#: is the path)``.  ``write`` makes the response with ``_new`` and the setter
#: (no ``__init__`` call on every setData/create), ``_outcome`` with the
#: class; ``write_frame`` encodes the Stat (68 bytes on the wire as it is) or
#: the path straight from the result.
_LONE_BODY: dict[int, tuple[type, Callable[[Any, Any], None], bool]] = {
    t: (cls, _slot_setter(cls, "path" if by_path else "stat"), by_path)
    for t, cls, by_path in (
        (T_SET_DATA, SetDataResponse, False),
        (T_SET_ACL, SetACLResponse, False),
        (T_CREATE, CreateResponse, True),
    )
}
#: The hot writes' entries, which write and write_frame take without the lookup
#: (a dict lookup costs ~40 ns there, the tree's nodes having pushed it out of cache).
_SET_DATA_BODY = _LONE_BODY[T_SET_DATA]
_CREATE_BODY = _LONE_BODY[T_CREATE]


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


_Ids = Sequence[Id]
#: A read's answer: ``(err, body, events)``.
_Reply = tuple[int, Any, list[WatchEvent]]
#: A read handler: ``(request, session_id, auth_ids, watcher) -> reply``.
_ReadHandler = Callable[[Any, int, _Ids, Hashable], _Reply]


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
            OpCode.getEphemerals: self._get_ephemerals,
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
        typ = hdr.type
        lone = _SET_DATA_BODY if typ == T_SET_DATA else _CREATE_BODY if typ == T_CREATE else _LONE_BODY.get(typ)
        if lone is not None and not rc.err:  # a body of the result's Stat or path alone
            cls, set_field, by_path = lone
            body: Any = _new(cls)
            set_field(body, rc.path if by_path else rc.stat)
            return _new_tuple(Outcome, (OK, body, tree.last_processed_zxid, rc.events, rc))
        return self._outcome(typ, rec, rc, tree.last_processed_zxid)

    def write_frame(
        self, hdr: TxnHeader, rec: TxnRecord | None, xid: int
    ) -> tuple[bytes, list[WatchEvent], ApplyResult]:
        """:meth:`write` and the reply frame in one call: ``(frame, events, result)``.

        ``frame`` is exactly ``proto.encode_reply(xid, oc.zxid, oc.err, oc.body
        if not oc.err else None)`` for ``oc = write(hdr, rec)``, ``events`` is
        ``oc.events`` and ``result`` is ``oc.result``.  For a caller that only
        sends the frame (the pipeline's final stage) it skips the Outcome and
        the response record where the body is the result's Stat or path alone.
        """
        tree = self.tree
        rc = tree.apply(hdr, rec)
        zxid = tree.last_processed_zxid
        typ = hdr.type
        if typ != T_MULTI:  # a multi answers err 0 and its results
            err = rc.err
            if err:
                return _pack_frame_reply(16, xid, zxid, err), rc.events, rc
            lone = _SET_DATA_BODY if typ == T_SET_DATA else _CREATE_BODY if typ == T_CREATE else _LONE_BODY.get(typ)
            if lone is not None:
                if not lone[2]:
                    st = rc.stat
                    if st.__class__ is bytes and len(st) == _STAT_SIZE:
                        return _pack_frame_reply(84, xid, zxid, 0) + st, rc.events, rc
                else:
                    path = rc.path
                    if path.__class__ is str:
                        p = path.encode()
                        n = len(p)
                        return _pack_frame_reply_len(20 + n, xid, zxid, 0, n) + p, rc.events, rc
        oc = self._outcome(typ, rec, rc, zxid)
        return encode_reply(xid, oc.zxid, oc.err, oc.body), oc.events, rc

    def _outcome(self, typ: int, rec: TxnRecord | None, rc: ApplyResult, zxid: int) -> Outcome:
        """The Outcome of an applied txn of type ``typ``.

        An error txn's code is ``rc.err`` (the tree copies it); a failed
        op's reply has no body.
        """
        if typ == T_MULTI:
            return _new_tuple(Outcome, (OK, _multi_response(rc), zxid, rc.events, rc))
        err = rc.err
        if err:
            return _new_tuple(Outcome, (err, None, zxid, rc.events, rc))
        body: Any = None
        lone = _LONE_BODY.get(typ)
        if lone is not None:
            body = lone[0](rc.path if lone[2] else rc.stat)
        elif typ == T_CREATE2 or typ == T_CREATE_TTL or typ == T_CREATE_CONTAINER:
            body = Create2Response(rc.path, rc.stat)  # type: ignore[arg-type]
        elif typ == T_CHECK or typ == T_RECONFIG:
            node = self.tree.nodes.get(rc.path) if rc.path is not None else None
            if node is not None:
                if typ == T_CHECK:
                    body = SetDataResponse(node.stat_bytes())
                else:
                    body = GetDataResponse(node.data, rc.stat if rc.stat is not None else node.stat_bytes())
        # delete, deleteContainer, closeSession, createSession, error 0: no body
        return _new_tuple(Outcome, (OK, body, zxid, rc.events, rc))

    # ------------------------------------------------------------ reads

    def read(
        self, opcode: int, request: Any, session_id: int, auth_ids: Sequence[Id], watcher: Hashable
    ) -> Outcome:
        """Answer a read-only request of ``session_id`` on connection ``watcher``.

        ``request`` is the decoded ``trio_quorum.protocol.records`` record (``None`` for
        whoAmI).  Unknown opcodes answer UNIMPLEMENTED; a malformed record
        answers MARSHALLINGERROR.
        """
        handler = self._reads.get(opcode)
        if handler is None:
            err, body, events = UNIMPLEMENTED, None, _NO_EVENTS
        else:
            try:
                err, body, events = handler(request, session_id, auth_ids, watcher)
            except (AttributeError, TypeError, ValueError):
                # A record of the wrong shape (ZooKeeper: exception -> MARSHALLINGERROR).
                err, body, events = MARSHALLINGERROR, None, _NO_EVENTS
        return _new_tuple(Outcome, (err, body, self.tree.last_processed_zxid, events, None))

    def _allowed(self, node: DataNode, perm: int, auth_ids: Sequence[Id]) -> bool:
        if self.skip_acl or node.acl == OPEN_UNSAFE_ACL_ID:
            return True
        return acl_check(self.tree.get_acl(node), perm, auth_ids)

    def _readable(self, path: str, perm: int, auth_ids: _Ids) -> tuple[int, DataNode | None]:
        """The node at ``path`` if it exists and the caller has ``perm`` on it."""
        n = self.tree.nodes.get(path)
        if n is None:
            return NONODE, None
        if n.acl != OPEN_UNSAFE_ACL_ID and not self._allowed(n, perm, auth_ids):
            return NOAUTH, None
        return OK, n

    def _get_data(self, req: Any, sid: int, ids: _Ids, watcher: Hashable) -> _Reply:
        err, n = self._readable(req.path, _READ, ids)
        if n is None:
            return err, None, _NO_EVENTS
        if req.watch:
            self.tree.watches.add_data_watch(req.path, watcher)
        return OK, GetDataResponse(n.data, n.stat_bytes()), _NO_EVENTS

    def _exists(self, req: Any, sid: int, ids: _Ids, watcher: Hashable) -> _Reply:
        path = req.path
        if "\0" in path:
            return BADARGUMENTS, None, _NO_EVENTS
        n = self.tree.nodes.get(path)
        if self.check_exists_acl and n is not None and not self._allowed(n, _READ, ids):
            return NOAUTH, None, _NO_EVENTS
        if req.watch:
            self.tree.watches.add_data_watch(path, watcher)
        if n is None:
            return NONODE, None, _NO_EVENTS
        return OK, ExistsResponse(n.stat_bytes()), _NO_EVENTS

    def _children_of(self, req: Any, ids: _Ids, watcher: Hashable) -> tuple[int, DataNode | None]:
        err, n = self._readable(req.path, _READ, ids)
        if n is not None and req.watch:
            self.tree.watches.add_child_watch(req.path, watcher)
        return err, n

    def _get_children(self, req: Any, sid: int, ids: _Ids, watcher: Hashable) -> _Reply:
        err, n = self._children_of(req, ids, watcher)
        if n is None:
            return err, None, _NO_EVENTS
        return OK, GetChildrenResponse(tuple(n.children or ())), _NO_EVENTS

    def _get_children2(self, req: Any, sid: int, ids: _Ids, watcher: Hashable) -> _Reply:
        err, n = self._children_of(req, ids, watcher)
        if n is None:
            return err, None, _NO_EVENTS
        return OK, GetChildren2Response(tuple(n.children or ()), n.stat_bytes()), _NO_EVENTS

    def _get_acl(self, req: Any, sid: int, ids: _Ids, watcher: Hashable) -> _Reply:
        err, n = self._readable(req.path, _READ | _ADMIN, ids)
        if n is None:
            return err, None, _NO_EVENTS
        acl = self.tree.get_acl(n)
        if not self._allowed(n, _ADMIN, ids):
            acl = mask_digest_acl(acl)
        return OK, GetACLResponse(tuple(acl), n.stat_bytes()), _NO_EVENTS

    def _get_all_children_number(self, req: Any, sid: int, ids: _Ids, watcher: Hashable) -> _Reply:
        err, n = self._readable(req.path, _READ, ids)
        if n is None:
            return err, None, _NO_EVENTS
        count = self.tree.get_all_children_number(req.path)
        return OK, GetAllChildrenNumberResponse(count), _NO_EVENTS

    def _get_ephemerals(self, req: Any, sid: int, ids: _Ids, watcher: Hashable) -> _Reply:
        prefix = getattr(req, "prefix_path", None)
        return OK, GetEphemeralsResponse(tuple(self.tree.get_ephemerals(sid, prefix))), _NO_EVENTS

    def _sync(self, req: Any, sid: int, ids: _Ids, watcher: Hashable) -> _Reply:
        return OK, SyncResponse(req.path), _NO_EVENTS

    def _multi_read(self, req: Any, sid: int, ids: _Ids, watcher: Hashable) -> _Reply:
        results: list[tuple[int, Any]] = []
        for opcode, sub in req.ops:
            if opcode != T_GET_DATA and opcode != T_GET_CHILDREN:
                # ZooKeeper fails the whole request (IOException -> MARSHALLINGERROR).
                return MARSHALLINGERROR, None, _NO_EVENTS
            err, body, _ = self._reads[opcode](sub, sid, ids, watcher)
            results.append((int(opcode), body) if err == OK else (T_ERROR, err))
        return OK, MultiResponse(tuple(results)), _NO_EVENTS

    def _check_watches(self, req: Any, sid: int, ids: _Ids, watcher: Hashable) -> _Reply:
        found = self.tree.watches.check_watches(req.path, req.type, watcher)
        return (OK if found else NOWATCHER), None, _NO_EVENTS

    def _remove_watches(self, req: Any, sid: int, ids: _Ids, watcher: Hashable) -> _Reply:
        found = self.tree.watches.remove_watches(req.path, req.type, watcher)
        return (OK if found else NOWATCHER), None, _NO_EVENTS

    def _add_watch(self, req: Any, sid: int, ids: _Ids, watcher: Hashable) -> _Reply:
        self.tree.watches.add_watch(req.path, watcher, req.mode)
        return OK, ErrorResponse(0), _NO_EVENTS

    def _set_watches(self, req: Any, sid: int, ids: _Ids, watcher: Hashable) -> _Reply:
        events = self.tree.set_watches(
            req.relative_zxid,
            req.data_watches,
            req.exist_watches,
            req.child_watches,
            req.persistent_watches,
            req.persistent_recursive_watches,
            watcher,
        )
        return OK, None, events

    def _whoami(self, req: Any, sid: int, ids: _Ids, watcher: Hashable) -> _Reply:
        if self._who_am_i is not None:
            infos = tuple(
                (ci.auth_scheme, ci.user) if hasattr(ci, "auth_scheme") else (ci[0], ci[1])
                for ci in self._who_am_i(ids)
            )
        else:
            infos = tuple((i.scheme, i.id) for i in ids)
        return OK, WhoAmIResponse(infos), _NO_EVENTS


def _multi_response(rc: ApplyResult) -> MultiResponse:
    results: list[tuple[int, Any]] = []
    for sub in rc.multi or ():
        t = sub.type
        if t == T_ERROR or sub.err:
            results.append((T_ERROR, sub.err))
        elif t == T_CREATE:
            results.append((t, CreateResponse(sub.path or "")))
        elif t == T_CREATE2 or t == T_CREATE_TTL or t == T_CREATE_CONTAINER:
            # OpResult.CreateResult with a Stat is always typed create2 on the wire.
            results.append((T_CREATE2, Create2Response(sub.path or "", sub.stat or b"\0" * 68)))
        elif t == T_SET_DATA:
            results.append((t, SetDataResponse(sub.stat or b"\0" * 68)))
        else:  # delete, deleteContainer, check: no body
            results.append((t, None))
    return MultiResponse(tuple(results))
