"""Frames of the peer links (election and quorum channels): CBOR, batched, strictly validated.

Sans-IO: bytes in, records out.  Drivers (``trio_quorum/net``) move the frames.

Grammar (every frame is ONE CBOR data item, nothing after it)::

    frame     = [message*]                   ; a CBOR array: a batch, possibly empty (heartbeat)
    message   = [tag, field1, field2, ...]   ; compact: the catalogue gives names and types
    handshake = [[0, sid, version, channel]] ; first frame of a link, from the dialer;
                                             ; the acceptor answers with its own HELLO
    reject    = [[1, reason]]                ; instead of HELLO: why the link is refused

Invariants:

* A frame is checked against :class:`Limits` before and while it is decoded:
  its size in bytes (``max_frame_bytes``, as jute.maxbuffer bounds a client
  packet), the number of messages, every string, byte string and list length.
* Only the types a catalogue declares come out: no CBOR tags (dates, bignums,
  shared references, sets, ...), no maps, floats, undefined or simple values,
  no indefinite-length items, no extra or missing fields, no unknown tag.
  Any violation raises :class:`WireError` and nothing else does (property
  tested with random bytes): a caller drops the LINK on it, never the peer.
* Encoding validates too, so a caller's bad record fails at ``encode`` in the
  caller, not as garbage at the receiver.
* Tags below :data:`FIRST_USER_TAG` are the link's own control messages
  (:class:`Hello`, :class:`Reject`); a :class:`Catalogue` cannot register them.

The channel of a message is not in the message: a link carries one channel,
named in its handshake, and decodes with that channel's catalogue, so a ZAB
packet on the election link is an unknown tag there (``WireError``).
"""

from __future__ import annotations

import enum
import io
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cbor2

__sans_io__ = True

#: Version of this framing; a HELLO with another one is refused.
PROTOCOL_VERSION = 1
#: Tags 0..15 are reserved for the link's control messages.
FIRST_USER_TAG = 16
TAG_HELLO = 0
TAG_REJECT = 1

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class WireError(ValueError):
    """A frame or message that breaks the grammar, the catalogue or the limits."""


class Channel(enum.IntEnum):
    """Which peer link a connection is (ZooKeeper has one port for each)."""

    ELECTION = 0
    QUORUM = 1


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one frame may hold (both directions).

    ``max_frame_bytes`` must hold the largest message (a PROPOSAL carries a txn
    of up to jute.maxbuffer, 1 MiB by default), hence the 4 MiB default.
    """

    max_frame_bytes: int = 4 * 1024 * 1024
    max_messages: int = 65_536
    max_bytes: int = 2 * 1024 * 1024
    max_str: int = 4096
    max_list: int = 65_536
    max_depth: int = 16


DEFAULT_LIMITS = Limits()


# -- field types -------------------------------------------------------------


class FieldType:
    """How one field is checked and mapped between Python and its CBOR form."""

    name = "field"

    def to_wire(self, value: object, limits: Limits) -> object:  # pragma: no cover - abstract
        raise NotImplementedError

    def from_wire(self, value: object, limits: Limits) -> object:  # pragma: no cover - abstract
        raise NotImplementedError


class Int(FieldType):
    """An integer in ``[lo, hi]`` (default: a Java long, as sid and zxid are)."""

    def __init__(self, lo: int = INT64_MIN, hi: int = INT64_MAX) -> None:
        self.lo, self.hi = lo, hi
        self.name = "int" if (lo, hi) == (INT64_MIN, INT64_MAX) else f"int[{lo}..{hi}]"

    def from_wire(self, value: object, limits: Limits) -> object:
        if type(value) is not int:  # bool is an int subclass: refused
            raise WireError(f"expected {self.name}, got {_kind(value)}")
        if not self.lo <= value <= self.hi:
            raise WireError(f"{value} out of range for {self.name}")
        return value

    to_wire = from_wire


class _Bool(FieldType):
    name = "bool"

    def from_wire(self, value: object, limits: Limits) -> object:
        if type(value) is not bool:
            raise WireError(f"expected bool, got {_kind(value)}")
        return value

    to_wire = from_wire


class Bytes(FieldType):
    """A byte string of at most ``max_len`` (default ``Limits.max_bytes``)."""

    name = "bytes"

    def __init__(self, max_len: int | None = None) -> None:
        self.max_len = max_len

    def from_wire(self, value: object, limits: Limits) -> object:
        if type(value) is not bytes:
            raise WireError(f"expected bytes, got {_kind(value)}")
        bound = limits.max_bytes if self.max_len is None else self.max_len
        if len(value) > bound:
            raise WireError(f"byte string of {len(value)} > {bound} bytes")
        return value

    def to_wire(self, value: object, limits: Limits) -> object:
        if isinstance(value, (bytearray, memoryview)):
            value = bytes(value)
        return self.from_wire(value, limits)


class Str(FieldType):
    """A text string of at most ``max_len`` characters (default ``Limits.max_str``)."""

    name = "str"

    def __init__(self, max_len: int | None = None) -> None:
        self.max_len = max_len

    def from_wire(self, value: object, limits: Limits) -> object:
        if type(value) is not str:
            raise WireError(f"expected str, got {_kind(value)}")
        bound = limits.max_str if self.max_len is None else self.max_len
        if len(value) > bound:
            raise WireError(f"string of {len(value)} > {bound} characters")
        return value

    to_wire = from_wire


class _Enum(FieldType):
    def __init__(self, cls: type[enum.IntEnum]) -> None:
        self.cls = cls
        self.name = cls.__name__

    def from_wire(self, value: object, limits: Limits) -> object:
        if type(value) is not int:
            raise WireError(f"expected {self.name}, got {_kind(value)}")
        try:
            return self.cls(value)
        except ValueError:
            raise WireError(f"{value} is not a {self.name}") from None

    def to_wire(self, value: object, limits: Limits) -> object:
        if not isinstance(value, self.cls):
            raise WireError(f"expected {self.name}, got {_kind(value)}")
        return int(value)


class Optional(FieldType):
    """``None`` or a value of ``inner`` (CBOR null)."""

    def __init__(self, inner: FieldType) -> None:
        self.inner = inner
        self.name = f"{inner.name} | None"

    def from_wire(self, value: object, limits: Limits) -> object:
        return None if value is None else self.inner.from_wire(value, limits)

    def to_wire(self, value: object, limits: Limits) -> object:
        return None if value is None else self.inner.to_wire(value, limits)


class TupleOf(FieldType):
    """A homogeneous tuple (a CBOR array) of at most ``max_len`` items."""

    def __init__(self, item: FieldType, max_len: int | None = None) -> None:
        self.item = item
        self.max_len = max_len
        self.name = f"tuple[{item.name}, ...]"

    def _bound(self, n: int, limits: Limits) -> None:
        bound = limits.max_list if self.max_len is None else self.max_len
        if n > bound:
            raise WireError(f"list of {n} > {bound} items")

    def from_wire(self, value: object, limits: Limits) -> object:
        if type(value) is not list:
            raise WireError(f"expected {self.name}, got {_kind(value)}")
        self._bound(len(value), limits)
        item = self.item.from_wire
        return tuple([item(v, limits) for v in value])

    def to_wire(self, value: object, limits: Limits) -> object:
        if not isinstance(value, (tuple, list)):
            raise WireError(f"expected {self.name}, got {_kind(value)}")
        self._bound(len(value), limits)
        item = self.item.to_wire
        return [item(v, limits) for v in value]


class _Nested(FieldType):
    """A field holding another record of the same catalogue, encoded with its tag."""

    def __init__(self, catalogue: Catalogue, cls: type) -> None:
        self.catalogue, self.cls = catalogue, cls
        self.name = cls.__name__

    def from_wire(self, value: object, limits: Limits) -> object:
        record = self.catalogue._from_wire(value, limits)
        if type(record) is not self.cls:
            raise WireError(f"expected {self.name}, got {type(record).__name__}")
        return record

    def to_wire(self, value: object, limits: Limits) -> object:
        if type(value) is not self.cls:
            raise WireError(f"expected {self.name}, got {_kind(value)}")
        return self.catalogue._to_wire(value, limits)


BOOL = _Bool()
INT = Int()
BYTES = Bytes()
STR = Str()


def _kind(value: object) -> str:
    return type(value).__name__


# -- catalogues --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _RecordType:
    tag: int
    cls: type
    names: tuple[str, ...]
    types: tuple[FieldType, ...]


class Catalogue:
    """The message types of one channel: record classes, each with a tag and a field schema.

    >>> cat = Catalogue("election")
    >>> cat.register(16, Notification, (("leader", int), ("zxid", int), ("state", ServerState)))

    A record class is built as ``cls(*fields)`` in schema order (dataclasses and
    NamedTuples do that) and read with ``getattr``.  A field's type is a Python
    type (``int``: a Java long; ``bool``, ``bytes``, ``str``; an ``IntEnum``; a
    registered record class; ``X | None``; ``tuple[X, ...]``) or a
    :class:`FieldType` for explicit bounds (``Int(0, 255)``, ``Bytes(1024)``).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._by_tag: dict[int, _RecordType] = {}
        self._by_cls: dict[type, _RecordType] = {}

    def register(self, tag: int, cls: type, fields: Iterable[tuple[str, Any]]) -> None:
        if type(tag) is not int or not FIRST_USER_TAG <= tag <= INT64_MAX:
            raise ValueError(f"tag {tag!r}: must be an int >= {FIRST_USER_TAG} (lower ones are the link's)")
        if tag in self._by_tag:
            raise ValueError(f"tag {tag} already registered for {self._by_tag[tag].cls.__name__}")
        if cls in self._by_cls:
            raise ValueError(f"{cls.__name__} already registered with tag {self._by_cls[cls].tag}")
        fields = tuple(fields)
        names = tuple(name for name, _ in fields)
        if len(set(names)) != len(names):
            raise ValueError(f"{cls.__name__}: duplicate field names {names}")
        rtype = _RecordType(tag, cls, names, tuple(self.field_type(t) for _, t in fields))
        self._by_tag[tag] = rtype
        self._by_cls[cls] = rtype

    def field_type(self, spec: Any) -> FieldType:
        """The :class:`FieldType` for a schema entry (see the class docstring)."""
        if isinstance(spec, FieldType):
            return spec
        if spec is int:
            return INT
        if spec is bool:
            return BOOL
        if spec is bytes:
            return BYTES
        if spec is str:
            return STR
        if isinstance(spec, type) and issubclass(spec, enum.IntEnum):
            return _Enum(spec)
        if isinstance(spec, type) and spec in self._by_cls:
            return _Nested(self, spec)
        origin, args = typing.get_origin(spec), typing.get_args(spec)
        if origin in (types.UnionType, typing.Union) and len(args) == 2 and type(None) in args:
            inner = args[0] if args[1] is type(None) else args[1]
            return Optional(self.field_type(inner))
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return TupleOf(self.field_type(args[0]))
        raise TypeError(f"catalogue {self.name}: unsupported field type {spec!r}")

    def tags(self) -> Mapping[int, type]:
        return {tag: r.cls for tag, r in self._by_tag.items()}

    # The two walks below are the hot path: plain loops, no recursion for flat records.

    def _to_wire(self, record: object, limits: Limits) -> list[object]:
        rtype = self._by_cls.get(type(record))
        if rtype is None:
            raise WireError(f"{type(record).__name__} is not in catalogue {self.name}")
        out: list[object] = [rtype.tag]
        for name, ftype in zip(rtype.names, rtype.types, strict=True):
            try:
                out.append(ftype.to_wire(getattr(record, name), limits))
            except WireError as exc:
                raise WireError(f"{type(record).__name__}.{name}: {exc}") from None
        return out

    def _from_wire(self, item: object, limits: Limits) -> object:
        if type(item) is not list or not item:
            raise WireError(f"a message must be a non-empty array [tag, fields...], got {_kind(item)}")
        tag = item[0]
        rtype = self._by_tag.get(tag) if type(tag) is int else None
        if rtype is None:
            raise WireError(f"unknown message tag {tag!r} in catalogue {self.name}")
        if len(item) != len(rtype.types) + 1:
            raise WireError(
                f"{rtype.cls.__name__}: {len(item) - 1} fields, expected {len(rtype.types)}"
            )
        values = []
        for name, ftype, value in zip(rtype.names, rtype.types, item[1:], strict=True):
            try:
                values.append(ftype.from_wire(value, limits))
            except WireError as exc:
                raise WireError(f"{rtype.cls.__name__}.{name}: {exc}") from None
        try:
            return rtype.cls(*values)
        except (TypeError, ValueError) as exc:  # the record's own invariants
            raise WireError(f"{rtype.cls.__name__}: {exc}") from None

    def encode(self, record: object, limits: Limits = DEFAULT_LIMITS) -> bytes:
        """One message's bytes (to be put in a frame by :func:`frame`); validates the record."""
        data: bytes = cbor2.dumps(self._to_wire(record, limits))
        if len(data) + 9 > limits.max_frame_bytes:
            raise WireError(
                f"{type(record).__name__} of {len(data)} bytes cannot fit a frame of "
                f"{limits.max_frame_bytes} bytes"
            )
        return data

    def decode_frame(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> list[object]:
        """The records of one frame, in order; ``WireError`` on anything else."""
        items = _load_frame(data, limits)
        return [self._from_wire(item, limits) for item in items]

    def encode_frame(self, records: Iterable[object], limits: Limits = DEFAULT_LIMITS) -> bytes:
        return frame([self.encode(r, limits) for r in records], limits)


# -- frames ------------------------------------------------------------------


def _array_header(n: int) -> bytes:
    if n < 24:
        return bytes((0x80 | n,))
    if n < 0x100:
        return bytes((0x98, n))
    if n < 0x10000:
        return b"\x99" + n.to_bytes(2, "big")
    if n < 0x100000000:
        return b"\x9a" + n.to_bytes(4, "big")
    return b"\x9b" + n.to_bytes(8, "big")


def frame(encoded: Sequence[bytes], limits: Limits = DEFAULT_LIMITS) -> bytes:
    """A frame of already encoded messages (see :meth:`Catalogue.encode`)."""
    if len(encoded) > limits.max_messages:
        raise WireError(f"{len(encoded)} messages > {limits.max_messages} per frame")
    data = _array_header(len(encoded)) + b"".join(encoded)
    if len(data) > limits.max_frame_bytes:
        raise WireError(f"frame of {len(data)} bytes > {limits.max_frame_bytes}")
    return data


def frame_overhead(n: int) -> int:
    """Bytes a frame of ``n`` messages adds to their encodings (its array header)."""
    return len(_array_header(n))


def pack(encoded: Iterable[bytes], limits: Limits = DEFAULT_LIMITS) -> Iterator[bytes]:
    """Frames holding ``encoded`` in order, each as full as the limits allow (batching)."""
    batch: list[bytes] = []
    size = 0
    for data in encoded:
        if batch and (
            len(batch) >= limits.max_messages
            or size + len(data) + frame_overhead(len(batch) + 1) > limits.max_frame_bytes
        ):
            yield frame(batch, limits)
            batch, size = [], 0
        batch.append(data)
        size += len(data)
    if batch:
        yield frame(batch, limits)


#: A frame of no message: the links' heartbeat.
HEARTBEAT = frame([])


class _RejectTags(Mapping[int, Callable[[Any], Any]]):
    """Every CBOR semantic tag is refused (cbor2 would build dates, bignums, sets...)."""

    def __getitem__(self, tag: int) -> Callable[[Any], Any]:
        def refuse(decoder: Any) -> Any:
            raise WireError(f"CBOR tag {tag} not allowed")

        return refuse

    def __contains__(self, tag: object) -> bool:
        return True

    def __iter__(self) -> Iterator[int]:
        return iter(())

    def __len__(self) -> int:
        return 0


_REJECT_TAGS = _RejectTags()


def _refuse_tag(decoder: Any, tag: Any) -> Any:
    raise WireError(f"CBOR tag {getattr(tag, 'tag', '?')} not allowed")


def _load_frame(data: bytes, limits: Limits) -> list[object]:
    if type(data) is not bytes:
        raise WireError(f"a frame is bytes, got {_kind(data)}")
    if len(data) > limits.max_frame_bytes:
        raise WireError(f"frame of {len(data)} bytes > {limits.max_frame_bytes}")
    if not data:
        raise WireError("empty frame")
    # cheap pre-check: the top level must be a definite-length array
    if data[0] >> 5 != 4 or data[0] & 0x1F == 31:
        raise WireError(f"a frame must be a CBOR array, first byte is 0x{data[0]:02x}")
    stream = io.BytesIO(data)
    try:
        decoder = cbor2.CBORDecoder(
            stream,
            tag_hook=_refuse_tag,
            semantic_decoders=_REJECT_TAGS,
            max_depth=limits.max_depth,
            allow_indefinite=False,
            allow_duplicate_keys=False,
            strict_hashable_types=True,
        )
        items = decoder.decode()
    except WireError:
        raise
    except Exception as exc:  # cbor2 raises several kinds on hostile input; all mean garbage
        raise WireError(f"not CBOR: {exc}") from None
    if stream.tell() != len(data):
        raise WireError(f"{len(data) - stream.tell()} bytes after the frame's array")
    if type(items) is not list:  # pragma: no cover - guarded by the first-byte check
        raise WireError(f"a frame must be a CBOR array, got {_kind(items)}")
    if len(items) > limits.max_messages:
        raise WireError(f"{len(items)} messages > {limits.max_messages} per frame")
    return items


# -- handshake ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """First frame each way: who I am, which framing version, which channel."""

    sid: int
    version: int
    channel: Channel


@dataclass(frozen=True, slots=True)
class Reject:
    """The acceptor's answer instead of HELLO: the link is refused, and why."""

    reason: str


def encode_hello(hello: Hello) -> bytes:
    return frame([cbor2.dumps([TAG_HELLO, INT.to_wire(hello.sid, DEFAULT_LIMITS),
                               INT.to_wire(hello.version, DEFAULT_LIMITS), int(hello.channel)])])


def encode_reject(reason: str) -> bytes:
    return frame([cbor2.dumps([TAG_REJECT, reason[:DEFAULT_LIMITS.max_str]])])


_HANDSHAKE_LIMITS = Limits(max_frame_bytes=16 * 1024, max_messages=1, max_list=8, max_depth=4)


def decode_handshake(data: bytes) -> Hello | Reject:
    """The handshake frame: exactly one HELLO or REJECT, strictly checked.

    The version is returned as sent (the caller compares it, to say which one
    it got); the channel must be a known one.
    """
    items = _load_frame(data, _HANDSHAKE_LIMITS)
    if len(items) != 1 or type(items[0]) is not list or not items[0]:
        raise WireError("a handshake frame holds exactly one HELLO or REJECT")
    item = items[0]
    if type(item[0]) is int and item[0] == TAG_HELLO:
        if len(item) != 4:
            raise WireError(f"HELLO: {len(item) - 1} fields, expected 3 (sid, version, channel)")
        sid = INT.from_wire(item[1], _HANDSHAKE_LIMITS)
        version = INT.from_wire(item[2], _HANDSHAKE_LIMITS)
        channel = _Enum(Channel).from_wire(item[3], _HANDSHAKE_LIMITS)
        return Hello(sid, version, channel)  # type: ignore[arg-type]
    if type(item[0]) is int and item[0] == TAG_REJECT:
        if len(item) != 2:
            raise WireError(f"REJECT: {len(item) - 1} fields, expected 1 (reason)")
        return Reject(STR.from_wire(item[1], _HANDSHAKE_LIMITS))  # type: ignore[arg-type]
    raise WireError(f"expected a HELLO or REJECT handshake, got tag {item[0]!r}")
