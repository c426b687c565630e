"""paths: ZooKeeper's PathUtils.validatePath rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_quorum.core.paths import (
    basename,
    is_valid_path,
    parent_of,
    path_error,
    split_path,
    validate_path,
)
from trio_quorum.protocol.consts import Err, KeeperError

VALID = [
    "/",
    "/a",
    "/a/b",
    "/zookeeper",
    "/a.b",
    "/...",
    "/a/..b",
    "/a/b..",
    "/.a",
    "/a/.b/c",
    "/\u00e9t\u00e9",
    "/a b",
    "/\u00a0",
    "/\ufeff",
]
INVALID = [
    "",
    "a",
    "a/b",
    "/a/",
    "//",
    "/a//b",
    "/.",
    "/..",
    "/a/.",
    "/a/..",
    "/./a",
    "/../a",
    "/a/./b",
    "/a/../b",
    "/a\x00",
    "/a\x01",
    "/a\x1f",
    "/a\x7f",
    "/a\x9f",
    "/a\ud800",
    "/a\uf8ff",
    "/a\ufff0",
    "/a\uffff",
    "/\U0001f600",
]


@pytest.mark.parametrize("path", VALID)
def test_valid_paths(path: str) -> None:
    assert path_error(path) is None
    validate_path(path)


@pytest.mark.parametrize("path", INVALID)
def test_invalid_paths_raise_badarguments(path: str) -> None:
    assert path_error(path) is not None
    with pytest.raises(KeeperError) as ei:
        validate_path(path)
    assert ei.value.code == Err.BADARGUMENTS


def test_non_strings_are_invalid() -> None:
    assert path_error(None) == "Path cannot be null"
    assert not is_valid_path(b"/a")


def test_reason_texts_follow_zookeeper() -> None:
    assert path_error("/a\x00b") == "null character not allowed @2"
    assert path_error("/a//b") == "empty node name specified @3"
    assert path_error("x") == "Path must start with / character"


def test_parent_and_basename() -> None:
    assert parent_of("/a") == "/"
    assert parent_of("/a/b/c") == "/a/b"
    assert basename("/a/b") == "b"
    assert basename("/") == ""
    assert split_path("/a/b") == ("/a", "b")
    assert split_path("/a") == ("/", "a")


def _reference(path: str) -> bool:
    """A literal transcription of the Java loop (UTF-16 code units), as an oracle."""
    if not path or path[0] != "/":
        return False
    if len(path) == 1:
        return True
    if path[-1] == "/":
        return False
    units = path.encode("utf-16-be", "surrogatepass")
    chars = [int.from_bytes(units[i : i + 2], "big") for i in range(0, len(units), 2)]
    last = ord("/")
    for i in range(1, len(chars)):
        c = chars[i]
        if c == 0:
            return False
        if c == ord("/") and last == ord("/"):
            return False
        if c == ord(".") and last == ord("."):
            if chars[i - 2] == ord("/") and (i + 1 == len(chars) or chars[i + 1] == ord("/")):
                return False
        elif c == ord("."):
            if chars[i - 1] == ord("/") and (i + 1 == len(chars) or chars[i + 1] == ord("/")):
                return False
        elif 0 < c <= 0x1F or 0x7F <= c <= 0x9F or 0xD800 <= c <= 0xF8FF or 0xFFF0 <= c <= 0xFFFF:
            return False
        last = c
    return True


path_text = st.lists(
    st.one_of(
        st.sampled_from(
            ["/", ".", "..", "a", "\x00", "\x05", "\x7f", "\u00e9", "\ufff5", "\U0001f600"]
        ),
        st.text(max_size=3),
    ),
    max_size=8,
).map("".join)


@given(path_text)
def test_matches_java_loop(path: str) -> None:
    assert is_valid_path(path) == _reference(path)
