"""Jute record declarations: each record is declared once, as a table (sans-IO).

A record of ZooKeeper's ``zookeeper.jute`` is written here as a class whose
annotations are its field table, in jute declaration order::

    @record
    class SetDataRequest:
        path: UString
        data: Buffer
        version: Int

Each annotation is an alias ``Annotated[<python type>, <JuteType>]`` defined
below (``Int``, ``Long``, ``Bool``, ``UString``, ``Buffer``, ``UStrings`` =
``vector<ustring>``, ``ACLs`` = ``vector<ACL>``, ``StatField``, ...), so mypy
sees ordinary typed attributes and the codec sees jute types.  From that one
table :func:`record` derives everything else: the slotted dataclass (value
equality and hash; frozen unless ``frozen=False``), its ``__init__``, its
checked reader ``read(r: Reader)``, its writer ``write(w: Writer)`` and the
byte-level fast decoders and encoders of :mod:`.codegen`.  The straightforward
table interpreter :func:`read_fields` / :func:`write_fields` is the reference
the generated code is tested against (``tests/test_proto_schema.py``).

Invariants:

* No IO.  The only global state is :data:`RECORDS` (name -> class), filled
  while the record modules are imported and never changed afterwards.
* A jute type's ``read`` raises only :class:`~.jute.JuteError` on any input
  (it goes through :class:`~.jute.Reader`, which bounds every length).
* Null versus empty: ``UString``/``Buffer`` read a null (-1) as ``""``/``b""``
  (kazoo sends empty ones that way); ``UStringOrNull``/``BufferOrNull`` keep
  ``None``.  Every writer writes ``None`` as null (-1).  Vectors read null as
  ``()``.
* ``Trailing(t, absent)`` is a field that old peers omit: it reads as
  ``absent`` when fewer than ``t.min_size`` bytes are left, and is not written
  when it is ``None``.
"""

from __future__ import annotations

__sans_io__ = True

import dataclasses
import struct
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Self, TypeVar, dataclass_transform, overload

from . import codegen
from .data import ACL, OPEN_ACL_UNSAFE, STAT_STRUCT, Id, Stat
from .jute import Reader, Writer

__all__ = [
    "JuteRecord",
    "JuteType",
    "Fixed",
    "UStringType",
    "BufferType",
    "Vector",
    "Struct",
    "StatType",
    "AclVector",
    "Trailing",
    "Custom",
    "INT",
    "LONG",
    "BOOL",
    "USTRING",
    "USTRING_OR_NULL",
    "BUFFER",
    "BUFFER_OR_NULL",
    "USTRING_VECTOR",
    "ACL_VECTOR",
    "STAT",
    "Int",
    "Long",
    "Bool",
    "UString",
    "UStringOrNull",
    "Buffer",
    "BufferOrNull",
    "UStrings",
    "ACLs",
    "StatField",
    "OptBool",
    "record",
    "jute_fields",
    "read_fields",
    "write_fields",
    "RECORDS",
]

_T = TypeVar("_T", bound=type)


class JuteType:
    """One jute wire type.  ``kind`` tells :mod:`.codegen` how to inline it:
    ``fixed`` (a struct code), ``ustring``, ``buffer``, ``trailing``,
    ``other`` (generated code calls :meth:`read` / :meth:`to_bytes`) or
    ``custom`` (no fast form: encoders fall back to ``write``)."""

    kind = "other"
    #: the jute spelling, for the docs and ``--show``
    name = "?"
    #: fewest bytes an encoding takes
    min_size = 0
    #: the size of every encoding, when it is fixed but not a struct code (Stat)
    exact_size: int | None = None
    nullable = False

    def read(self, r: Reader) -> Any:
        raise NotImplementedError

    def write(self, w: Writer, v: Any) -> None:
        raise NotImplementedError

    def to_bytes(self, v: Any) -> bytes:
        w = Writer()
        self.write(w, v)
        return bytes(w.buf)

    def __repr__(self) -> str:
        return self.name


class _Primitive(JuteType):
    """A type :class:`~.jute.Reader` and :class:`~.jute.Writer` have methods for."""

    def __init__(self, name: str, read: str, write: str) -> None:
        self.name = name
        self._read: Callable[[Reader], Any] = getattr(Reader, read)
        self._write: Callable[[Writer, Any], None] = getattr(Writer, write)

    def read(self, r: Reader) -> Any:
        return self._read(r)

    def write(self, w: Writer, v: Any) -> None:
        self._write(w, v)


class Fixed(_Primitive):
    """``int``, ``long``, ``boolean``: one struct code each."""

    kind = "fixed"

    def __init__(self, name: str, fmt: str) -> None:
        method = {"i": "int", "q": "long", "?": "bool"}[fmt]
        super().__init__(name, f"read_{method}", f"write_{method}")
        self.fmt = fmt
        self.min_size = struct.calcsize(">" + fmt)


class _Var(_Primitive):
    """``ustring`` and ``buffer``: an int32 length (-1: null) and the bytes."""

    min_size = 4

    def __init__(self, kind: str, nullable: bool) -> None:
        super().__init__(kind + ("?" if nullable else ""), f"read_{kind}{'_nullable' if nullable else ''}",
                         f"write_{kind}")
        self.kind = kind
        self.nullable = nullable


def UStringType(nullable: bool) -> JuteType:  # noqa: N802 - a type constructor
    """``ustring`` (``nullable``: null reads as ``None``, else as ``""``)."""
    return _Var("ustring", nullable)


def BufferType(nullable: bool) -> JuteType:  # noqa: N802 - a type constructor
    """``buffer`` (``nullable``: null reads as ``None``, else as ``b""``)."""
    return _Var("buffer", nullable)


class Vector(JuteType):
    """``vector<item>`` as a tuple; null reads as ``()``, ``None`` writes null."""

    min_size = 4

    def __init__(self, item: JuteType) -> None:
        self.item = item
        self.name = f"vector<{item.name}>"

    def read(self, r: Reader) -> Any:
        return tuple(r.read_vector(self.item.read))

    def write(self, w: Writer, v: Any) -> None:
        w.write_vector(v, self.item.write)


class Struct(JuteType):
    """A nested record kept as a tuple type (``ACL``, ``Id``, ``ClientInfo``)."""

    def __init__(self, name: str, make: Callable[..., Any], items: tuple[JuteType, ...]) -> None:
        self.name = name
        self.make = make
        self.items = items
        self.min_size = sum(t.min_size for t in items)

    def read(self, r: Reader) -> Any:
        return self.make(*[t.read(r) for t in self.items])

    def write(self, w: Writer, v: Any) -> None:
        for t, x in zip(self.items, v, strict=True):
            t.write(w, x)


class StatType(JuteType):
    """``Stat``: reads as :class:`~.data.Stat`; writes a ``Stat`` or its 68
    packed bytes (``DataNode.stat_bytes()``), the latter verbatim."""

    name = "Stat"
    min_size = exact_size = STAT_STRUCT.size

    def read(self, r: Reader) -> Any:
        pos = r._need(STAT_STRUCT.size)
        return Stat(*STAT_STRUCT.unpack_from(r.data, pos))

    def write(self, w: Writer, v: Any) -> None:
        w.buf += self.to_bytes(v)

    def to_bytes(self, v: Any) -> bytes:
        if type(v) is bytes:
            if len(v) != STAT_STRUCT.size:
                raise ValueError(f"packed Stat must be {STAT_STRUCT.size} bytes, got {len(v)}")
            return v
        return STAT_STRUCT.pack(*v)


class AclVector(Vector):
    """``vector<ACL>``.  A list equal to OPEN_ACL_UNSAFE reads as the shared
    ``OPEN_ACL_UNSAFE`` tuple (later stages test it by identity); the few
    distinct ACL lists a server sees have their encodings memoised."""

    #: OPEN_ACL_UNSAFE on the wire, and the largest length inside it ("anyone")
    OPEN_WIRE = struct.pack(">ii", 1, 31) + struct.pack(">i", 5) + b"world" + struct.pack(">i", 6) + b"anyone"
    OPEN_MAX_LEN = 6

    def __init__(self) -> None:
        super().__init__(Struct("ACL", ACL, (Fixed("int", "i"), Struct("Id", Id, (USTRING, USTRING)))))
        self._memo: dict[Any, bytes] = {}

    def read(self, r: Reader) -> Any:
        acl = super().read(r)
        return OPEN_ACL_UNSAFE if acl == OPEN_ACL_UNSAFE else acl

    def write(self, w: Writer, v: Any) -> None:
        w.buf += self.to_bytes(v)

    def to_bytes(self, v: Any) -> bytes:
        try:
            b = self._memo.get(v)
        except TypeError:  # unhashable (a list): not memoised
            return self._encode(v)
        if b is None:
            b = self._encode(v)
            if len(self._memo) < 256:
                self._memo[v] = b
        return b

    def _encode(self, v: Any) -> bytes:
        w = Writer()
        super().write(w, v)
        return bytes(w.buf)


class Trailing(JuteType):
    """A last field that older peers omit (see the module invariants)."""

    kind = "trailing"

    def __init__(self, inner: JuteType, absent: Any = None) -> None:
        self.inner = inner
        self.absent = absent
        self.name = f"[{inner.name}]"

    def read(self, r: Reader) -> Any:
        if r.remaining() < self.inner.min_size:
            return self.absent
        return self.inner.read(r)

    def write(self, w: Writer, v: Any) -> None:
        if v is not None:
            self.inner.write(w, v)


class Custom(JuteType):
    """A field whose encoding is not a jute type (ZooKeeper hand-writes it too:
    ``MultiOperationRecord``, ``MultiResponse``, ``MultiTxn``)."""

    kind = "custom"

    def __init__(self, name: str, read: Callable[[Reader], Any], write: Callable[[Writer, Any], None]) -> None:
        self.name = name
        self._readf = read
        self._writef = write

    def read(self, r: Reader) -> Any:
        return self._readf(r)

    def write(self, w: Writer, v: Any) -> None:
        self._writef(w, v)


INT = Fixed("int", "i")
LONG = Fixed("long", "q")
BOOL = Fixed("boolean", "?")
USTRING = UStringType(False)
USTRING_OR_NULL = UStringType(True)
BUFFER = BufferType(False)
BUFFER_OR_NULL = BufferType(True)
USTRING_VECTOR = Vector(USTRING)
ACL_VECTOR = AclVector()
STAT = StatType()

Int = Annotated[int, INT]
Long = Annotated[int, LONG]
Bool = Annotated[bool, BOOL]
UString = Annotated[str, USTRING]
UStringOrNull = Annotated[str | None, USTRING_OR_NULL]
Buffer = Annotated[bytes, BUFFER]
BufferOrNull = Annotated[bytes | None, BUFFER_OR_NULL]
UStrings = Annotated[tuple[str, ...], USTRING_VECTOR]
ACLs = Annotated[tuple[ACL, ...], ACL_VECTOR]
StatField = Annotated[Stat | bytes, STAT]
#: a trailing ``boolean`` that old peers omit (``readOnly`` of the connect records)
OptBool = Annotated[bool | None, Trailing(BOOL)]


class JuteRecord:
    """Base of every declared record: only tells mypy what :func:`record` derives."""

    __slots__ = ()

    if TYPE_CHECKING:

        @classmethod
        def read(cls, r: Reader) -> Self:
            """The checked reader (raises :class:`~.jute.JuteError`)."""

        def write(self, w: Writer) -> None:
            """Append the bare record to ``w``."""

        @classmethod
        def _jute_decode(cls, b: bytes | bytearray | memoryview, off: int, max_len: int) -> Self:
            """The byte-level decoder (see :mod:`.codegen`)."""

#: Every declared record by class name (for ``python -m trio_quorum.protocol``).
RECORDS: dict[str, type] = {}


def _table(cls: type) -> tuple[tuple[str, JuteType], ...]:
    # Each annotation is evaluated alone, in its module: only the jute type in
    # its Annotated metadata matters here, so a forward reference inside the
    # Python type (MultiTxn's TxnRecord) is never resolved.
    module = vars(sys.modules[cls.__module__])
    out = []
    for name, ann in cls.__dict__.get("__annotations__", {}).items():
        hint = eval(ann, module) if isinstance(ann, str) else ann  # noqa: S307 - our own source text
        meta = [m for m in getattr(hint, "__metadata__", ()) if isinstance(m, JuteType)]
        if len(meta) != 1:
            raise TypeError(f"{cls.__name__}.{name}: annotate with a jute type alias (Int, UString, ...)")
        out.append((name, meta[0]))
    return tuple(out)


@overload
def record(cls: _T, /) -> _T: ...
@overload
def record(*, frozen: bool = True) -> Callable[[_T], _T]: ...
@dataclass_transform(frozen_default=True)
def record(cls: Any = None, /, *, frozen: bool = True) -> Any:
    """Declare a jute record (see the module docstring).

    ``frozen=False`` makes a mutable-by-convention record with ``unsafe_hash``
    (the txn records: cheaper to build, still hashable and comparable).
    Methods the class body defines itself (``write`` with extra arguments,
    properties) are kept; the derived ones fill in the rest.
    """

    def wrap(c: type) -> type:
        table = _table(c)
        own = set(c.__dict__)
        dc: type = dataclasses.dataclass(frozen=frozen, slots=True, unsafe_hash=not frozen)(c)
        setattr(dc, "__jute__", table)  # noqa: B010 - an attribute mypy need not know
        codegen.install(dc, table, frozen=frozen, keep=own)
        RECORDS[dc.__name__] = dc
        return dc

    return wrap if cls is None else wrap(cls)


def jute_fields(cls: type) -> tuple[tuple[str, JuteType], ...]:
    """The field table of a record class: ``((name, jute type), ...)``."""
    table: tuple[tuple[str, JuteType], ...] = cls.__jute__  # type: ignore[attr-defined]
    return table


def read_fields(cls: type, r: Reader, n: int | None = None) -> Any:
    """The table interpreter's reader: the first ``n`` (default all) fields of
    ``cls`` read one by one; the others keep their defaults."""
    table = jute_fields(cls)[:n]
    return cls(*[t.read(r) for _, t in table])


def write_fields(rec: Any, w: Writer, n: int | None = None) -> None:
    """The table interpreter's writer: the first ``n`` (default all) fields."""
    for name, t in jute_fields(type(rec))[:n]:
        t.write(w, getattr(rec, name))
