"""ZooKeeper protocol constants: opcodes, error codes, flags, permissions, events.

Values are ZooKeeper's (``ZooDefs.OpCode``, ``KeeperException.Code``,
``CreateMode``, ``ZooDefs.Perms``, ``Watcher.Event``); see
``shared/reference/zookeeper-protocol.md`` sections 1.4, 1.5 and 1.8.
"""

from __future__ import annotations

__sans_io__ = True

from enum import IntEnum

__all__ = [
    "OpCode",
    "Err",
    "KeeperError",
    "CreateFlag",
    "Perm",
    "EventType",
    "KeeperState",
    "WatcherType",
    "AddWatchMode",
    "Xid",
    "ServerState",
    "EPHEMERAL_CONTAINER",
    "TTL_MASK",
]


class OpCode(IntEnum):
    notification = 0
    create = 1
    delete = 2
    exists = 3
    getData = 4
    setData = 5
    getACL = 6
    setACL = 7
    getChildren = 8
    sync = 9
    ping = 11
    getChildren2 = 12
    check = 13
    multi = 14
    create2 = 15
    reconfig = 16
    checkWatches = 17
    removeWatches = 18
    createContainer = 19
    deleteContainer = 20
    createTTL = 21
    multiRead = 22
    auth = 100
    setWatches = 101
    sasl = 102
    getEphemerals = 103
    getAllChildrenNumber = 104
    setWatches2 = 105
    addWatch = 106
    whoAmI = 107
    createSession = -10
    closeSession = -11
    error = -1


#: Opcodes that change state and therefore become transactions.
WRITE_OPS = frozenset(
    {
        OpCode.create,
        OpCode.create2,
        OpCode.createContainer,
        OpCode.createTTL,
        OpCode.delete,
        OpCode.deleteContainer,
        OpCode.setData,
        OpCode.setACL,
        OpCode.check,
        OpCode.multi,
        OpCode.reconfig,
        OpCode.createSession,
        OpCode.closeSession,
    }
)


class Err(IntEnum):
    """``KeeperException.Code`` values."""

    OK = 0
    SYSTEMERROR = -1
    RUNTIMEINCONSISTENCY = -2
    DATAINCONSISTENCY = -3
    CONNECTIONLOSS = -4
    MARSHALLINGERROR = -5
    UNIMPLEMENTED = -6
    OPERATIONTIMEOUT = -7
    BADARGUMENTS = -8
    UNKNOWNSESSION = -12
    NEWCONFIGNOQUORUM = -13
    RECONFIGINPROGRESS = -14
    APIERROR = -100
    NONODE = -101
    NOAUTH = -102
    BADVERSION = -103
    NOCHILDRENFOREPHEMERALS = -108
    NODEEXISTS = -110
    NOTEMPTY = -111
    SESSIONEXPIRED = -112
    INVALIDCALLBACK = -113
    INVALIDACL = -114
    AUTHFAILED = -115
    SESSIONMOVED = -118
    NOTREADONLY = -119
    EPHEMERALONLOCALSESSION = -120
    NOWATCHER = -121
    REQUESTTIMEOUT = -122
    RECONFIGDISABLED = -123
    SESSIONCLOSEDREQUIRESASLAUTH = -124
    QUOTAEXCEEDED = -125
    THROTTLEDOP = -127


class KeeperError(Exception):
    """A ZooKeeper error code raised inside the server's cores.

    ``path`` names the znode the error is about, when there is one.
    """

    def __init__(self, code: Err | int, path: str | None = None) -> None:
        self.code = Err(code)
        self.path = path
        super().__init__(f"{self.code.name}" + (f" for {path}" if path else ""))


class CreateFlag(IntEnum):
    """``CreateMode`` flag values as sent in CreateRequest.flags."""

    PERSISTENT = 0
    EPHEMERAL = 1
    PERSISTENT_SEQUENTIAL = 2
    EPHEMERAL_SEQUENTIAL = 3
    CONTAINER = 4
    PERSISTENT_WITH_TTL = 5
    PERSISTENT_SEQUENTIAL_WITH_TTL = 6


class Perm(IntEnum):
    READ = 1
    WRITE = 2
    CREATE = 4
    DELETE = 8
    ADMIN = 16
    ALL = 31


class EventType(IntEnum):
    None_ = -1
    NodeCreated = 1
    NodeDeleted = 2
    NodeDataChanged = 3
    NodeChildrenChanged = 4
    DataWatchRemoved = 5
    ChildWatchRemoved = 6
    PersistentWatchRemoved = 7


class KeeperState(IntEnum):
    Unknown = -1
    Disconnected = 0
    NoSyncConnected = 1
    SyncConnected = 3
    AuthFailed = 4
    ConnectedReadOnly = 5
    SaslAuthenticated = 6
    Expired = -112
    Closed = 7


class WatcherType(IntEnum):
    """``type`` of checkWatches / removeWatches."""

    Children = 1
    Data = 2
    Any = 3
    Persistent = 4
    PersistentRecursive = 5


class AddWatchMode(IntEnum):
    PERSISTENT = 0
    PERSISTENT_RECURSIVE = 1


class Xid(IntEnum):
    """Special xids in request/reply headers."""

    NOTIFICATION = -1
    PING = -2
    AUTH = -4
    SET_WATCHES = -8


class ServerState(IntEnum):
    """QuorumPeer states; the ordinal is FastLeaderElection's ``state`` field."""

    LOOKING = 0
    FOLLOWING = 1
    LEADING = 2
    OBSERVING = 3


#: ``ephemeralOwner`` of a container node (``EphemeralType.CONTAINER``).
EPHEMERAL_CONTAINER = -0x8000000000000000
#: High byte 0xFF marks a TTL node's ephemeralOwner; the low 40 bits are the TTL in ms.
TTL_MASK = 0xFF00000000000000
MAX_TTL = (1 << 40) - 1
