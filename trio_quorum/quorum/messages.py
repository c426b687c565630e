"""The message catalogues of the two peer links: election notifications and ZAB packets (sans-IO).

One table per channel, mapping each record class of the cores
(``quorum/election.py``, ``quorum/zab_packets.py``) to a wire tag and a
field schema; ``quorum/wire.py`` derives the strict encoder and decoder from
it.  Tags follow ZooKeeper's packet numbers (+ 16, below which the link keeps
its own control messages) so a trace reads like ZooKeeper's.

Opaque payloads of the cores are bytes on the wire:

* ``Proposal.txn`` / ``Inform.txn``: one txn as the log stores it
  (``protocol.txn.encode_txn``: header + record);
* ``Snap.snapshot``: a ZooKeeper-format snapshot of the tree;
* ``Request.payload``: a forwarded client write (``server/forward.py``);
* ``SyncRequest.token`` / ``Sync.token``: an int chosen by the follower.

Limits: a quorum frame may carry a whole snapshot, so its byte limits are
raised (``QUORUM_LIMITS``); the election channel keeps the small defaults.
"""

from __future__ import annotations

from collections.abc import Mapping

from . import zab_packets as p
from .election import Notification, ServerState
from .wire import DEFAULT_LIMITS, Catalogue, FieldType, Int, Limits, WireError

__sans_io__ = True

__all__ = ["ELECTION", "QUORUM", "QUORUM_LIMITS", "ELECTION_LIMITS"]

ELECTION_LIMITS = DEFAULT_LIMITS
#: A SNAP carries the whole tree in one message.
QUORUM_LIMITS = Limits(max_frame_bytes=1 << 30, max_bytes=1 << 30, max_list=1 << 20, max_messages=1 << 20)


class _Touches(FieldType):
    """``Ping.touches``: session id -> timeout ms, as a flat array [sid, timeout, sid, timeout, ...]."""

    name = "touches"

    def to_wire(self, value: object, limits: Limits) -> object:
        if not isinstance(value, Mapping):
            raise WireError(f"expected a mapping of touches, got {type(value).__name__}")
        out: list[object] = []
        for k, v in value.items():
            out.append(_LONG.to_wire(k, limits))
            out.append(_INT32.to_wire(v, limits))
        return out

    def from_wire(self, value: object, limits: Limits) -> object:
        if type(value) is not list or len(value) % 2 or len(value) > 2 * limits.max_list:
            raise WireError("touches must be an even-length array [session, timeout, ...]")
        return {_LONG.from_wire(value[i], limits): _INT32.from_wire(value[i + 1], limits)
                for i in range(0, len(value), 2)}


_LONG = Int()
_INT32 = Int(-(2**31), 2**31 - 1)

ELECTION = Catalogue("election")
ELECTION.register(16, Notification, (
    ("state", ServerState), ("leader", int), ("zxid", int), ("election_epoch", int), ("peer_epoch", int),
    ("sid", int), ("config_version", int),
))

QUORUM = Catalogue("quorum")
_Q: list[tuple[int, type, tuple[tuple[str, object], ...]]] = [
    (16 + 1, p.Request, (("payload", bytes),)),
    (16 + 2, p.Proposal, (("zxid", int), ("txn", bytes))),
    (16 + 3, p.Ack, (("zxid", int),)),
    (16 + 4, p.Commit, (("zxid", int),)),
    (16 + 5, p.Ping, (("touches", _Touches()),)),
    (16 + 6, p.Revalidate, (("session_id", int), ("timeout", _INT32))),
    (16 + 22, p.RevalidateAnswer, (("session_id", int), ("valid", bool))),
    (16 + 7, p.SyncRequest, (("token", int),)),
    (16 + 23, p.Sync, (("token", int),)),
    (16 + 8, p.Inform, (("zxid", int), ("txn", bytes))),
    (16 + 10, p.NewLeader, (("zxid", int),)),
    (16 + 11, p.FollowerInfo, (("sid", int), ("accepted_epoch", int), ("last_zxid", int))),
    (16 + 12, p.UpToDate, ()),
    (16 + 13, p.Diff, (("zxid", int),)),
    (16 + 14, p.Trunc, (("zxid", int),)),
    (16 + 15, p.Snap, (("zxid", int), ("snapshot", bytes))),
    (16 + 16, p.ObserverInfo, (("sid", int), ("accepted_epoch", int), ("last_zxid", int))),
    (16 + 17, p.LeaderInfo, (("epoch", int),)),
    (16 + 18, p.AckEpoch, (("current_epoch", int), ("last_zxid", int))),
]
for _tag, _cls, _fields in _Q:
    QUORUM.register(_tag, _cls, _fields)
