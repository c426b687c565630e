"""Client-port framing: int32-length-prefixed packets and four-letter words (sans-IO).

Every packet on ZooKeeper's client port is ``int32 length`` + payload.  On a
fresh connection the first four bytes may instead be a four-letter word
(``ruok``, ``srvr``, ...): read as a length they would all exceed
``jute.maxbuffer``, so there is no ambiguity (``NIOServerCnxn.readLength``).

Invariants:

* No IO.  The driver calls :meth:`FrameDecoder.feed` with each socket read and
  then :meth:`FrameDecoder.frames`, which returns every complete payload of
  that read at once, so one read costs one call, not one per packet.
* Linear cost: each received byte is copied at most twice (into the carry-over
  buffer of a partial frame, and once when that frame completes).  Payloads of
  frames that arrived whole in one ``bytes`` read are zero-copy
  ``memoryview`` slices of that read (read-only, safe to keep).
* A length below 0 or above ``max_len`` raises :class:`FrameError` ("Len error
  <n>", ZooKeeper's words) and poisons the decoder: the connection must close.
  Complete frames before the bad length are returned first; the error is
  raised by the next call.
* A four-letter word is recognised only as the first four bytes of a
  connection; ``stmk`` also takes the 8-byte trace mask that follows.  After a
  four-letter word the decoder yields nothing more: ZooKeeper answers and closes.
"""

from __future__ import annotations

__sans_io__ = True

import struct
from dataclasses import dataclass

from .jute import DEFAULT_MAX_BUFFER, JuteError

__all__ = ["FrameDecoder", "FrameError", "FourLetterWord", "FOUR_LETTER_WORDS"]

#: Commands of ``FourLetterCommands`` (reference section 1.9).
FOUR_LETTER_WORDS = frozenset(
    {
        "ruok",
        "srvr",
        "stat",
        "mntr",
        "conf",
        "cons",
        "envi",
        "wchs",
        "wchc",
        "wchp",
        "dirs",
        "isro",
        "crst",
        "srst",
        "dump",
        "gtmk",
        "stmk",
        "hash",
    }
)
_FLW_BY_INT = {struct.unpack(">i", w.encode())[0]: w for w in FOUR_LETTER_WORDS}

_INT = struct.Struct(">i")
_LONG = struct.Struct(">q")
_unpack_int = _INT.unpack_from


class FrameError(JuteError):
    """The byte stream is not a sequence of valid frames; close the connection."""


@dataclass(frozen=True, slots=True)
class FourLetterWord:
    """A four-letter word sent instead of the first frame.

    ``arg`` is the trace mask that follows ``stmk``; ``None`` for the others.
    """

    cmd: str
    arg: int | None = None


class FrameDecoder:
    """Splits a client-port byte stream into frame payloads.

    Args:
        max_len: largest payload accepted (``jute.maxbuffer``).
        four_letter_words: recognise four-letter words as the first frame
            (a server connection: True; a client reading replies: False).
    """

    __slots__ = ("max_len", "_data", "_pos", "_buf", "_need", "_fresh", "_done", "_error")

    def __init__(
        self, max_len: int = DEFAULT_MAX_BUFFER, *, four_letter_words: bool = True
    ) -> None:
        self.max_len = max_len
        # Zero-copy path: the last read, not yet parsed past _pos.
        self._data: bytes | None = None
        self._pos = 0
        # Carry-over of a partial frame; _need is the size that completes it.
        self._buf = bytearray()
        self._need = 4
        self._fresh = four_letter_words
        self._done = False
        self._error: FrameError | None = None

    def buffered(self) -> int:
        """Bytes received but not yet returned in a frame."""
        pending = len(self._data) - self._pos if self._data is not None else 0
        return pending + len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes read from the connection."""
        if self._done or not data:
            return
        if type(data) is not bytes:
            data = bytes(data)  # a mutable buffer could change under our slices
        if self._data is None and not self._buf:
            self._data = data
            self._pos = 0
            return
        if self._data is not None:
            self._buf += memoryview(self._data)[self._pos :]
            self._data = None
        self._buf += data

    def frames(self) -> list[bytes | memoryview | FourLetterWord]:
        """Every complete payload received so far, in order.

        Raises:
            FrameError: a length < 0 or > ``max_len`` ("Len error <n>"), raised
                once the frames before it have been returned.
        """
        if self._error is not None:
            raise self._error
        if self._done:
            return []
        data = self._data
        if data is None:
            if len(self._buf) < self._need:
                return []
            data = bytes(self._buf)
            self._buf.clear()
            pos = 0
        else:
            pos = self._pos
            self._data = None
        out: list[bytes | memoryview | FourLetterWord] = []
        end = len(data)
        if self._fresh and end - pos >= 4:
            self._fresh = False
            word = _FLW_BY_INT.get(_unpack_int(data, pos)[0])
            if word is not None:
                if word == "stmk":
                    if end - pos < 12:
                        self._fresh = True  # wait for the mask
                        self._keep(data, pos, 12)
                        return out
                    out.append(FourLetterWord(word, _LONG.unpack_from(data, pos + 4)[0]))
                else:
                    out.append(FourLetterWord(word))
                self._done = True
                return out
        mv = memoryview(data)
        max_len = self.max_len
        while end - pos >= 4:
            n = _unpack_int(data, pos)[0]
            if n < 0 or n > max_len:
                self._error = FrameError(f"Len error {n}")
                if out:
                    # ZooKeeper serves the packets before the bad length; so do we.
                    return out
                raise self._error
            e = pos + 4 + n
            if e > end:
                self._keep(data, pos, 4 + n)
                return out
            out.append(mv[pos + 4 : e])
            pos = e
        self._keep(data, pos, 4)
        return out

    def _keep(self, data: bytes, pos: int, need: int) -> None:
        """Carry ``data[pos:]`` over; ``need`` bytes complete the next frame."""
        if pos < len(data):
            self._buf += memoryview(data)[pos:]
        self._need = need
