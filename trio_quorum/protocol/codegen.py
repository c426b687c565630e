"""Source generation from jute field tables (sans-IO).

:func:`~.schema.record` hands each record's table to :func:`install`, which
generates and compiles, from that table alone:

* ``__init__``: sets the slots directly (a frozen dataclass's own
  ``__init__`` goes through ``object.__setattr__`` per field, about twice the
  cost);
* ``read(r)``: the checked reader over :class:`~.jute.Reader` (errors are
  :class:`~.jute.JuteError`);
* ``write(self, w)``: the writer (consecutive fixed fields packed by one
  struct);
* ``_jute_decode(b, off, max_len)``: the byte-level decoder of the hot paths.
  It reads well-formed input with precompiled structs and slices and builds
  the record through its slot setters; at the first irregularity (a length
  that is negative but not -1, over ``max_len`` or past the end; a payload
  over :data:`COPY_LIMIT` that is not ``bytes``) it returns ``read``'s answer
  instead, so it answers exactly what ``read`` answers.  Invalid UTF-8
  propagates as :class:`UnicodeDecodeError` (callers map it).

:func:`encode_case` generates the byte-level encoder of a record (or of a
header record followed by a record), with an optional leading frame length
and struct-packed head: the records use it for ``encode_reply``,
``encode_request`` and ``encode_txn``.  Its fast form applies when the
strings are ``str`` and the buffers ``bytes`` (a guard); otherwise the caller
falls back to ``write``, which is the reference.

Every generated function keeps its source in ``__jute_source__``;
``python -m trio_quorum.protocol --show NAME`` prints them.

Invariants: no IO; generated code only reads the tables, never user input;
the decoders allocate nothing larger than their input.
"""

from __future__ import annotations

__sans_io__ = True

import struct
from collections.abc import Callable, Sequence
from dataclasses import MISSING, fields
from typing import Any

from .jute import Reader

__all__ = [
    "COPY_LIMIT",
    "install",
    "compile_function",
    "decode_lines",
    "encode_case",
    "fields_of",
    "fixed_struct",
    "build_lines",
    "make_encoder",
    "indent",
    "sources",
]

#: A decoder copies a non-``bytes`` payload up to this size to ``bytes`` once
#: (cheaper than a memoryview slice per field); a bigger one is read by
#: ``read`` from the view itself, so its data is copied only once.
COPY_LIMIT = 4096

_Table = Sequence[tuple[str, Any]]


def compile_function(name: str, lines: list[str], ns: dict[str, Any]) -> Any:
    """Compile ``lines`` (a ``def`` and its body) in ``ns``; returns ``ns[name]``."""
    src = "\n".join(lines) + "\n"
    exec(compile(src, f"<jute {name}>", "exec"), ns)
    fn = ns[name]
    fn.__jute_source__ = src
    return fn


def sources(cls: type) -> list[str]:
    """The generated sources of a record class, in a fixed order."""
    out = []
    for attr in ("__init__", "read", "write", "_jute_decode"):
        fn = cls.__dict__.get(attr)
        fn = getattr(fn, "__func__", fn)
        src = getattr(fn, "__jute_source__", None)
        if src is not None:
            out.append(src)
    return out


def _struct(ns: dict[str, Any], fmt: str, op: str) -> str:
    """Name of ``struct.Struct('>' + fmt).<op>`` in ``ns`` (added once)."""
    name = f"_{op}_{fmt.replace('?', 'b')}"
    if name not in ns:
        ns[name] = getattr(struct.Struct(">" + fmt), op)
    return name


def _setter(cls: type, fname: str, frozen: bool, obj: str, value: str, ns: dict[str, Any]) -> str:
    if not frozen:
        return f"{obj}.{fname} = {value}"
    name = f"_set_{cls.__name__}_{fname}"
    ns[name] = getattr(cls, fname).__set__
    return f"{name}({obj}, {value})"


def build_lines(cls: type, names: Sequence[str], values: Sequence[str], obj: str, frozen: bool,
                ns: dict[str, Any]) -> list[str]:
    """Lines building ``cls`` into ``obj`` without ``__init__`` (same object)."""
    ns[cls.__name__] = cls
    ns["_new"] = object.__new__
    out = [f"{obj} = _new({cls.__name__})"]
    out += [_setter(cls, n, frozen, obj, v, ns) for n, v in zip(names, values, strict=True)]
    return out


# ------------------------------------------------------------ per record


def install(cls: type, table: _Table, *, frozen: bool, keep: set[str]) -> None:
    """Give the dataclass ``cls`` its derived ``__init__``, ``read``, ``write``
    and ``_jute_decode`` (``keep``: names the class body defines itself)."""
    ns: dict[str, Any] = {"Reader": Reader}
    cname = cls.__name__
    # __init__
    params, body = [], []
    for f in fields(cls):
        if f.default is not MISSING:
            ns[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        else:
            params.append(f.name)
        body.append("    " + _setter(cls, f.name, frozen, "self", f.name, ns))
    init = compile_function("__init__", [f"def __init__(self, {', '.join(params)}):", *(body or ["    pass"])], ns)
    init.__qualname__ = f"{cname}.__init__"
    cls.__init__ = init  # type: ignore[misc]
    for name, t in table:
        ns[f"t_{name}"] = t
    if "read" not in keep:
        cls.read = staticmethod(compile_function("read", _read_lines(cls, table, frozen, ns), ns))  # type: ignore[attr-defined]
    if "write" not in keep:
        cls.write = compile_function("write", _write_lines(table, ns), ns)  # type: ignore[attr-defined]
    read = cls.read  # type: ignore[attr-defined]
    ns["_read"] = read

    def slow(b: Any, off: int, max_len: int) -> Any:
        return read(Reader(b, off, max_len=max_len))

    ns["_slow"] = slow
    dec = [
        "def _jute_decode(b, off, max_len):",
        "    end = len(b)",
        "    if b.__class__ is memoryview:",
        f"        if end > {COPY_LIMIT}:",
        "            return _slow(b, off, max_len)",
        "        b = b.tobytes()",
        "    elif b.__class__ is not bytes:",
        f"        if end > {COPY_LIMIT}:",
        "            return _slow(b, off, max_len)",
        "        b = bytes(b)",
        "    p = off",
    ]
    names = [n for n, _ in table]
    dec += ["    " + ln for ln in decode_lines([(n, t) for n, t in table], "return _slow(b, off, max_len)", ns)]
    dec += ["    " + ln for ln in build_lines(cls, names, names, "o", frozen, ns)]
    dec.append("    return o")
    cls._jute_decode = staticmethod(compile_function("_jute_decode", dec, ns))  # type: ignore[attr-defined]


def _read_lines(cls: type, table: _Table, frozen: bool, ns: dict[str, Any]) -> list[str]:
    out = ["def read(r):"]
    names = []
    for run, var in _runs(table):
        if len(run) > 1:
            fmt = "".join(t.fmt for _, t in run)
            un = _struct(ns, fmt, "unpack_from")
            out.append(f"    {', '.join(n for n, _ in run)} = {un}(r.data, r._need({struct.calcsize('>' + fmt)}))")
        elif run:
            n, t = run[0]
            out.append(f"    {n} = r.{_FIXED_READ[t.fmt]}()")
        names += [n for n, _ in run]
        if var is not None:
            n, t = var
            if t.kind in ("ustring", "buffer"):
                what = "ustring" if t.kind == "ustring" else "buffer"
                out.append(f"    {n} = r.read_{what}{'_nullable' if t.nullable else ''}()")
            else:
                out.append(f"    {n} = t_{n}.read(r)")
            names.append(n)
    out += ["    " + ln for ln in build_lines(cls, names, names, "o", frozen, ns)]
    out.append("    return o")
    return out


_FIXED_READ = {"i": "read_int", "q": "read_long", "?": "read_bool"}


def _write_lines(table: _Table, ns: dict[str, Any]) -> list[str]:
    out = ["def write(self, w):"]
    if not table:
        out.append("    pass")
    for run, var in _runs(table):
        if run:
            fmt = "".join(t.fmt for _, t in run)
            pack = _struct(ns, fmt, "pack")
            out.append(f"    w.buf += {pack}({', '.join(f'self.{n}' for n, _ in run)})")
        if var is not None:
            n, t = var
            if t.kind == "ustring":
                out.append(f"    w.write_ustring(self.{n})")
            elif t.kind == "buffer":
                out.append(f"    w.write_buffer(self.{n})")
            else:
                out.append(f"    t_{n}.write(w, self.{n})")
    return out


def _runs(table: _Table) -> list[tuple[list[tuple[str, Any]], tuple[str, Any] | None]]:
    """The table cut into (fixed fields, the next non-fixed field or None)."""
    out: list[tuple[list[tuple[str, Any]], tuple[str, Any] | None]] = []
    run: list[tuple[str, Any]] = []
    for name, t in table:
        if t.kind == "fixed":
            run.append((name, t))
        else:
            out.append((run, (name, t)))
            run = []
    if run or not out:
        out.append((run, None))
    return out


# ------------------------------------------------------------ decoding


def decode_lines(table: _Table, fail: str, ns: dict[str, Any], checked: bool = False) -> list[str]:
    """Lines reading ``table``'s fields from ``bytes`` ``b`` at ``p`` (bounded
    by ``end`` and ``max_len``) into variables named like the fields; ``fail``
    (a statement) at the first irregularity.  ``checked``: the first run's
    bytes are known to be there."""
    runs = _runs(table)
    sizes = [struct.calcsize(">" + _run_fmt(run, var)) for run, var in runs]
    out: list[str] = []
    need_check = not checked
    for k, (run, var) in enumerate(runs):
        fmt = _run_fmt(run, var)
        names = [n for n, _ in run] + ([f"n_{var[0]}"] if var is not None and var[1].kind in _VAR else [])
        if fmt:
            if need_check:
                out.append(f"if p + {sizes[k]} > end:")
                out.append(f"    {fail}")
            if fmt == "?":  # one boolean: the byte itself is cheaper than a struct
                out.append(f"{names[0]} = b[p] != 0")
            else:
                un = _struct(ns, fmt, "unpack_from")
                out.append(f"{names[0]} = {un}(b, p)[0]" if len(names) == 1 else f"{', '.join(names)} = {un}(b, p)")
            out.append(f"p += {sizes[k]}")
        need_check = True
        if var is None:
            continue
        name, t = var
        nxt = sizes[k + 1] if k + 1 < len(runs) else 0
        if t.kind in _VAR:
            out += _var_lines(name, t, nxt, fail, ns)
            need_check = False  # _var_lines checked the next run's bytes
        elif t.kind == "trailing":
            ns[f"_absent_{name}"] = t.absent
            out.append(f"if end - p < {t.inner.min_size}:")
            out.append(f"    {name} = _absent_{name}")
            out.append("else:")
            out += ["    " + ln for ln in decode_lines([(name, t.inner)], fail, ns, checked=True)]
        else:
            out += _other_lines(name, t, ns)
    return out


_VAR = ("ustring", "buffer")


def _run_fmt(run: list[tuple[str, Any]], var: tuple[str, Any] | None) -> str:
    return "".join(t.fmt for _, t in run) + ("i" if var is not None and var[1].kind in _VAR else "")


def _var_lines(name: str, t: Any, nxt: int, fail: str, ns: dict[str, Any]) -> list[str]:
    """A string/buffer whose length is in ``n_<name>``, then the bound check of
    the ``nxt`` bytes that follow it."""
    n = f"n_{name}"
    value = "b[p:e].decode()" if t.kind == "ustring" else "b[p:e]"
    null = "None" if t.nullable else ('""' if t.kind == "ustring" else 'b""')
    out = [
        f"if {n} >= 0:",
        f"    e = p + {n}",
        f"    if {n} > max_len or e + {nxt} > end:" if nxt else f"    if {n} > max_len or e > end:",
        f"        {fail}",
        f"    {name} = {value}",
        "    p = e",
        f"elif {n} == -1:",
        f"    {name} = {null}",
    ]
    if nxt:
        out += [f"    if p + {nxt} > end:", f"        {fail}"]
    out += ["else:", f"    {fail}"]
    return out


def _other_lines(name: str, t: Any, ns: dict[str, Any]) -> list[str]:
    """Any other type through its own ``read`` (raises JuteError, as ``read`` would)."""
    tname, k = f"t_{name}", 0
    while ns.setdefault(tname, t) is not t:  # a name for this type in ns
        k += 1
        tname = f"t_{name}_{k}"
    read = [
        "_r = Reader(b, p, max_len=max_len)",
        f"{name} = {tname}.read(_r)",
        "p = _r.pos",
    ]
    wire = getattr(t, "OPEN_WIRE", None)
    if wire is None:
        return read
    # vector<ACL>: OPEN_ACL_UNSAFE, what almost every create carries, by one compare.
    ns["_OPEN_WIRE"] = wire
    ns["_OPEN_ACL"] = t.read(Reader(wire))
    return [
        f"if max_len >= {t.OPEN_MAX_LEN} and b[p:p + {len(wire)}] == _OPEN_WIRE:",
        f"    {name} = _OPEN_ACL",
        f"    p += {len(wire)}",
        "else:",
        *["    " + ln for ln in read],
    ]


# ------------------------------------------------------------ encoding


def fields_of(var: str, cls: type, exprs: Sequence[str] | None = None) -> list[tuple[str, Any, str]]:
    """``(variable, jute type, expression)`` of each field of ``cls``, read as
    ``<var>.<field>`` or from ``exprs``, for :func:`encode_case`."""
    table = cls.__jute__  # type: ignore[attr-defined]
    if exprs is None:
        exprs = [f"{var}.{name}" for name, _ in table]
    return [(f"{var}_{name}", t, e) for (name, t), e in zip(table, exprs, strict=True)]


def fixed_struct(cls: type) -> struct.Struct:
    """The struct of a record made of fixed fields only (a header)."""
    return struct.Struct(">" + "".join(t.fmt for _, t in cls.__jute__))  # type: ignore[attr-defined]


def encode_case(items: Sequence[tuple[str, Any, str]], ns: dict[str, Any], *, frame: bool = False) -> list[str] | None:
    """Lines that ``return`` the encoding of ``items`` (``(variable, jute
    type, expression)``, see :func:`fields_of`), preceded by an int32 frame
    length of what follows when ``frame``.  The ``return`` is guarded by type
    checks of the strings and buffers: when they fail the lines fall through
    (the caller then writes with ``write``).  None when a field type has no
    fast form (custom, or a trailing field that is not fixed)."""
    parts: list[str] = []  # expressions of the pieces, in order
    fmt, args = ("i", ["_LEN"]) if frame else ("", [])
    const = 0  # bytes of the struct-packed pieces
    lengths: list[str] = []
    pre: list[str] = []
    guards: list[str] = []
    body: list[str] = []

    def flush() -> None:
        nonlocal fmt, args, const
        if fmt:
            parts.append(f"{_struct(ns, fmt, 'pack')}({', '.join(args)})")
            const += struct.calcsize(">" + fmt)
            fmt, args = "", []

    for v, t, expr in items:
        if t.kind == "trailing":
            if t.inner.kind != "fixed":
                return None
            pre.append(f"{v} = {expr}")
            guards.append(f"{v} is not None")
            fmt += t.inner.fmt
            args.append(v)
        elif t.kind == "fixed":
            fmt += t.fmt
            args.append(expr)
        elif t.kind in _VAR:
            pre.append(f"{v} = {expr}")
            if t.kind == "ustring":
                guards.append(f"{v}.__class__ is str")
                body.append(f"{v} = {v}.encode()")
            else:
                guards.append(f"{v}.__class__ is bytes")
            fmt += "i"
            if frame:  # the length is needed twice
                body.append(f"n_{v} = len({v})")
                args.append(f"n_{v}")
                lengths.append(f"n_{v}")
            else:
                args.append(f"len({v})")
            flush()
            parts.append(v)
        elif t.exact_size is not None:  # Stat: its packed bytes pass as they are
            pre.append(f"{v} = {expr}")
            guards.append(f"{v}.__class__ is bytes and len({v}) == {t.exact_size}")
            flush()
            parts.append(v)
            const += t.exact_size
        elif t.kind == "other":
            ns[f"t_{v}"] = t
            pre.append(f"{v} = {expr}")
            body.append(f"b_{v} = {_bytes_expr(t, v, ns)}")
            flush()
            parts.append(f"b_{v}")
            if frame:
                body.append(f"n_{v} = len(b_{v})")
                lengths.append(f"n_{v}")
        else:
            return None
    flush()
    if frame:
        parts[0] = parts[0].replace("_LEN", " + ".join([str(const - 4), *lengths]), 1)
    if len(parts) == 1:
        ret = f"return {parts[0]}"
    elif len(parts) == 2:
        ret = f"return {parts[0]} + {parts[1]}"
    else:
        ret = f"return b\"\".join(({', '.join(parts)}))"
    if not guards:
        return pre + body + [ret]
    return [*pre, f"if {' and '.join(guards)}:", *["    " + ln for ln in [*body, ret]]]


def _bytes_expr(t: Any, v: str, ns: dict[str, Any]) -> str:
    """The encoding of a value of an ``other`` type, with its common case inline."""
    wire = getattr(t, "OPEN_WIRE", None)
    if wire is not None:
        ns["_OPEN_WIRE"] = wire
        ns["_OPEN_ACL"] = t.read(Reader(wire))
        return f"_OPEN_WIRE if {v} is _OPEN_ACL else t_{v}.to_bytes({v})"
    return f"t_{v}.to_bytes({v})"


def make_encoder(name: str, params: str, lines: list[str] | None, ns: dict[str, Any]) -> Callable[..., Any] | None:
    """A function ``name(params)`` of :func:`encode_case` lines, returning None
    when their guard fails."""
    if lines is None:
        return None
    fn: Callable[..., Any] = compile_function(name, [f"def {name}({params}):", *["    " + ln for ln in lines],
                                                     "    return None"], ns)
    return fn


def indent(lines: Sequence[str], depth: int = 1) -> list[str]:
    pad = "    " * depth
    return [pad + ln for ln in lines]
