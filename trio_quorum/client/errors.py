"""ZooKeeper's errors as typed exceptions, one class per ``KeeperException.Code`` (sans-IO).

Every class derives from :class:`ZookeeperError` and carries ``code`` (the
:class:`~trio_quorum.protocol.consts.Err`) and ``path`` (the znode, when the
error is about one).  Names follow kazoo's (``NoNodeError``,
``NodeExistsError``, ``SessionExpiredError`` ...) so kazoo users can catch
what they already know; :func:`error_for` maps a wire code to an instance.

Invariants: one class per code; an unknown code maps to the base class with the
raw code kept, never to a wrong subclass.
"""

from __future__ import annotations

__sans_io__ = True

from ..protocol.consts import Err

__all__ = [
    "ZookeeperError",
    "SystemZookeeperError",
    "RuntimeInconsistency",
    "DataInconsistency",
    "ConnectionLoss",
    "MarshallingError",
    "UnimplementedError",
    "OperationTimeoutError",
    "BadArgumentsError",
    "UnknownSessionError",
    "NewConfigNoQuorumError",
    "ReconfigInProcessError",
    "APIError",
    "NoNodeError",
    "NoAuthError",
    "BadVersionError",
    "NoChildrenForEphemeralsError",
    "NodeExistsError",
    "NotEmptyError",
    "SessionExpiredError",
    "SessionExpired",
    "InvalidCallbackError",
    "InvalidACLError",
    "AuthFailedError",
    "SessionMovedError",
    "NotReadOnlyCallError",
    "EphemeralOnLocalSessionError",
    "NoWatcherError",
    "RequestTimeoutError",
    "ReconfigDisabledError",
    "SessionClosedRequireSaslError",
    "QuotaExceededError",
    "ThrottledOpError",
    "ClientClosedError",
    "error_for",
    "ERRORS",
]


class ZookeeperError(Exception):
    """Base of every error a ZooKeeper server answers with (and of the client's own)."""

    code: int = Err.SYSTEMERROR

    def __init__(self, path: str | None = None, *, code: int | None = None) -> None:
        if code is not None:
            self.code = code
        self.path = path
        try:
            name = Err(self.code).name
        except ValueError:
            name = f"error {self.code}"
        super().__init__(name + (f" for {path}" if path else ""))



# Declared one by one (not generated) so type checkers and readers see each name.
class SystemZookeeperError(ZookeeperError):
    """SYSTEMERROR (-1)."""
    code = Err.SYSTEMERROR


class RuntimeInconsistency(ZookeeperError):
    """RUNTIMEINCONSISTENCY (-2): in a multi, an op after the one that failed."""
    code = Err.RUNTIMEINCONSISTENCY


class DataInconsistency(ZookeeperError):
    """DATAINCONSISTENCY (-3)."""
    code = Err.DATAINCONSISTENCY


class ConnectionLoss(ZookeeperError):
    """CONNECTIONLOSS (-4): the connection broke with the request in flight; its outcome is unknown."""
    code = Err.CONNECTIONLOSS


class MarshallingError(ZookeeperError):
    """MARSHALLINGERROR (-5)."""
    code = Err.MARSHALLINGERROR


class UnimplementedError(ZookeeperError):
    """UNIMPLEMENTED (-6): the server does not know this operation."""
    code = Err.UNIMPLEMENTED


class OperationTimeoutError(ZookeeperError):
    """OPERATIONTIMEOUT (-7)."""
    code = Err.OPERATIONTIMEOUT


class BadArgumentsError(ZookeeperError):
    """BADARGUMENTS (-8)."""
    code = Err.BADARGUMENTS


class UnknownSessionError(ZookeeperError):
    """UNKNOWNSESSION (-12)."""
    code = Err.UNKNOWNSESSION


class NewConfigNoQuorumError(ZookeeperError):
    """NEWCONFIGNOQUORUM (-13)."""
    code = Err.NEWCONFIGNOQUORUM


class ReconfigInProcessError(ZookeeperError):
    """RECONFIGINPROGRESS (-14)."""
    code = Err.RECONFIGINPROGRESS


class APIError(ZookeeperError):
    """APIERROR (-100)."""
    code = Err.APIERROR


class NoNodeError(ZookeeperError):
    """NONODE (-101)."""
    code = Err.NONODE


class NoAuthError(ZookeeperError):
    """NOAUTH (-102)."""
    code = Err.NOAUTH


class BadVersionError(ZookeeperError):
    """BADVERSION (-103)."""
    code = Err.BADVERSION


class NoChildrenForEphemeralsError(ZookeeperError):
    """NOCHILDRENFOREPHEMERALS (-108)."""
    code = Err.NOCHILDRENFOREPHEMERALS


class NodeExistsError(ZookeeperError):
    """NODEEXISTS (-110)."""
    code = Err.NODEEXISTS


class NotEmptyError(ZookeeperError):
    """NOTEMPTY (-111)."""
    code = Err.NOTEMPTY


class SessionExpiredError(ZookeeperError):
    """SESSIONEXPIRED (-112): the session is gone; its ephemerals and watches with it.

    Raised by every pending and later call, and out of the ``open_client`` block.
    """
    code = Err.SESSIONEXPIRED


#: The name the issue uses; the same class.
SessionExpired = SessionExpiredError


class InvalidCallbackError(ZookeeperError):
    """INVALIDCALLBACK (-113)."""
    code = Err.INVALIDCALLBACK


class InvalidACLError(ZookeeperError):
    """INVALIDACL (-114)."""
    code = Err.INVALIDACL


class AuthFailedError(ZookeeperError):
    """AUTHFAILED (-115): an auth packet was refused; the server closes the connection."""
    code = Err.AUTHFAILED


class SessionMovedError(ZookeeperError):
    """SESSIONMOVED (-118)."""
    code = Err.SESSIONMOVED


class NotReadOnlyCallError(ZookeeperError):
    """NOTREADONLY (-119): a write sent to a read-only server."""
    code = Err.NOTREADONLY


class EphemeralOnLocalSessionError(ZookeeperError):
    """EPHEMERALONLOCALSESSION (-120)."""
    code = Err.EPHEMERALONLOCALSESSION


class NoWatcherError(ZookeeperError):
    """NOWATCHER (-121): removeWatches found no such watch."""
    code = Err.NOWATCHER


class RequestTimeoutError(ZookeeperError):
    """REQUESTTIMEOUT (-122)."""
    code = Err.REQUESTTIMEOUT


class ReconfigDisabledError(ZookeeperError):
    """RECONFIGDISABLED (-123)."""
    code = Err.RECONFIGDISABLED


class SessionClosedRequireSaslError(ZookeeperError):
    """SESSIONCLOSEDREQUIRESASLAUTH (-124)."""
    code = Err.SESSIONCLOSEDREQUIRESASLAUTH


class QuotaExceededError(ZookeeperError):
    """QUOTAEXCEEDED (-125)."""
    code = Err.QUOTAEXCEEDED


class ThrottledOpError(ZookeeperError):
    """THROTTLEDOP (-127)."""
    code = Err.THROTTLEDOP


class ClientClosedError(ZookeeperError):
    """The client was closed (its ``open_client`` block left) with the call pending or after it."""
    code = Err.CONNECTIONLOSS


#: code -> class, for every code of ``Err`` except OK
ERRORS: dict[int, type[ZookeeperError]] = {
    int(cls.code): cls
    for cls in (
        SystemZookeeperError, RuntimeInconsistency, DataInconsistency, ConnectionLoss, MarshallingError,
        UnimplementedError, OperationTimeoutError, BadArgumentsError, UnknownSessionError,
        NewConfigNoQuorumError, ReconfigInProcessError, APIError, NoNodeError, NoAuthError,
        BadVersionError, NoChildrenForEphemeralsError, NodeExistsError, NotEmptyError,
        SessionExpiredError, InvalidCallbackError, InvalidACLError, AuthFailedError, SessionMovedError,
        NotReadOnlyCallError, EphemeralOnLocalSessionError, NoWatcherError, RequestTimeoutError,
        ReconfigDisabledError, SessionClosedRequireSaslError, QuotaExceededError, ThrottledOpError,
    )
}


def error_for(code: int, path: str | None = None) -> ZookeeperError:
    """The exception for wire error ``code`` (about ``path``)."""
    cls = ERRORS.get(code)
    if cls is None:
        return ZookeeperError(path, code=code)
    return cls(path)
