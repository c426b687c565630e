"""Transaction log format of Apache ZooKeeper 3.8 (``FileTxnLog``), sans-IO.

On-disk grammar of one file ``dataLogDir/version-2/log.<hex zxid of its first txn>``::

    file   := FileHeader entry* padding
    FileHeader := int magic "ZKLG" (0x5A4B4C47) | int version 2 | long dbid
    entry  := long checksum | int len | byte[len] payload | byte 0x42 ('B')
    payload:= TxnHeader record [TxnDigest]
    padding:= zero bytes (the file is grown in preAllocSize blocks)

``checksum`` is the Adler32 of ``payload`` (``zlib.adler32``, the same
function as ``java.util.zip.Adler32``).

Invariants of this module:

* It does no IO: bytes in, entries and verdicts out.  Files are handed to
  :func:`scan_log` as a bytes-like object (an ``mmap`` in practice, so the
  sparse preallocated tail is never copied).
* A scan never trusts a length: every entry is bounds-checked against the data
  before it is used, and a record that fails decoding is reported, not raised
  from deep inside.
* Where the valid log ends is decided here, once, for every caller
  (:class:`LogScan`): a zero entry header, a short entry, or a bad entry that
  is followed by nothing valid is the *end* (a torn last write); a bad entry
  followed by a valid one is *corruption in the middle* and raises
  :class:`CorruptStorage` naming the file and offset.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..protocol.jute import JuteError
from ..protocol.txn import TxnDigest, TxnHeader, TxnRecord, decode_txn, encode_txn
from .api import CorruptStorage

__sans_io__ = True

__all__ = [
    "TXNLOG_MAGIC",
    "VERSION",
    "LOG_PREFIX",
    "ENTRY_OVERHEAD",
    "DEFAULT_PRE_ALLOC_SIZE",
    "FILE_HEADER_SIZE",
    "iter_entries",
    "LogEntry",
    "LogScan",
    "encode_entry",
    "entry_head",
    "append_entry",
    "encode_file_header",
    "scan_log",
    "has_nonzero",
    "log_name",
    "zxid_from_name",
    "padded_size",
]

TXNLOG_MAGIC = 0x5A4B4C47  # "ZKLG"
VERSION = 2
LOG_PREFIX = "log"
#: 64 MB, ZooKeeper's ``zookeeper.preAllocSize`` default (65536 KB).
DEFAULT_PRE_ALLOC_SIZE = 64 * 1024 * 1024
#: checksum + length + end-of-record byte around each payload.
ENTRY_OVERHEAD = 13
_EOR = 0x42

_FILE_HEADER = struct.Struct(">iiq")
_ENTRY_HEAD = struct.Struct(">qi")
_pack_entry_head = _ENTRY_HEAD.pack
_adler32 = zlib.adler32
_NONZERO = re.compile(rb"[^\x00]")


def encode_file_header(dbid: int = 0) -> bytes:
    return _FILE_HEADER.pack(TXNLOG_MAGIC, VERSION, dbid)


FILE_HEADER_SIZE = _FILE_HEADER.size


def encode_entry(hdr: TxnHeader, rec: TxnRecord, digest: TxnDigest | None = None) -> bytes:
    """One complete log entry (checksum, length, payload, 'B')."""
    payload = encode_txn(hdr, rec, digest)
    return b"".join((_pack_entry_head(_adler32(payload), len(payload)), payload, b"B"))


def entry_head(payload: bytes) -> bytes:
    """The 12 bytes before an entry's payload (checksum, length); ``b"B"`` follows it.

    ``entry_head(p) + p + b"B"`` is :func:`encode_entry`'s result for the
    payload ``p = encode_txn(...)``: writers that append to a buffer use it to
    skip building the joined entry.
    """
    return _pack_entry_head(_adler32(payload), len(payload))


def append_entry(
    buf: bytearray, hdr: TxnHeader, rec: TxnRecord, digest: TxnDigest | None = None
) -> None:
    """Append one complete log entry to ``buf``: ``buf += encode_entry(hdr, rec, digest)``.

    What a writer that batches entries in a buffer does per txn, in one call
    (no joined entry, no separate :func:`entry_head` call).
    """
    payload = encode_txn(hdr, rec, digest)
    buf += _pack_entry_head(_adler32(payload), len(payload))
    buf += payload
    buf += b"B"


def log_name(zxid: int) -> str:
    """``Util.makeLogName``: lowercase hex, no padding."""
    return f"{LOG_PREFIX}.{zxid:x}"


def zxid_from_name(name: str, prefix: str) -> int:
    """``Util.getZxidFromName``: the hex zxid of ``prefix.<hex>[.ext]``, or -1."""
    parts = name.split(".")
    if len(parts) >= 2 and parts[0] == prefix:
        try:
            return int(parts[1], 16)
        except ValueError:
            return -1
    return -1


def padded_size(position: int, file_size: int, pre_alloc_size: int) -> int:
    """``FilePadding.calculateFileSizeWithPadding``: grow when within 4 KB of the end."""
    if pre_alloc_size > 0 and position + 4096 >= file_size:
        if position > file_size:
            file_size = position + pre_alloc_size
            file_size -= file_size % pre_alloc_size
        else:
            file_size += pre_alloc_size
    return file_size


@dataclass(frozen=True, slots=True)
class LogEntry:
    offset: int
    hdr: TxnHeader
    rec: TxnRecord
    digest: TxnDigest | None
    #: payload bytes (for tools that print or forward them unchanged)
    size: int


@dataclass(slots=True)
class LogScan:
    """What one log file holds.

    ``end`` is the offset just past the last valid entry; ``torn`` is a short
    description of what follows it when that is not clean zero padding (a torn
    last write), else ``None``.
    """

    name: str
    dbid: int
    entries: list[LogEntry] = field(default_factory=list)
    end: int = FILE_HEADER_SIZE
    torn: str | None = None


def _entry_at(data: bytes | memoryview, pos: int, end: int) -> tuple[int, str | None]:
    """Check the entry at ``pos``: (payload length, None) if whole and its checksum
    matches, else (-1, why)."""
    if pos + 12 > end:
        return -1, "short entry header"
    crc, n = _ENTRY_HEAD.unpack_from(data, pos)
    if n == 0 and crc == 0:
        return -1, "zero entry"
    if n <= 0:
        return -1, f"bad length {n}"
    stop = pos + 12 + n
    if stop + 1 > end:
        return -1, f"entry of {n} bytes runs past the end of the data"
    if zlib.adler32(data[pos + 12 : stop]) != crc:
        return -1, "checksum mismatch"
    if data[stop] != _EOR:
        return -1, "missing end-of-record byte"
    return n, None


def _valid_entry_after(data: bytes | memoryview, pos: int, end: int) -> int:
    """Offset of the first whole, checksummed entry after ``pos``, or -1.

    Only called on the error path; it is bounded by the non-zero data left.
    """
    last = end
    # the zero tail cannot hold an entry: search only up to the last non-zero byte
    while last > pos:
        start = max(pos, last - 65536)
        chunk = bytes(data[start:last]).rstrip(b"\x00")
        if chunk:
            last = start + len(chunk)
            break
        last = start
    for y in range(pos + 1, last - 12):
        # cheap pre-filter: the end-of-record byte must be where the length says
        n = _ENTRY_HEAD.unpack_from(data, y)[1]
        if n <= 0 or y + 12 + n >= last or data[y + 12 + n] != _EOR:
            continue
        if _entry_at(data, y, end)[1] is None:
            return y
    return -1


def has_nonzero(data: bytes | memoryview, pos: int) -> bool:
    """True when any byte at or after ``pos`` is not zero."""
    return _NONZERO.search(data, pos) is not None


def scan_log(
    data: bytes | memoryview,
    name: str,
    *,
    max_entry: int | None = None,
    nonzero_after: Callable[[int], bool] | None = None,
) -> LogScan:
    """Decode every valid entry of one log file.

    Args:
        data: the file's bytes (an ``mmap`` or ``bytes``).
        name: the file name, used in error messages.
        max_entry: refuse payloads larger than this (default: the data size).
        nonzero_after: answers "is there a non-zero byte at or after this
            offset?"; the IO layer passes one that skips sparse holes.

    Returns:
        a :class:`LogScan`.

    Raises:
        CorruptStorage: bad file header, an entry that does not decode, or a bad
            entry followed by valid data (corruption in the middle of the log).
    """
    end = len(data)
    if end < FILE_HEADER_SIZE:
        # a crash between creating the file and writing its header
        return LogScan(name, 0, [], 0, "short file header" if end else None)
    magic, version, dbid = _FILE_HEADER.unpack_from(data, 0)
    if magic == 0 and version == 0 and dbid == 0:
        # Zeros where the header belongs: a crash between creating (and
        # preallocating) the file and writing its header, as older writers
        # did it in that order.  Nothing was ever logged here if nothing else
        # is written either; anything non-zero is corruption.
        rest = nonzero_after(0) if nonzero_after is not None else has_nonzero(data, 0)
        if not rest:
            return LogScan(name, 0, [], 0, "no file header (all zeros)")
    if magic != TXNLOG_MAGIC or version != VERSION:
        raise CorruptStorage(f"{name}: not a ZooKeeper txn log (magic {magic:#x}, version {version})")
    scan = LogScan(name, dbid)
    entries = scan.entries
    limit = end if max_entry is None else max_entry
    pos = FILE_HEADER_SIZE
    while True:
        n, why = _entry_at(data, pos, end)
        if why is not None:
            break
        if n > limit:
            raise CorruptStorage(f"{name}: entry of {n} bytes at offset {pos} exceeds the limit of {limit}")
        try:
            hdr, rec, digest = decode_txn(data[pos + 12 : pos + 12 + n])
        except JuteError as exc:
            raise CorruptStorage(f"{name}: undecodable txn at offset {pos}: {exc}") from exc
        entries.append(LogEntry(pos, hdr, rec, digest, n))
        pos += 12 + n + 1
    scan.end = pos
    if pos >= end or not (nonzero_after(pos) if nonzero_after else has_nonzero(data, pos)):
        return scan  # clean end: nothing but (preallocated) zeros follows
    nxt = _valid_entry_after(data, pos, end)
    if nxt >= 0:
        raise CorruptStorage(f"{name}: corrupt entry at offset {pos} ({why}); a valid entry follows at offset {nxt}")
    scan.torn = why
    return scan


def iter_entries(scans: list[LogScan], from_zxid: int) -> Iterator[LogEntry]:
    """Entries with ``zxid >= from_zxid`` from scans given in file order."""
    for scan in scans:
        for e in scan.entries:
            if e.hdr.zxid >= from_zxid:
                yield e
