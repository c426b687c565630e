"""Znode path rules: ZooKeeper's ``PathUtils.validatePath`` and path helpers (sans-IO).

A valid path is absolute, is ``/`` or has no trailing ``/``, has no empty,
``.`` or ``..`` components, and holds no character ZooKeeper refuses:
U+0000, U+0001-U+001F, U+007F-U+009F, U+D800-U+F8FF, U+FFF0-U+FFFF.
ZooKeeper checks UTF-16 code units, so any character outside the BMP (an
emoji, stored by Java as a surrogate pair in U+D800-U+DFFF) is refused too.

Invariants:

* :func:`path_error` never raises on any ``str``; it returns ``None`` for a
  valid path and a human-readable reason otherwise (the reason texts follow
  ZooKeeper's, so server logs read the same).
* :func:`validate_path` raises :class:`~trio_quorum.protocol.consts.KeeperError`
  with ``BADARGUMENTS``: the code the server answers for a bad path.
"""

from __future__ import annotations

import re

from ..protocol.consts import Err, KeeperError

__sans_io__ = True

__all__ = [
    "path_error",
    "plain_path",
    "is_valid_path",
    "validate_path",
    "parent_of",
    "basename",
    "split_path",
    "SPECIAL_PATHS",
]

#: Paths the tree owns (``DataTree.isSpecialPath``): they cannot be deleted.
SPECIAL_PATHS = frozenset({"/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"})

# One regex finds the first refused character; most paths are plain ASCII and
# fail the search at C speed.
_BAD_CHAR = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\uf8ff\ufff0-\U0010ffff]")


def plain_path(path: str) -> bool:
    """A cheap sufficient test: True means ``path_error(path) is None``.

    Printable ASCII (so no refused character), absolute, no trailing ``/``,
    no empty component and no component starting with ``.`` (so neither
    ``.`` nor ``..``).  False only means "ask :func:`path_error`".  Hot
    callers inline this expression; ``tests/test_hotpath_paths.py`` checks
    the implication.
    """
    return (
        path.isascii()
        and path.isprintable()
        and path[:1] == "/"
        and path[-1] != "/"
        and "//" not in path
        and "/." not in path
    )


def path_error(path: object) -> str | None:
    """Why ``path`` is not a valid znode path, or ``None`` when it is."""
    if not isinstance(path, str):
        return "Path cannot be null" if path is None else "Path must be a string"
    if not path:
        return "Path length must be > 0"
    if path[0] != "/":
        return "Path must start with / character"
    if len(path) == 1:
        return None
    if path[-1] == "/":
        return "Path must not end with / character"
    m = _BAD_CHAR.search(path)
    if m is not None:
        i = m.start()
        if path[i] == "\x00":
            return f"null character not allowed @{i}"
        return f"invalid character @{i}"
    if "//" in path:
        return f"empty node name specified @{path.index('//') + 1}"
    if "." in path:
        for comp in path.split("/"):
            if comp == "." or comp == "..":
                return "relative paths not allowed"
    return None


def is_valid_path(path: object) -> bool:
    """True when ``path`` passes ZooKeeper's ``validatePath``."""
    return path_error(path) is None


def validate_path(path: str) -> None:
    """Raise ``KeeperError(BADARGUMENTS, path)`` unless ``path`` is valid."""
    if path_error(path) is not None:
        raise KeeperError(Err.BADARGUMENTS, path)


def parent_of(path: str) -> str:
    """The parent of a valid non-root path (``/a`` -> ``/``, ``/a/b`` -> ``/a``)."""
    i = path.rfind("/")
    return "/" if i <= 0 else path[:i]


def basename(path: str) -> str:
    """The last component of a path (``""`` for the root)."""
    return path[path.rfind("/") + 1 :]


def split_path(path: str) -> tuple[str, str]:
    """``(parent, name)`` of a valid non-root path."""
    i = path.rfind("/")
    return ("/" if i <= 0 else path[:i]), path[i + 1 :]
