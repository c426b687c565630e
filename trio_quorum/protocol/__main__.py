"""``python -m trio_quorum.protocol``: print the record tables and their generated code.

Usage::

    python -m trio_quorum.protocol                      # every record's field table
    python -m trio_quorum.protocol --show SetDataRequest  # its table and generated source
    python -m trio_quorum.protocol --show encode_reply    # a generated codec function

The codec functions with generated source are ``encode_reply``,
``encode_notification`` (records) and ``encode_txn``, ``_decode_txn_fast`` (txn).

Invariants: sans-IO apart from printing to stdout.
"""

from __future__ import annotations

__sans_io__ = True

import sys

from . import records, txn
from .codegen import sources
from .schema import RECORDS, jute_fields


def table(cls: type) -> str:
    """A record's field table, one ``jute type  name`` line per field."""
    return f"{cls.__name__} {{\n" + "".join(f"    {t.name:18s} {n}\n" for n, t in jute_fields(cls)) + "}"


def show(name: str) -> str:
    """The table and generated sources of record ``name``, or the source of a
    generated codec function of :mod:`.records` / :mod:`.txn`."""
    cls = RECORDS.get(name)
    if cls is not None:
        return "\n\n".join([table(cls), *sources(cls)])
    for module in (records, txn):
        src = getattr(getattr(module, name, None), "__jute_source__", None)
        if src is not None:
            return str(src)
    raise KeyError(name)


def main(argv: list[str]) -> int:
    if not argv:
        print("\n\n".join(table(cls) for cls in RECORDS.values()))
        return 0
    if len(argv) == 2 and argv[0] == "--show":
        try:
            print(show(argv[1]))
        except KeyError:
            print(f"no record or generated function named {argv[1]!r}", file=sys.stderr)
            return 2
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
