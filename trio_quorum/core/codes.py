"""Plain-int copies of the protocol enums the cores compare against (sans-IO).

An ``IntEnum`` member compares and hashes through Enum code; the write path
compares opcodes and error codes for every request, so the cores use these
ints.  One copy here, not one per core: each value is ``int()`` of the enum
member it is named after, and nothing else may live in this module.
"""

from __future__ import annotations

from ..protocol.consts import Err, OpCode

__sans_io__ = True

# error codes
OK = 0
NONODE = int(Err.NONODE)
NODEEXISTS = int(Err.NODEEXISTS)
NOAUTH = int(Err.NOAUTH)
BADARGUMENTS = int(Err.BADARGUMENTS)
NOWATCHER = int(Err.NOWATCHER)
MARSHALLINGERROR = int(Err.MARSHALLINGERROR)
UNIMPLEMENTED = int(Err.UNIMPLEMENTED)
RUNTIMEINCONSISTENCY = int(Err.RUNTIMEINCONSISTENCY)

# opcodes (= txn types)
T_ERROR = int(OpCode.error)
T_CREATE = int(OpCode.create)
T_CREATE2 = int(OpCode.create2)
T_CREATE_TTL = int(OpCode.createTTL)
T_CREATE_CONTAINER = int(OpCode.createContainer)
T_DELETE = int(OpCode.delete)
T_DELETE_CONTAINER = int(OpCode.deleteContainer)
T_SET_DATA = int(OpCode.setData)
T_SET_ACL = int(OpCode.setACL)
T_CHECK = int(OpCode.check)
T_MULTI = int(OpCode.multi)
T_CREATE_SESSION = int(OpCode.createSession)
T_CLOSE_SESSION = int(OpCode.closeSession)
T_RECONFIG = int(OpCode.reconfig)
T_GET_DATA = int(OpCode.getData)
T_GET_CHILDREN = int(OpCode.getChildren)
T_GET_EPHEMERALS = int(OpCode.getEphemerals)

#: Sub-ops a client's write multi may hold (``MultiOperationRecord``).
MULTI_OPS = frozenset({T_CREATE, T_CREATE2, T_CREATE_TTL, T_CREATE_CONTAINER, T_DELETE, T_SET_DATA, T_CHECK})
