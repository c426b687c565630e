"""Command-line tools over a data directory (ZooKeeper's TxnLogToolkit, SnapshotFormatter, PurgeTxnLog).

Each ``*_main(argv) -> int`` returns a process exit code and never raises
for bad input: a missing or corrupt file (or directory) is one line on
stderr naming the path, exit 1; usage errors exit 2; ``--help`` and
``--version`` exit 0.  A reader that goes away (``log-dump ... | head``) ends
the dump quietly with exit 0, as ``cat`` would, rather than a BrokenPipe
traceback.  The ``trio-quorum`` CLI wires them in as ``trio-quorum <tool>``.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from ..protocol.consts import OpCode
from ..protocol.txn import TxnHeader, TxnRecord
from .api import CorruptStorage
from .files import list_logs, list_snapshots, scan_log_file, version_dir
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


def _parser(name: str, description: str) -> argparse.ArgumentParser:
    from ..ops import version

    p = argparse.ArgumentParser(prog=f"trio-quorum {name}", description=description, exit_on_error=False)
    p.add_argument("--version", action="version", version=f"trio-quorum {version()}")
    return p


def _parse(p: argparse.ArgumentParser, argv: list[str], err: TextIO) -> argparse.Namespace | int:
    """The parsed options, or the exit code (0 after --help/--version, 2 for a usage error)."""
    try:
        return p.parse_args(argv)
    except argparse.ArgumentError as exc:
        err.write(f"{p.prog}: error: {exc}\n")
        return 2
    except SystemExit as exc:  # --help, --version (0) or a usage error argparse printed (2)
        return exc.code if isinstance(exc.code, int) else 2


def _quiet_broken_pipe(out: TextIO) -> int:
    """The reader closed the pipe (``| head``): stop writing, exit 0 without a traceback.

    Python would try to flush stdout again at exit and print an error: point
    the file descriptor at /dev/null first (the data is not wanted anyway).
    """
    if out is sys.stdout:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass
    return 0


def log_dump_main(argv: list[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``log-dump FILE|DIR``: print every txn of one log file (or all ``log.*`` of a dataLogDir)."""
    out, err = out or sys.stdout, err or sys.stderr
    p = _parser("log-dump", "Print every transaction of a ZooKeeper txn log file, or of all the log.* "
                "files of a dataLogDir, one line each.")
    p.add_argument("path", help="a log.<zxid> file, or a dataLogDir (or its version-2 directory)")
    args = _parse(p, argv, err)
    if isinstance(args, int):
        return args
    path: str = args.path
    if not os.path.exists(path):
        err.write(f"log-dump: {path}: no such file or directory\n")
        return 1
    if os.path.isdir(path):
        d = path if os.path.basename(path.rstrip("/")) == "version-2" else version_dir(path)
        files = [f for _, f in list_logs(d)]
        if not files:
            err.write(f"log-dump: no log files in {d}\n")
            return 1
    else:
        files = [path]
    try:
        return _dump_logs(files, out)
    except BrokenPipeError:
        return _quiet_broken_pipe(out)
    except (OSError, CorruptStorage) as exc:
        err.write(f"log-dump: {exc}\n")
        return 1


def _dump_logs(files: list[str], out: TextIO) -> int:
    total = 0
    for f in files:
        scan = scan_log_file(f)
        out.write(f"ZooKeeper Transactional Log File {f} with dbid {scan.dbid} txnlog format version 2\n")
        for e in scan.entries:
            out.write(format_txn(e.hdr, e.rec) + "\n")
        total += len(scan.entries)
        if scan.torn:
            out.write(f"torn entry at offset {scan.end}: {scan.torn}\n")
    out.write(f"EOF reached after {total} txns.\n")
    out.flush()
    return 0


def snapshot_dump_main(argv: list[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``snapshot-dump [-d] FILE|DIR``: print a snapshot's znodes and sessions (SnapshotFormatter);
    for a dataDir (or its version-2 directory), its newest snapshot."""
    out, err = out or sys.stdout, err or sys.stderr
    p = _parser("snapshot-dump", "Print the znodes, sessions and ACLs of a ZooKeeper snapshot file, "
                "or of the newest snapshot of a dataDir.")
    p.add_argument("-d", "--data", action="store_true", help="print znode data too")
    p.add_argument("path", help="a snapshot.<zxid> file, or a dataDir (or its version-2 directory)")
    args = _parse(p, argv, err)
    if isinstance(args, int):
        return args
    path: str = args.path
    if not os.path.exists(path):
        err.write(f"snapshot-dump: {path}: no such file or directory\n")
        return 1
    if os.path.isdir(path):
        d = path if os.path.basename(path.rstrip("/")) == "version-2" else version_dir(path)
        snaps = list_snapshots(d)
        if not snaps:
            err.write(f"snapshot-dump: no snapshot files in {d}\n")
            return 1
        path = snaps[-1][1]
    try:
        with open(path, "rb") as f:
            snap = decode_snapshot(f.read(), path)
    except (OSError, CorruptStorage) as exc:
        err.write(f"snapshot-dump: {exc}\n")
        return 1
    try:
        _dump_snapshot(snap, args.data, out)
    except BrokenPipeError:
        return _quiet_broken_pipe(out)
    return 0


def _dump_snapshot(snap: Any, with_data: bool, out: TextIO) -> None:
    w = out.write
    w(f"ZNode Details (count={len(snap.nodes)}):\n")
    for path, n in snap.nodes:
        w("----\n")
        w(f"{path or '/'}\n")
        w(f"  cZxid = 0x{n.czxid:x}\n  ctime = {_time(n.ctime)}\n  mZxid = 0x{n.mzxid:x}\n")
        w(f"  mtime = {_time(n.mtime)}\n  pZxid = 0x{n.pzxid:x}\n  cversion = {n.cversion}\n")
        w(f"  dataVersion = {n.version}\n  aclVersion = {n.aversion}\n")
        w(f"  ephemeralOwner = 0x{n.ephemeral_owner & 0xFFFFFFFFFFFFFFFF:x}\n  dataLength = {len(n.data)}\n")
        if with_data:
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
    out.flush()


def purge_main(argv: list[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``purge DATADIR [DATALOGDIR] -n N``: keep the newest N (>= 3) snapshots and the logs they need."""
    out, err = out or sys.stdout, err or sys.stderr
    p = _parser("purge", "Remove old snapshots and txn logs: keep the newest N snapshots and the "
                "txn logs needed to replay from the oldest kept one (as ZooKeeper's PurgeTxnLog). "
                "Safe while the server runs.")
    p.add_argument("data_dir", help="the dataDir (as in zoo.cfg)")
    p.add_argument("data_log_dir", nargs="?", help="the dataLogDir, when it differs from dataDir")
    p.add_argument("-n", "--count", type=int, default=3, help="snapshots to keep (>= 3, default 3)")
    args = _parse(p, argv, err)
    if isinstance(args, int):
        return args
    for d in filter(None, (args.data_dir, args.data_log_dir)):
        if not os.path.isdir(d):
            what = "is not a directory" if os.path.exists(d) else "no such directory"
            err.write(f"purge: {d}: {what}; give the dataDir (and dataLogDir) of zoo.cfg\n")
            return 1
        if not os.path.isdir(version_dir(d)):
            err.write(f"purge: {d}: no version-2 directory: not a ZooKeeper data directory\n")
            return 1
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
