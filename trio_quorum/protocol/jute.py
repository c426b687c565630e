"""Jute binary archive primitives (sans-IO).

ZooKeeper serialises every record with Jute's BinaryOutputArchive:

* ``int``     4-byte big-endian signed
* ``long``    8-byte big-endian signed
* ``boolean`` 1 byte (0 / 1)
* ``ustring`` int length + UTF-8 bytes, length -1 means null
* ``buffer``  int length + bytes, length -1 means null
* ``vector``  int count + elements, count -1 means null
* records: fields in declaration order, no tags, no per-record length

Invariants of this module:

* It does no IO and keeps no global state; it turns bytes into Python values and back.
* Every decode is bounded: a length that is negative (other than -1) or runs past
  the end of the input, or exceeds ``max_len``, raises :class:`JuteError` and
  never allocates more than the input holds.  Decoders treat input as hostile.
* kazoo writes -1 for empty strings and buffers, so readers return ``b""`` /
  ``""`` for null where the record field cannot meaningfully be null
  (``read_buffer`` / ``read_ustring``), and ``None`` only through the
  ``*_nullable`` variants.
"""

from __future__ import annotations

__sans_io__ = True

import struct
from collections.abc import Callable, Iterable
from typing import TypeVar

__all__ = ["JuteError", "Reader", "Writer", "DEFAULT_MAX_BUFFER"]

T = TypeVar("T")

#: ZooKeeper's default ``jute.maxbuffer`` (0xfffff bytes).
DEFAULT_MAX_BUFFER = 0xFFFFF

_INT = struct.Struct(">i")
_LONG = struct.Struct(">q")
_BOOL = struct.Struct(">?")
_INT_INT = struct.Struct(">ii")
_pack_int = _INT.pack
_pack_long = _LONG.pack


class JuteError(ValueError):
    """Malformed jute input: truncated, a bad length, or bad UTF-8."""


def _fixed_reader(st: struct.Struct) -> Callable[[Reader], int]:
    """``Reader.read_int`` / ``read_long``: :meth:`Reader._need` inlined (the
    hottest reads of the checked decoders)."""
    size = st.size
    unpack = st.unpack_from

    def read(self: Reader) -> int:
        pos = self.pos
        if pos + size > self.end:
            raise JuteError(f"truncated record: need {size} bytes at offset {pos}, have {self.end - pos}")
        self.pos = pos + size
        v: int = unpack(self.data, pos)[0]
        return v

    read.__name__ = f"read_{'int' if size == 4 else 'long'}"
    return read


class Reader:
    """Reads jute primitives from a bytes-like object, front to back.

    Args:
        data: the encoded record(s).
        offset: where to start reading.
        max_len: upper bound for any single string/buffer/vector length.
    """

    __slots__ = ("data", "pos", "end", "max_len")

    def __init__(
        self, data: bytes | bytearray | memoryview, offset: int = 0, *, max_len: int = DEFAULT_MAX_BUFFER
    ) -> None:
        self.data = data
        self.pos = offset
        self.end = len(data)
        self.max_len = max_len

    def remaining(self) -> int:
        """Bytes not yet consumed."""
        return self.end - self.pos

    def at_end(self) -> bool:
        return self.pos >= self.end

    def _need(self, n: int) -> int:
        pos = self.pos
        if pos + n > self.end:
            raise JuteError(f"truncated record: need {n} bytes at offset {pos}, have {self.end - pos}")
        self.pos = pos + n
        return pos

    read_int = _fixed_reader(_INT)
    read_long = _fixed_reader(_LONG)

    def read_bool(self) -> bool:
        pos = self._need(1)
        return self.data[pos] != 0

    def read_byte(self) -> int:
        pos = self._need(1)
        b = self.data[pos]
        return b - 256 if b > 127 else b

    def _read_len(self) -> int:
        n = self.read_int()
        if n < -1:
            raise JuteError(f"negative length {n} at offset {self.pos - 4}")
        if n > self.max_len:
            raise JuteError(f"length {n} exceeds the limit of {self.max_len} bytes")
        return n

    def read_buffer_nullable(self) -> bytes | None:
        n = self._read_len()
        if n == -1:
            return None
        pos = self._need(n)
        return bytes(self.data[pos : pos + n])

    def read_buffer(self) -> bytes:
        """A buffer; null (-1) reads as ``b""`` as kazoo sends empty buffers that way."""
        n = self._read_len()
        if n <= 0:
            return b""
        pos = self._need(n)
        return bytes(self.data[pos : pos + n])

    def read_ustring_nullable(self) -> str | None:
        n = self._read_len()
        if n == -1:
            return None
        pos = self._need(n)
        try:
            return str(self.data[pos : pos + n], "utf-8")
        except UnicodeDecodeError as exc:
            raise JuteError(f"invalid UTF-8 in string at offset {pos}") from exc

    def read_ustring(self) -> str:
        """A string; null (-1) reads as ``""``."""
        s = self.read_ustring_nullable()
        return "" if s is None else s

    def read_vector_nullable(self, read_item: Callable[[Reader], T]) -> list[T] | None:
        n = self._read_len()
        if n == -1:
            return None
        # Each element takes at least one byte: a count larger than what is left
        # is a lie, and must not make us loop or allocate for it.
        if n > self.end - self.pos:
            raise JuteError(f"vector count {n} exceeds the {self.end - self.pos} bytes left")
        return [read_item(self) for _ in range(n)]

    def read_vector(self, read_item: Callable[[Reader], T]) -> list[T]:
        v = self.read_vector_nullable(read_item)
        return [] if v is None else v

    def read_ustring_vector(self) -> list[str]:
        return self.read_vector(Reader.read_ustring)

    def read_raw(self, n: int) -> bytes:
        pos = self._need(n)
        return bytes(self.data[pos : pos + n])

    def rest(self) -> bytes:
        """Everything not yet consumed."""
        pos, self.pos = self.pos, self.end
        return bytes(self.data[pos:])


class Writer:
    """Builds a jute encoding in a bytearray."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def getvalue(self) -> bytes:
        return bytes(self.buf)

    def __len__(self) -> int:
        return len(self.buf)

    def write_int(self, v: int) -> None:
        self.buf += _pack_int(v)

    def write_long(self, v: int) -> None:
        self.buf += _pack_long(v)

    def write_bool(self, v: bool) -> None:
        self.buf.append(1 if v else 0)

    def write_byte(self, v: int) -> None:
        self.buf.append(v & 0xFF)

    def write_buffer(self, v: bytes | None) -> None:
        if v is None:
            self.buf += b"\xff\xff\xff\xff"
        else:
            self.buf += _pack_int(len(v))
            self.buf += v

    def write_ustring(self, v: str | None) -> None:
        if v is None:
            self.buf += b"\xff\xff\xff\xff"
        else:
            b = v.encode("utf-8")
            self.buf += _pack_int(len(b))
            self.buf += b

    def write_vector(self, items: Iterable[T] | None, write_item: Callable[[Writer, T], None]) -> None:
        if items is None:
            self.buf += b"\xff\xff\xff\xff"
            return
        items = list(items)
        self.buf += _pack_int(len(items))
        for item in items:
            write_item(self, item)

    def write_ustring_vector(self, items: Iterable[str] | None) -> None:
        self.write_vector(items, Writer.write_ustring)

    def write_raw(self, v: bytes) -> None:
        self.buf += v


def pack_int(v: int) -> bytes:
    return _pack_int(v)


def pack_long(v: int) -> bytes:
    return _pack_long(v)
