"""A Trio-native ZooKeeper client: ``async with open_client("h1:2181,h2:2181") as zk``.

See ``docs/client.md``.  The public face is re-exported here; the modules
behind it: :mod:`.core` (sans-IO protocol state), :mod:`.session` (the Trio
driver), :mod:`.ops` (operations and watches), :mod:`.transaction`,
:mod:`.recipes`, :mod:`.errors`.
"""

from __future__ import annotations

from ..protocol.consts import AddWatchMode, EventType, KeeperState, Perm, WatcherType
from ..protocol.data import ACL, CREATOR_ALL_ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, Id, Stat
from .client import Client, open_client
from .core import SessionState, WatchedEvent
from .errors import *  # noqa: F403 - every error class is public
from .errors import __all__ as _errors_all
from .ops import ChildrenEvent, DataEvent, Watch
from .recipes._util import retry
from .transaction import MultiRead, RolledBack, Transaction

__all__ = [
    "open_client",
    "retry",
    "Client",
    "SessionState",
    "WatchedEvent",
    "DataEvent",
    "ChildrenEvent",
    "Watch",
    "Transaction",
    "MultiRead",
    "RolledBack",
    "AddWatchMode",
    "EventType",
    "KeeperState",
    "WatcherType",
    "Perm",
    "ACL",
    "Id",
    "Stat",
    "OPEN_ACL_UNSAFE",
    "CREATOR_ALL_ACL",
    "READ_ACL_UNSAFE",
    *_errors_all,
]
