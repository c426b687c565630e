"""FrameDecoder: splitting, carry-over, four-letter words, Len error, fuzz."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_quorum.protocol.framing import FOUR_LETTER_WORDS, FourLetterWord, FrameDecoder, FrameError
from trio_quorum.protocol.jute import DEFAULT_MAX_BUFFER, JuteError


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def drain(dec: FrameDecoder) -> list[object]:
    return [x if isinstance(x, FourLetterWord) else bytes(x) for x in dec.frames()]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.binary(max_size=60), max_size=8),
    st.lists(st.integers(1, 50), min_size=1, max_size=20),
    st.booleans(),
)
def test_any_chunking_yields_the_same_frames(
    payloads: list[bytes], cuts: list[int], frames_between_feeds: bool
) -> None:
    stream = b"".join(frame(x) for x in payloads)
    dec = FrameDecoder()
    got: list[object] = []
    pos = i = 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        i += 1
        dec.feed(stream[pos : pos + step])
        pos += step
        if frames_between_feeds or pos >= len(stream):
            got += drain(dec)
    assert got == payloads
    assert dec.buffered() == 0


def test_whole_frames_of_one_read_are_zero_copy_views() -> None:
    read = frame(b"abc") + frame(b"") + frame(b"de") + b"\0\0"
    dec = FrameDecoder()
    dec.feed(read)
    out = dec.frames()
    assert all(isinstance(x, memoryview) and x.obj is read for x in out)
    assert [bytes(x) for x in out] == [b"abc", b"", b"de"]
    assert dec.buffered() == 2
    dec.feed(b"\0\1Z")
    assert drain(dec) == [b"Z"]


def test_large_frame_in_many_reads() -> None:
    big = bytes(range(256)) * 400
    data = frame(big) + frame(b"tail")
    dec = FrameDecoder()
    got: list[object] = []
    calls_with_output = 0
    for i in range(0, len(data), 1000):
        dec.feed(data[i : i + 1000])
        out = drain(dec)
        calls_with_output += bool(out)
        got += out
    assert got == [big, b"tail"]
    assert calls_with_output == 1  # both completed in the last read


def test_bytearray_and_memoryview_input_are_copied() -> None:
    src = bytearray(frame(b"hello"))
    dec = FrameDecoder()
    dec.feed(src)
    src[4:9] = b"XXXXX"  # caller reuses its buffer
    dec.feed(memoryview(frame(b"w")))
    assert drain(dec) == [b"hello", b"w"]


@pytest.mark.parametrize("word", sorted(FOUR_LETTER_WORDS - {"stmk"}))
def test_four_letter_word_first(word: str) -> None:
    dec = FrameDecoder()
    dec.feed(word.encode()[:2])
    assert dec.frames() == []
    dec.feed(word.encode()[2:] + b"garbage after is ignored")
    assert dec.frames() == [FourLetterWord(word)]
    dec.feed(frame(b"more"))
    assert dec.frames() == []


def test_stmk_takes_a_mask() -> None:
    dec = FrameDecoder()
    dec.feed(b"stmk\0\0\0\0")
    assert dec.frames() == []
    dec.feed(b"\0\0\1\0")
    assert dec.frames() == [FourLetterWord("stmk", 256)]


def test_four_letter_word_only_on_first_frame_and_only_when_enabled() -> None:
    dec = FrameDecoder()
    dec.feed(frame(b"a") + b"ruok")
    assert drain(dec) == [b"a"]
    with pytest.raises(FrameError, match=f"Len error {struct.unpack('>i', b'ruok')[0]}"):
        dec.frames()
    client = FrameDecoder(four_letter_words=False)
    client.feed(b"ruok")
    with pytest.raises(FrameError, match="Len error"):
        client.frames()


def test_len_error_poisons_the_decoder() -> None:
    dec = FrameDecoder(max_len=10)
    dec.feed(frame(b"0123456789") + struct.pack(">i", 11))
    assert drain(dec) == [b"0123456789"]
    with pytest.raises(FrameError, match="Len error 11"):
        dec.frames()
    dec.feed(frame(b"ok"))
    with pytest.raises(FrameError):
        dec.frames()
    neg = FrameDecoder()
    neg.feed(struct.pack(">i", -1))
    with pytest.raises(FrameError, match="Len error -1"):
        neg.frames()
    assert issubclass(FrameError, JuteError)
    ok = FrameDecoder()
    ok.feed(struct.pack(">i", DEFAULT_MAX_BUFFER))
    assert ok.frames() == []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=6), st.booleans(), st.integers(0, 64))
def test_fuzz_only_frame_error(chunks: list[bytes], flw: bool, max_len: int) -> None:
    dec = FrameDecoder(max_len, four_letter_words=flw)
    total = 0
    for c in chunks:
        dec.feed(c)
        try:
            for x in dec.frames():
                total += 1 if isinstance(x, FourLetterWord) else len(x) + 4
        except FrameError:
            return
    assert total + dec.buffered() <= sum(map(len, chunks))
