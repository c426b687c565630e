"""``python -m trio_quorum.bench``: run the scenarios against each target, write the report.

For each target, for each group of selected scenarios: write a fresh ``zoo.cfg`` in
a temporary directory, start the server, wait for ``srvr``, run the group's set-up
and scenarios in order, stop the server by PID.  A target that cannot start is
recorded as unavailable with the reason (its log tail), never given numbers.
A scenario that fails is recorded as failed with the error, and the run goes on.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, replace
from itertools import groupby
from pathlib import Path
from typing import Any

from . import report
from .client import SyncClient
from .scenarios import GROUP_SETUP, RUNNERS, SCENARIOS, Scenario, Settings, quick, select
from .servers import TARGETS, ServerFailed, ServerProcess, Target, free_port, write_zoo_cfg

__all__ = ["main", "machine_facts", "run"]

SCHEMA_VERSION = 1
REPO = Path(__file__).resolve().parents[2]


def _cmd_output(cmd: list[str]) -> str | None:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (p.stdout + p.stderr).strip() or None


def machine_facts() -> dict[str, Any]:
    """CPU, cores, kernel, Python and Java versions, date, git commit."""
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    java = _cmd_output(["java", "-version"])
    commit = _cmd_output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    return {
        "cpu_model": cpu,
        "cpu_cores": os.cpu_count(),
        "memory_bytes": mem,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "java": java.splitlines()[0] if java else None,
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git_commit": commit,
        "load_average_at_start": os.getloadavg(),
    }


def basic_probe(server: ServerProcess) -> None:
    """Can a session create, read, overwrite and delete a znode?  Raises if not.

    A target that starts but fails this is recorded as unavailable rather than
    benchmarked: numbers from a server that cannot do the basics mean nothing.
    """
    c = SyncClient(server.host, server.port, timeout_ms=10000, io_timeout=5.0)
    try:
        path = f"/bench-probe-{c.session_id:x}"
        c.create(path, b"probe")
        if c.get_data(path) != b"probe":
            raise RuntimeError("getData did not return what create stored")
        c.set_data(path, b"probe2")
        if c.get_data(path) != b"probe2":
            raise RuntimeError("getData did not return what setData stored")
        c.delete(path)
        if c.exists(path):
            raise RuntimeError("a deleted znode still exists")
    finally:
        c.close()


def _run_group(
    target: Target,
    group: str,
    scenarios: list[Scenario],
    settings: Settings,
    workdir: Path,
    log: Any,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any] | None, str | None]:
    """Start one server for ``group``, run its scenarios; returns (results, srvr, failure)."""
    gdir = workdir / target.name / group
    gdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cfg = write_zoo_cfg(gdir, port, tick_time=settings.tick_time)
    server = ServerProcess(target, cfg, port)
    results: dict[str, dict[str, Any]] = {}
    try:
        t0 = time.monotonic()
        server.start()
        try:
            srvr = server.wait_ready(timeout=settings.ready_timeout)
        except ServerFailed as exc:
            return results, None, str(exc)
        log(
            f"  [{target.name}] {group}: server pid {server.pid} ready in {time.monotonic() - t0:.2f} s"
        )
        try:
            basic_probe(server)
        except Exception as exc:
            return (
                results,
                None,
                f"{target.name} started but failed the basic probe: {type(exc).__name__}: {exc}",
            )
        setup = GROUP_SETUP.get(group)
        try:
            if setup is not None:
                setup(server, settings)
        except Exception as exc:
            log(traceback.format_exc())
            return results, srvr, f"set-up of {group} failed: {type(exc).__name__}: {exc}"
        for sc in scenarios:
            t1 = time.monotonic()
            try:
                data = RUNNERS[sc.kind](server, sc, settings)
                results[sc.id] = {"status": "ok", **data}
                log(
                    f"  [{target.name}] {sc.id}: {report.one_line(sc, data)} ({time.monotonic() - t1:.1f} s)"
                )
            except Exception as exc:
                results[sc.id] = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
                log(f"  [{target.name}] {sc.id}: FAILED {exc}\n{traceback.format_exc()}")
                if server.proc is not None and server.proc.poll() is not None:
                    return results, srvr, f"{target.name} died during {sc.id}: {exc}"
        return results, srvr, None
    finally:
        server.stop()


def run(
    targets: list[Target],
    scenarios: list[Scenario],
    settings: Settings,
    workdir: Path,
    log: Any = print,
) -> dict[str, Any]:
    """Run everything; return the JSON document (see docs/benchmarks.md for its shape)."""
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "machine": machine_facts(),
        "settings": asdict(settings),
        "targets": {},
        "figures": [
            {
                "id": sc.id,
                "kind": sc.kind,
                "title": sc.title,
                "topology": sc.topology,
                "params": sc.params,
                "results": {},
            }
            for sc in scenarios
        ],
    }
    figures = {f["id"]: f for f in doc["figures"]}
    for target in targets:
        info: dict[str, Any] = {
            "title": target.title,
            "status": "ok",
            "reason": None,
            "version": None,
        }
        doc["targets"][target.name] = info
        reason = target.unavailable_reason()
        if reason is None:
            for group, items in groupby(scenarios, key=lambda s: s.group):
                group_scenarios = list(items)
                log(f"[{target.name}] group {group}: {', '.join(s.id for s in group_scenarios)}")
                results, srvr, failure = _run_group(
                    target, group, group_scenarios, settings, workdir, log
                )
                if srvr and info["version"] is None:
                    info["version"] = srvr.get("Zookeeper version")
                for sc_id, res in results.items():
                    figures[sc_id]["results"][target.name] = res
                if failure is not None:
                    log(f"[{target.name}] unavailable: {failure}")
                    if not any(
                        r.get("status") == "ok"
                        for f in figures.values()
                        for n, r in f["results"].items()
                        if n == target.name
                    ):
                        reason = failure
                        break
                    for sc in group_scenarios:
                        figures[sc.id]["results"].setdefault(
                            target.name, {"status": "failed", "reason": failure}
                        )
        if reason is not None:
            info["status"] = "unavailable"
            info["reason"] = reason
            for f in doc["figures"]:
                f["results"][target.name] = {"status": "unavailable", "reason": reason}
    doc["machine"]["load_average_at_end"] = os.getloadavg()
    doc["finished_utc"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return doc


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new`` with the figures of ``old`` it did not measure, in scenario order.

    A figure measured in both takes ``new``'s results per target; every figure keeps
    its own ``measured`` stamp (command, date, commit), so a reader can tell runs apart.
    """
    order = {sc.id: i for i, sc in enumerate(SCENARIOS)}
    figures = {f["id"]: f for f in old.get("figures", [])}
    for f in new["figures"]:
        prev = figures.get(f["id"])
        if prev is not None and prev.get("measured") != f.get("measured"):
            kept = {t: r for t, r in prev["results"].items() if t not in f["results"]}
            f = dict(f, results={**kept, **f["results"]})
        figures[f["id"]] = f
    # The top level (machine, settings, command) stays with the run that measured more.
    out = dict(new if len(new["figures"]) >= len(old.get("figures", [])) else old)
    out["figures"] = sorted(figures.values(), key=lambda f: order.get(f["id"], len(order)))
    targets = dict(old.get("targets", {}))
    targets.update(new.get("targets", {}))
    out["targets"] = targets
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m trio_quorum.bench",
        description="Benchmark trio-quorum side by side with Apache ZooKeeper 3.8 on 127.0.0.1.",
    )
    p.add_argument(
        "--quick", action="store_true", help="seconds per scenario and small znode counts"
    )
    p.add_argument(
        "--big", action="store_true", help="also the 1M-znode memory/restart figure (slow)"
    )
    p.add_argument(
        "--targets", default="zookeeper,trio-quorum", help=f"comma list of {','.join(TARGETS)}"
    )
    p.add_argument(
        "--only", default="", help="comma list of scenario id prefixes (e.g. throughput.get,expiry)"
    )
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--warmup", type=float, help="seconds of warm-up before each throughput window")
    p.add_argument("--duration", type=float, help="seconds of each throughput window")
    p.add_argument("--workers", type=int, help="load generator processes")
    p.add_argument(
        "--repeat", type=int, help="run each throughput scenario N times, report the median run"
    )
    p.add_argument(
        "--memory-znodes", type=int, help="znodes for the memory/restart figure (default 100k)"
    )
    p.add_argument("--tick-time", type=int, help="zoo.cfg tickTime in ms (default 2000)")
    p.add_argument("--expiry-timeout-ms", type=int, help="session timeout of the expiry probe")
    p.add_argument("--expiry-trials", type=int, help="concurrent expiry trials")
    p.add_argument(
        "--json",
        type=Path,
        help="where to write the JSON (default docs/benchmarks.json; build/bench/quick.json with --quick)",
    )
    p.add_argument(
        "--markdown",
        type=Path,
        help="where to write the Markdown (default docs/benchmarks.md; build/bench/quick.md with --quick)",
    )
    p.add_argument("--no-markdown", action="store_true", help="write the JSON only")
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep the other figures already in --json (e.g. add --big --only memory.1m to a full run)",
    )
    p.add_argument(
        "--workdir", type=Path, help="keep server dirs and logs here (default: a temp dir, removed)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.list:
        for sc in SCENARIOS:
            print(f"{sc.id:28} {sc.kind:11} {sc.title}{'  (--big)' if sc.needs_big else ''}")
        return 0
    # A quick run must not overwrite the committed full results by accident.
    out_dir, stem = (
        (REPO / "build" / "bench", "quick") if args.quick else (REPO / "docs", "benchmarks")
    )
    if args.json is None:
        args.json = out_dir / f"{stem}.json"
    if args.markdown is None:
        args.markdown = out_dir / f"{stem}.md"
    settings = Settings(big=args.big)
    if args.tick_time:
        settings = replace(settings, tick_time=args.tick_time, expiry_timeout_ms=3 * args.tick_time)
    if args.quick:
        settings = quick(settings)
    overrides = {
        "warmup": args.warmup,
        "duration": args.duration,
        "workers": args.workers,
        "repeat": args.repeat,
        "memory_znodes": args.memory_znodes,
        "expiry_timeout_ms": args.expiry_timeout_ms,
        "expiry_trials": args.expiry_trials,
    }
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        print(
            f"unknown target(s): {', '.join(unknown)}; known: {', '.join(TARGETS)}", file=sys.stderr
        )
        return 2
    scenarios = select([o.strip() for o in args.only.split(",") if o.strip()], big=args.big)
    if not scenarios:
        print("no scenario selected (see --list)", file=sys.stderr)
        return 2

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    tmp = None
    if args.workdir is None:
        tmp = tempfile.mkdtemp(prefix="trio-quorum-bench-")
        workdir = Path(tmp)
    else:
        workdir = args.workdir
        workdir.mkdir(parents=True, exist_ok=True)
    try:
        doc = run([TARGETS[n] for n in names], scenarios, settings, workdir, log)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    doc["command"] = " ".join(
        ["python -m trio_quorum.bench", *(argv if argv is not None else sys.argv[1:])]
    )
    doc["mode"] = "quick" if args.quick else "full"
    stamp = {
        "command": doc["command"],
        "mode": doc["mode"],
        "date_utc": doc["machine"]["date_utc"],
        "git_commit": doc["machine"]["git_commit"],
        "settings": doc["settings"],
    }
    for fig in doc["figures"]:
        fig["measured"] = stamp
    if args.merge and args.json.exists():
        doc = merge(json.loads(args.json.read_text()), doc)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    log(f"wrote {args.json}")
    if not args.no_markdown:
        report.write_markdown(args.markdown, doc)
        log(f"wrote {args.markdown}")
    failed = [
        f"{f['id']}/{name}"
        for f in doc["figures"]
        for name, r in f["results"].items()
        if r.get("status") == "failed"
    ]
    if failed:
        log(f"failed figures: {', '.join(failed)}")
        return 1
    return 0
