"""Builders of multi (write transaction) and multiRead requests.

``zk.transaction()`` collects create / delete / set_data / check ops and
``commit()`` sends them as one ``multi``: all apply or none.  The results
come back in op order, kazoo's shape: the created path, ``True`` for a delete
or check, a :class:`Stat` for a set, and an exception instance for an op that
failed (the op that caused the rollback gets its error, the others
:class:`~.errors.RuntimeInconsistency` or a plain rollback marker).

``zk.multi_read()`` collects get / get_children ops (ZooKeeper 3.6+'s
``multiRead``), sent together and answered in order, each independently:
``(data, stat)`` / a list of names, or the exception instance.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..protocol.consts import CreateFlag, OpCode
from ..protocol.data import ACL, OPEN_ACL_UNSAFE
from ..protocol.records import (
    CheckVersionRequest,
    CreateRequest,
    CreateTTLRequest,
    DeleteRequest,
    GetChildrenRequest,
    GetDataRequest,
    MultiRequest,
    SetDataRequest,
)
from .errors import RuntimeInconsistency, ZookeeperError, error_for

__all__ = ["Transaction", "MultiRead", "RolledBack", "create_mode"]

_Submit = Callable[[int, MultiRequest], Awaitable[Any]]


class RolledBack(ZookeeperError):
    """The result of an op of a failed multi that did not fail itself (it was rolled back)."""

    code = 0


def create_mode(ephemeral: bool, sequence: bool, container: bool, ttl: int) -> tuple[int, int]:
    """``(opcode, flags)`` of a create with these options (checks the combination)."""
    if container:
        if ephemeral or sequence or ttl:
            raise ValueError("a container node is neither ephemeral, sequential nor TTL")
        return OpCode.createContainer, CreateFlag.CONTAINER
    if ttl:
        if ephemeral:
            raise ValueError("a TTL node cannot be ephemeral")
        flag = CreateFlag.PERSISTENT_SEQUENTIAL_WITH_TTL if sequence else CreateFlag.PERSISTENT_WITH_TTL
        return OpCode.createTTL, flag
    return OpCode.create, (1 if ephemeral else 0) | (2 if sequence else 0)


class Transaction:
    """A write transaction; build it with the methods, send it with :meth:`commit`.

    Use as ``async with zk.transaction() as t: t.create(...)``: the block
    commits on a clean exit and :attr:`results` holds the results.
    """

    def __init__(self, submit: _Submit, full: Callable[[str], str], strip: Callable[[str], str]) -> None:
        self._submit = submit
        self._full = full
        self._strip = strip
        self.ops: list[tuple[int, Any]] = []
        self._paths: list[str] = []
        self.committed = False
        self.results: list[Any] = []

    def create(self, path: str, value: bytes = b"", acl: Sequence[ACL] | None = None, ephemeral: bool = False,
               sequence: bool = False, container: bool = False, ttl: int = 0) -> Transaction:
        op, flags = create_mode(ephemeral, sequence, container, ttl)
        full = self._full(path)
        acls = tuple(acl) if acl else OPEN_ACL_UNSAFE
        if op == OpCode.createTTL:
            self._add(op, CreateTTLRequest(full, value, acls, flags, ttl), path)
        else:
            self._add(op, CreateRequest(full, value, acls, flags), path)
        return self

    def delete(self, path: str, version: int = -1) -> Transaction:
        return self._add(OpCode.delete, DeleteRequest(self._full(path), version), path)

    def set_data(self, path: str, value: bytes, version: int = -1) -> Transaction:
        return self._add(OpCode.setData, SetDataRequest(self._full(path), value, version), path)

    def check(self, path: str, version: int) -> Transaction:
        return self._add(OpCode.check, CheckVersionRequest(self._full(path), version), path)

    def _add(self, op: int, rec: Any, path: str) -> Transaction:
        if self.committed:
            raise ValueError("transaction already committed")
        self.ops.append((int(op), rec))
        self._paths.append(path)
        return self

    async def commit(self) -> list[Any]:
        """Send the ops as one multi; return one result per op (see the module docstring)."""
        if self.committed:
            raise ValueError("transaction already committed")
        self.committed = True
        if not self.ops:
            return []
        rsp = await self._submit(OpCode.multi, MultiRequest(tuple(self.ops)))
        out: list[Any] = []
        for (op, body), path in zip(rsp.results, self._paths, strict=False):
            if op == OpCode.error:
                out.append(_op_error(body, path))
            elif op in (OpCode.create, OpCode.create2, OpCode.createContainer, OpCode.createTTL):
                out.append(self._strip(body.path))
            elif op == OpCode.setData:
                out.append(body.stat)
            else:
                out.append(True)
        self.results = out
        return out

    async def __aenter__(self) -> Transaction:
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None and not self.committed:
            await self.commit()


def _op_error(code: int, path: str) -> ZookeeperError:
    if code == 0:
        return RolledBack(path)
    if code == RuntimeInconsistency.code:
        return RuntimeInconsistency(path)
    return error_for(code, path)


class MultiRead:
    """A batch of reads answered together (``multiRead``); each result stands alone."""

    def __init__(self, submit: _Submit, full: Callable[[str], str]) -> None:
        self._submit = submit
        self._full = full
        self.ops: list[tuple[int, Any]] = []
        self._paths: list[str] = []

    def get(self, path: str) -> MultiRead:
        self.ops.append((int(OpCode.getData), GetDataRequest(self._full(path), False)))
        self._paths.append(path)
        return self

    def get_children(self, path: str) -> MultiRead:
        self.ops.append((int(OpCode.getChildren), GetChildrenRequest(self._full(path), False)))
        self._paths.append(path)
        return self

    async def commit(self) -> list[Any]:
        """``(data, stat)`` per get, a list of names per get_children, or the exception instance."""
        if not self.ops:
            return []
        rsp = await self._submit(OpCode.multiRead, MultiRequest(tuple(self.ops)))
        out: list[Any] = []
        for (op, body), path in zip(rsp.results, self._paths, strict=False):
            if op == OpCode.error:
                out.append(error_for(body, path))
            elif op == OpCode.getData:
                out.append((body.data if body.data is not None else b"", body.stat))
            else:
                out.append(list(body.children))
        return out
