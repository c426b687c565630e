"""java.util.Properties syntax, as ``QuorumPeerConfig`` loads a zoo.cfg.

Invariant: every returned entry carries the 1-based line its key started on
(a continued value keeps its first line), so every later problem can name it.
"""

from __future__ import annotations

__sans_io__ = True

__all__ = ["parse_properties"]


def parse_properties(text: str) -> list[tuple[int, str, str]]:
    """java.util.Properties syntax -> ``(line_no, key, value)`` in file order.

    ``#``/``!`` comments, ``key=value`` / ``key:value`` / ``key value``,
    backslash line continuation; values are stripped (as QuorumPeerConfig does).
    """
    out: list[tuple[int, str, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line_no = i + 1
        line = lines[i].lstrip()
        i += 1
        if not line or line[0] in "#!":
            continue
        # continuation: an odd number of trailing backslashes joins the next line
        while (len(line) - len(line.rstrip("\\"))) % 2 == 1:
            line = line[:-1]
            if i >= len(lines):
                break
            line += lines[i].lstrip()
            i += 1
        j = 0
        n = len(line)
        while j < n and line[j] not in "=: \t\f":
            if line[j] == "\\":
                j += 1
            j += 1
        key = line[:j].replace("\\", "")
        rest = line[j:].lstrip(" \t\f")
        if rest[:1] in ("=", ":"):
            rest = rest[1:]
        out.append((line_no, key.strip(), rest.strip()))
    return out
