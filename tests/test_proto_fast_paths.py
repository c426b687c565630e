"""The create decoder's fast path answers exactly what the checked reader answers."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from trio_quorum.protocol import records as p
from trio_quorum.protocol.consts import OpCode
from trio_quorum.protocol.data import ACL, OPEN_ACL_UNSAFE, Id
from trio_quorum.protocol.jute import Reader, Writer

_acls = st.one_of(
    st.just(OPEN_ACL_UNSAFE),
    st.lists(st.builds(ACL, st.integers(0, 31), st.builds(Id, st.sampled_from(["world", "ip"]), st.text(max_size=8))),
             max_size=2).map(tuple),
)


def _body(path: str, data: bytes | None, acl: tuple[ACL, ...], flags: int) -> bytes:
    w = Writer()
    w.write_ustring(path)
    w.write_buffer(data)
    w.write_vector(acl, lambda w_, a: (w_.write_int(a.perms), w_.write_ustring(a.id.scheme), w_.write_ustring(a.id.id)))
    w.write_int(flags)
    return bytes(w.buf)


def _slow(b: bytes, max_len: int) -> object:
    try:
        return p._r_create(Reader(b, 0, max_len=max_len))
    except Exception as exc:  # noqa: BLE001 - compared by kind only
        return type(exc)


def _fast(b: bytes, max_len: int) -> object:
    try:
        return p.decode_request(OpCode.create, b, max_len=max_len)
    except Exception as exc:  # noqa: BLE001
        return type(exc)


@settings(deadline=None, max_examples=300)
@given(st.text(max_size=20), st.one_of(st.none(), st.binary(max_size=40)), _acls, st.integers(-5, 10),
       st.integers(0, 60), st.integers(0, 60), st.integers(0, 255))
def test_create_fast_path_matches_reader(path: str, data: bytes | None, acl: tuple[ACL, ...], flags: int,
                                         cut: int, at: int, byte: int) -> None:
    body = _body(path, data, acl, flags)
    for b in (body, body[: max(0, len(body) - cut)], body[:at] + bytes([byte]) + body[at + 1:]):
        slow, fast = _slow(b, 0xFFFFF), _fast(b, 0xFFFFF)
        if isinstance(slow, type):
            assert isinstance(fast, type)  # both fail (ProtocolError wraps the reader's errors)
        else:
            assert fast == slow
        assert isinstance(_fast(b, 3), type) or _fast(b, 3) == _slow(b, 3)


def test_open_acl_decodes_to_the_shared_tuple() -> None:
    rec = p.decode_request(OpCode.create, _body("/a", b"x", OPEN_ACL_UNSAFE, 0))
    assert rec == p.CreateRequest("/a", b"x", OPEN_ACL_UNSAFE, 0)
    assert rec.acl is OPEN_ACL_UNSAFE
    rec = p.decode_request(OpCode.create2, memoryview(_body("/a", None, OPEN_ACL_UNSAFE, 3)))
    assert rec == p.CreateRequest("/a", b"", OPEN_ACL_UNSAFE, 3)
    assert struct.unpack(">i", p._OPEN_ACL_WIRE[:4]) == (1,)
