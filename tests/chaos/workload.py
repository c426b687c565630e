"""A seeded write workload with an exact model, for crash tests.

Each :class:`Workload` owns one subtree (``/crash/c<k>``) and is driven by one
connection, so the server applies its writes in the order they were sent and
the model is exact: after ``j`` ops the subtree must equal ``states[j]``.

What a crash may leave is then a precise statement: after a restart the subtree
equals ``states[j]`` for some ``j`` between the number of acknowledged ops and
the number sent.  Anything else is a lost acknowledged write, a half-applied
multi, a write applied out of order, or a value or version that never existed.

Ops are generated lazily (only while the connection is alive), each valid
against the model state it follows: create of an absent child, setData and
delete with the exact expected version, multi of 2-4 such ops, and now and then
a multi built to fail on its last op (so its earlier ops would show if a
failed multi were half-applied).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from trio_quorum.protocol import records as p
from trio_quorum.protocol.consts import OpCode
from trio_quorum.protocol.data import OPEN_ACL_UNSAFE

__all__ = ["State", "Op", "Workload", "freeze"]

#: child name -> (data, version)
State = dict[str, tuple[bytes, int]]
Frozen = tuple[tuple[str, bytes, int], ...]


def freeze(state: State) -> Frozen:
    return tuple(sorted((k, d, v) for k, (d, v) in state.items()))


@dataclass(slots=True)
class Op:
    opcode: int
    request: Any
    expect_ok: bool
    #: versions a successful reply must report, in sub-op order (setData only)
    set_versions: tuple[int, ...]
    xid: int = 0


@dataclass
class Workload:
    """The model of one connection's subtree across crash rounds."""

    conn: int
    rng: random.Random
    keys: int = 12
    value_size: int = 16
    state: State = field(default_factory=dict)
    serial: int = 0
    # per round
    base: Frozen = ()
    ops: list[Op] = field(default_factory=list)
    states: list[Frozen] = field(default_factory=list)
    acked: int = 0
    acked_zxids: list[int] = field(default_factory=list)
    last_zxid: int = 0

    @property
    def root(self) -> str:
        return f"/crash/c{self.conn}"

    @property
    def sent(self) -> int:
        return len(self.ops)

    def begin_round(self) -> None:
        self.base = freeze(self.state)
        self.ops = []
        self.states = []
        self.acked = 0
        self.acked_zxids = []
        self.last_zxid = 0

    def candidates(self) -> list[Frozen]:
        """The states a restart may show: after the acknowledged prefix, or any longer sent prefix."""
        prefix = [self.base, *self.states]
        return prefix[self.acked :]

    def settle(self, recovered: Frozen) -> int:
        """Adopt the recovered state (one of :meth:`candidates`); return how many ops it holds."""
        for j, st in enumerate([self.base, *self.states]):
            if j >= self.acked and st == recovered:
                self.state = {k: (d, v) for k, d, v in recovered}
                return j
        raise AssertionError("recovered state is not a candidate")

    # ------------------------------------------------------------ generation

    def _value(self) -> bytes:
        self.serial += 1
        head = f"c{self.conn}:{self.serial:09d}".encode()
        return head + b"x" * max(0, self.value_size - len(head))

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def _one(self, st: State, avoid: set[str]) -> tuple[int, Any, int | None] | None:
        """A valid single op on a key not in ``avoid``; applies it to ``st``."""
        choices = [f"k{i:02d}" for i in range(self.keys) if f"k{i:02d}" not in avoid]
        if not choices:
            return None
        key = self.rng.choice(choices)
        avoid.add(key)
        path = self._path(key)
        if key not in st:
            data = self._value()
            st[key] = (data, 0)
            return OpCode.create, p.CreateRequest(path, data, OPEN_ACL_UNSAFE, 0), None
        data, version = st[key]
        if self.rng.random() < 0.75:
            new = self._value()
            st[key] = (new, version + 1)
            return OpCode.setData, p.SetDataRequest(path, new, version), version + 1
        del st[key]
        return OpCode.delete, p.DeleteRequest(path, version), None

    def generate(self) -> Op:
        """The next op against the model; records the state after it."""
        r = self.rng.random()
        st = dict(self.state)
        avoid: set[str] = set()
        if r < 0.70:
            one = self._one(st, avoid)
            assert one is not None
            opcode, req, ver = one
            op = Op(opcode, req, True, () if ver is None else (ver,))
        else:
            subs = []
            versions = []
            for _ in range(self.rng.randint(2, 4)):
                one = self._one(st, avoid)
                if one is None:
                    break
                subs.append((one[0], one[1]))
                if one[2] is not None:
                    versions.append(one[2])
            if r < 0.85:
                op = Op(OpCode.multi, p.MultiRequest(tuple(subs)), True, tuple(versions))
            else:
                # fails on its last op: a check of an absent child (NONODE) or of a
                # present one with a wrong version (BADVERSION); nothing may apply
                absent = [f"k{i:02d}" for i in range(self.keys) if f"k{i:02d}" not in st]
                if absent:
                    check = p.CheckVersionRequest(self._path(self.rng.choice(absent)), 0)
                else:
                    key = self.rng.choice(sorted(st))
                    check = p.CheckVersionRequest(self._path(key), st[key][1] + 7)
                subs.append((OpCode.check, check))
                op = Op(OpCode.multi, p.MultiRequest(tuple(subs)), False, ())
                st = dict(self.state)
        self.state = st
        self.ops.append(op)
        self.states.append(freeze(st))
        return op

    # ------------------------------------------------------------ replies

    def check_reply(self, hdr: p.ReplyHeader, payload: bytes) -> None:
        """Validate the reply of the oldest unacknowledged op and count it acknowledged."""
        op = self.ops[self.acked]
        assert hdr.xid == op.xid, f"conn {self.conn}: reply xid {hdr.xid} for op xid {op.xid}"
        assert hdr.zxid > self.last_zxid, (
            f"conn {self.conn}: zxid went back {hdr.zxid:#x} <= {self.last_zxid:#x}"
        )
        self.last_zxid = hdr.zxid
        if op.opcode == OpCode.multi:
            if op.expect_ok:
                assert hdr.err == 0, f"conn {self.conn}: multi failed with {hdr.err}: {op.request}"
                body = p.decode_response(OpCode.multi, payload, offset=16)
                assert all(code != OpCode.error for code, _ in body.results), body
                got = tuple(r.stat.version for code, r in body.results if code == OpCode.setData)
                assert got == op.set_versions, (got, op.set_versions)
            elif hdr.err == 0:
                body = p.decode_response(OpCode.multi, payload, offset=16)
                assert all(code == OpCode.error for code, _ in body.results), body
        else:
            assert hdr.err == 0, (
                f"conn {self.conn}: {OpCode(op.opcode).name} failed with {hdr.err}: {op.request}"
            )
            if op.opcode == OpCode.setData:
                body = p.decode_response(OpCode.setData, payload, offset=16)
                assert (body.stat.version,) == op.set_versions
        self.acked += 1
        self.acked_zxids.append(hdr.zxid)
