"""Command-line tools over a data directory (ZooKeeper's TxnLogToolkit, SnapshotFormatter, PurgeTxnLog).

Each ``*_main(argv) -> int`` returns a process exit code and never raises
for bad input: a missing or corrupt file is one line on stderr and exit 1,
usage errors exit 2.  The ``trio-quorum`` CLI wires them in.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from typing import TextIO

from ..protocol.consts import OpCode
from ..protocol.txn import TxnHeader, TxnRecord
from .api import CorruptStorage
from .files import list_logs, scan_log_file, version_dir
from .purge import purge
from .snapshot import decode_snapshot

__all__ = ["log_dump_main", "snapshot_dump_main", "purge_main", "format_txn"]


def _op_name(t: int) -> str:
    try:
        return OpCode(t).name
    except ValueError:
        return f"unknown({t})"


def _time(ms: int) -> str:
    try:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
    except (OverflowError, OSError, ValueError):
        return str(ms)


def format_txn(hdr: TxnHeader, rec: TxnRecord) -> str:
    """One TxnLogToolkit-style line: time, session, cxid, zxid, type, record."""
    return (
        f"{_time(hdr.time)} session 0x{hdr.client_id & 0xFFFFFFFFFFFFFFFF:x} cxid 0x{hdr.cxid & 0xFFFFFFFF:x} "
        f"zxid 0x{hdr.zxid:x} {_op_name(hdr.type)} {rec!r}"
    )


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, description=description, exit_on_error=False)


def _parse(p: argparse.ArgumentParser, argv: list[str], err: TextIO) -> argparse.Namespace | None:
    try:
        return p.parse_args(argv)
    except (argparse.ArgumentError, SystemExit) as exc:
        if isinstance(exc, argparse.ArgumentError):
            err.write(f"{p.prog}: {exc}\n")
        return None


def log_dump_main(argv: list[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``log-dump FILE|DIR``: print every txn of one log file (or all ``log.*`` of a dataLogDir)."""
    out, err = out or sys.stdout, err or sys.stderr
    p = _parser("log-dump", "Dump ZooKeeper txn log entries.")
    p.add_argument("path", help="a log.<zxid> file, or a dataLogDir (or its version-2 directory)")
    args = _parse(p, argv, err)
    if args is None:
        return 2
    path: str = args.path
    if os.path.isdir(path):
        d = path if os.path.basename(path.rstrip("/")) == "version-2" else version_dir(path)
        files = [f for _, f in list_logs(d)]
        if not files:
            err.write(f"log-dump: no log files in {d}\n")
            return 1
    else:
        files = [path]
    total = 0
    try:
        for f in files:
            scan = scan_log_file(f)
            out.write(f"ZooKeeper Transactional Log File {f} with dbid {scan.dbid} txnlog format version 2\n")
            for e in scan.entries:
                out.write(format_txn(e.hdr, e.rec) + "\n")
            total += len(scan.entries)
            if scan.torn:
                out.write(f"torn entry at offset {scan.end}: {scan.torn}\n")
    except (OSError, CorruptStorage) as exc:
        err.write(f"log-dump: {exc}\n")
        return 1
    out.write(f"EOF reached after {total} txns.\n")
    return 0


def snapshot_dump_main(argv: list[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``snapshot-dump [-d] FILE``: print a snapshot's znodes and sessions (SnapshotFormatter)."""
    out, err = out or sys.stdout, err or sys.stderr
    p = _parser("snapshot-dump", "Dump a ZooKeeper snapshot.")
    p.add_argument("-d", "--data", action="store_true", help="print znode data too")
    p.add_argument("path")
    args = _parse(p, argv, err)
    if args is None:
        return 2
    try:
        with open(args.path, "rb") as f:
            snap = decode_snapshot(f.read(), args.path)
    except (OSError, CorruptStorage) as exc:
        err.write(f"snapshot-dump: {exc}\n")
        return 1
    w = out.write
    w(f"ZNode Details (count={len(snap.nodes)}):\n")
    for path, n in snap.nodes:
        w("----\n")
        w(f"{path or '/'}\n")
        w(f"  cZxid = 0x{n.czxid:x}\n  ctime = {_time(n.ctime)}\n  mZxid = 0x{n.mzxid:x}\n")
        w(f"  mtime = {_time(n.mtime)}\n  pZxid = 0x{n.pzxid:x}\n  cversion = {n.cversion}\n")
        w(f"  dataVersion = {n.version}\n  aclVersion = {n.aversion}\n")
        w(f"  ephemeralOwner = 0x{n.ephemeral_owner & 0xFFFFFFFFFFFFFFFF:x}\n  dataLength = {len(n.data)}\n")
        if args.data:
            w(f"  data = {n.data!r}\n")
    w("----\n")
    w(f"Session Details (sid, timeout) (count={len(snap.sessions)}):\n")
    for sid, timeout in snap.sessions.items():
        w(f"0x{sid & 0xFFFFFFFFFFFFFFFF:x}, {timeout}\n")
    w(f"ACLs (count={len(snap.acls)}):\n")
    for ref, acl in snap.acls:
        w(f"{ref}: " + ", ".join(f"{a.id.scheme}:{a.id.id}:{a.perms}" for a in acl) + "\n")
    if snap.digest is not None:
        w(f"Digest: zxid 0x{snap.digest.zxid:x}, version {snap.digest.version}, value {snap.digest.digest}\n")
    return 0


def purge_main(argv: list[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``purge DATADIR [DATALOGDIR] -n N``: keep the newest N (>= 3) snapshots and the logs they need."""
    out, err = out or sys.stdout, err or sys.stderr
    p = _parser("purge", "Remove old snapshots and txn logs.")
    p.add_argument("data_dir")
    p.add_argument("data_log_dir", nargs="?")
    p.add_argument("-n", "--count", type=int, default=3, help="snapshots to keep (>= 3)")
    args = _parse(p, argv, err)
    if args is None:
        return 2
    try:
        removed = purge(args.data_dir, args.data_log_dir, args.count)
    except ValueError as exc:
        err.write(f"purge: {exc}\n")
        return 2
    except OSError as exc:
        err.write(f"purge: {exc}\n")
        return 1
    for path in removed:
        out.write(f"Removing file: {path}\n")
    return 0
