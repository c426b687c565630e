"""``python -m trio_quorum.bench``: run the scenarios against each target, write the report.

The run is a list of steps (:func:`schedule`); a step starts one fresh server for one
target and one group of scenarios: write a fresh ``zoo.cfg`` in a temporary
directory, start the server, wait for ``srvr``, run the group's set-up and scenarios
in order, stop the server by PID.

Throughput groups run in ``Settings.rounds`` rounds; within a round the targets take
turns on the same group, and who goes first alternates from round to round
(ZooKeeper, trio-quorum; trio-quorum, ZooKeeper; ...), so slow minutes of a noisy
machine hit both targets alike.  Each figure reports, per target, the round with the
median throughput (:func:`median_round`), and the ratio of every round's pair
(:func:`round_ratios`).  The other groups (memory, expiry) are slow and run once per
target, after the rounds.

A target that cannot start is recorded as unavailable with the reason (its log
tail), never given numbers.  A scenario that fails is recorded as failed with the
error, and the run goes on.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from itertools import groupby
from pathlib import Path
from typing import Any

from . import report
from .client import SyncClient
from .ensemble import Ensemble
from .scenarios import GROUP_SETUP, RUNNERS, SCENARIOS, Scenario, Settings, quick, select
from .servers import TARGETS, ServerFailed, ServerProcess, Target, free_port, write_zoo_cfg

__all__ = ["main", "machine_facts", "run", "schedule", "Step", "median_round", "round_ratios"]

SCHEMA_VERSION = 1
#: Scenario kinds whose groups run in rounds; the others run once per target.
ROUND_KINDS = frozenset({"throughput"})
#: The ratio of a round is ``OTHER``'s throughput over ``BASE``'s.
BASE, OTHER = report.BASE, report.OTHER
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
    subdir: str | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any] | None, str | None]:
    """Start one server for ``group``, run its scenarios; returns (results, srvr, failure).

    The server's directory is ``workdir/<target>/<subdir or group>``.  A group of
    ``ensembleN`` scenarios runs on N peers instead (:func:`_run_ensemble_group`).
    """
    if scenarios and scenarios[0].peers > 1:
        return _run_ensemble_group(target, group, scenarios, settings, workdir, log, subdir)
    gdir = workdir / target.name / (subdir or group)
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


def _run_ensemble_group(
    target: Target,
    group: str,
    scenarios: list[Scenario],
    settings: Settings,
    workdir: Path,
    log: Any,
    subdir: str | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any] | None, str | None]:
    """:func:`_run_group` for an ensemble: start every peer, wait until one leads and all
    serve, probe, set up, run the scenarios; stop every peer.  Scenarios with
    ``params["start"] = False`` get the ensemble unstarted (they start their own)."""
    gdir = workdir / target.name / (subdir or group)
    gdir.mkdir(parents=True, exist_ok=True)
    ens = Ensemble(target, gdir, scenarios[0].peers, settings.tick_time)
    results: dict[str, dict[str, Any]] = {}
    srvr: dict[str, Any] | None = None
    start = scenarios[0].params.get("start", True)
    try:
        if start:
            t0 = time.monotonic()
            ens.start()
            try:
                leader = ens.wait_serving(settings.ready_timeout)
                srvr = ens.srvr(leader)
                c = ens.peers[leader]
                basic_probe(c)
            except Exception as exc:
                return results, None, f"{target.name} ensemble did not start: {exc}"
            log(
                f"  [{target.name}] {group}: {ens.size} peers serving in"
                f" {time.monotonic() - t0:.2f} s, leader {leader}"
            )
            setup = GROUP_SETUP.get(group)
            try:
                if setup is not None:
                    setup(ens, settings)
            except Exception as exc:
                log(traceback.format_exc())
                return results, srvr, f"set-up of {group} failed: {type(exc).__name__}: {exc}"
        for sc in scenarios:
            t1 = time.monotonic()
            try:
                data = RUNNERS[sc.kind](ens, sc, settings)  # type: ignore[arg-type]
                results[sc.id] = {"status": "ok", **data}
                log(
                    f"  [{target.name}] {sc.id}: {report.one_line(sc, data)} ({time.monotonic() - t1:.1f} s)"
                )
            except Exception as exc:
                results[sc.id] = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
                log(f"  [{target.name}] {sc.id}: FAILED {exc}\n{traceback.format_exc()}")
                if start and len(ens.running()) < ens.size:
                    return results, srvr, f"a peer of {target.name} died during {sc.id}: {exc}"
        return results, srvr, None
    finally:
        ens.stop()


@dataclass(frozen=True)
class Step:
    """One fresh server: ``target`` runs ``scenarios`` (one group) in round ``round``.

    ``round`` is 1-based for groups that run in rounds and None for the once-only ones.
    """

    round: int | None
    target: Target
    group: str
    scenarios: tuple[Scenario, ...]


def in_rounds(scenarios: Sequence[Scenario]) -> bool:
    """Does this group run in rounds (every scenario of it is a throughput one)?"""
    return all(sc.kind in ROUND_KINDS for sc in scenarios)


def schedule(targets: Sequence[Target], scenarios: Sequence[Scenario], rounds: int) -> list[Step]:
    """The order of the run.

    Round r runs each throughput group once per target, the targets in the given
    order in odd rounds and reversed in even ones (so the first of a round is the
    last of the previous round's: A B | B A | A B).  After the rounds, every other
    group once, target by target (A B), so a pair of figures is measured minutes, not
    a whole run, apart.
    """
    groups = [(g, tuple(items)) for g, items in groupby(scenarios, key=lambda s: s.group)]
    steps: list[Step] = []
    for r in range(1, max(1, rounds) + 1):
        order = list(targets) if r % 2 == 1 else list(targets)[::-1]
        for g, scs in groups:
            if in_rounds(scs):
                steps.extend(Step(r, t, g, scs) for t in order)
    for g, scs in groups:
        if not in_rounds(scs):
            steps.extend(Step(None, t, g, scs) for t in targets)
    return steps


def _throughput(res: dict[str, Any] | None) -> float | None:
    if not res or res.get("status") != "ok":
        return None
    v = res.get("throughput")
    return float(v) if isinstance(v, (int, float)) else None


def _p50(res: dict[str, Any] | None) -> float | None:
    if not res or res.get("status") != "ok":
        return None
    v = res.get("latency_ms", {}).get("all", {}).get("p50")
    return float(v) if isinstance(v, (int, float)) else None


def median_round(per_round: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One target's figure from its result in every round (in round order).

    The figure is the ok round with the median throughput (the lower median if an
    even number of rounds are ok), in the shape of a single run's result, plus:
    ``runs_throughput`` (every round's throughput, None for a failed round),
    ``median_round`` (1-based), ``latency_p50_ms_rounds`` and their median
    ``latency_p50_ms_median``, ``repeats_throughput`` (each round's ``--repeat``
    runs, only if there were several) and ``rounds_failed`` (only if any failed).
    No round ok: the last round's failure.
    """
    ok = [(i, r) for i, r in enumerate(per_round) if _throughput(r) is not None]
    if not ok:
        return dict(per_round[-1]) if per_round else {"status": "failed", "reason": "not run"}
    ranked = sorted(ok, key=lambda ir: _throughput(ir[1]) or 0.0)
    idx, pick = ranked[(len(ranked) - 1) // 2]
    out = dict(pick)
    out["runs_throughput"] = [_throughput(r) for r in per_round]
    out["median_round"] = idx + 1
    p50s = [_p50(r) for r in per_round]
    out["latency_p50_ms_rounds"] = p50s
    known = [v for v in p50s if v is not None]
    out["latency_p50_ms_median"] = statistics.median(known) if known else None
    repeats = [r.get("runs_throughput") if r.get("status") == "ok" else None for r in per_round]
    if any(isinstance(x, list) and len(x) > 1 for x in repeats):
        out["repeats_throughput"] = repeats
    else:
        out.pop("repeats_throughput", None)
    failed = [
        {"round": i + 1, "status": r.get("status"), "reason": r.get("reason")}
        for i, r in enumerate(per_round)
        if r.get("status") != "ok"
    ]
    if failed:
        out["rounds_failed"] = failed
    return out


def round_ratios(
    base: Sequence[dict[str, Any]], other: Sequence[dict[str, Any]]
) -> tuple[list[float | None], float | None]:
    """Per round, other's throughput over base's (None where either failed); their median."""
    ratios: list[float | None] = []
    for a, b in zip(base, other, strict=False):
        ta, tb = _throughput(a), _throughput(b)
        ratios.append(tb / ta if ta and tb is not None else None)
    known = [r for r in ratios if r is not None]
    return ratios, (statistics.median(known) if known else None)


def run(
    targets: list[Target],
    scenarios: list[Scenario],
    settings: Settings,
    workdir: Path,
    log: Any = print,
    run_group: Callable[..., tuple[dict[str, dict[str, Any]], dict[str, Any] | None, str | None]]
    | None = None,
) -> dict[str, Any]:
    """Run everything; return the JSON document (see docs/benchmarks.md for its shape).

    ``run_group`` (default :func:`_run_group`) is the step runner, replaceable in tests.
    """
    run_group = run_group or _run_group
    t_start = time.monotonic()
    rounds = max(1, settings.rounds)
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
    reasons: dict[str, str | None] = {}
    for target in targets:
        doc["targets"][target.name] = {
            "title": target.title,
            "status": "ok",
            "reason": None,
            "version": None,
        }
        reasons[target.name] = target.unavailable_reason()
    # (scenario id, target name) -> one result per round (or one, for once-only groups)
    collected: dict[tuple[str, str], list[dict[str, Any]]] = {}
    any_ok: set[str] = set()
    steps = schedule(targets, scenarios, rounds)
    for step in steps:
        name = step.target.name
        if reasons[name] is not None:
            continue
        info = doc["targets"][name]
        label = f"round {step.round}/{rounds} " if step.round is not None and rounds > 1 else ""
        log(f"[{name}] {label}group {step.group}: {', '.join(s.id for s in step.scenarios)}")
        subdir = f"{step.group}.round{step.round}" if label else None
        results, srvr, failure = run_group(
            step.target, step.group, list(step.scenarios), settings, workdir, log, subdir
        )
        if srvr and info["version"] is None:
            info["version"] = srvr.get("Zookeeper version")
        if any(r.get("status") == "ok" for r in results.values()):
            any_ok.add(name)
        if failure is not None:
            log(f"[{name}] {label}unavailable: {failure}")
            if name not in any_ok:
                reasons[name] = failure
                continue
            for sc in step.scenarios:
                results.setdefault(sc.id, {"status": "failed", "reason": failure})
        for sc in step.scenarios:
            per = collected.setdefault((sc.id, name), [])
            if step.round is not None:
                # a round this target missed (cannot happen today) must not shift the others
                per.extend(
                    {"status": "failed", "reason": "not run"}
                    for _ in range(step.round - 1 - len(per))
                )
            per.append(results.get(sc.id, {"status": "failed", "reason": "not run"}))
    for sc in scenarios:
        fig = figures[sc.id]
        per_target: dict[str, list[dict[str, Any]]] = {}
        for target in targets:
            name = target.name
            reason = reasons[name]
            if reason is not None:
                fig["results"][name] = {"status": "unavailable", "reason": reason}
                continue
            got = collected.get((sc.id, name))
            if not got:
                continue
            if in_rounds([sc]):
                per_target[name] = got
                fig["results"][name] = median_round(got)
            else:
                fig["results"][name] = got[0]
        headline = report.HEADLINE.get(sc.kind)
        if headline is not None:
            a = fig["results"].get(BASE, {}).get(headline)
            b = fig["results"].get(OTHER, {}).get(headline)
            if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a:
                fig["ratio_per_round"] = [b / a]
                fig["ratio_median"] = b / a
        if BASE in per_target and OTHER in per_target:
            ratios, med = round_ratios(per_target[BASE], per_target[OTHER])
            fig["ratio_per_round"] = ratios
            fig["ratio_median"] = med
            log(
                f"{sc.id}: {OTHER}/{BASE} per round "
                + ", ".join(f"{x:.2f}x" if x is not None else "–" for x in ratios)
                + (f"; median {med:.2f}x" if med is not None else "")
            )
    for name, reason in reasons.items():
        if reason is not None:
            doc["targets"][name]["status"] = "unavailable"
            doc["targets"][name]["reason"] = reason
    doc["machine"]["load_average_at_end"] = os.getloadavg()
    doc["finished_utc"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    doc["elapsed_s"] = round(time.monotonic() - t_start, 1)
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
    # The top level (machine, settings, command) stays with the run that measured
    # more of the default figures (a full run beats an added --big figure; a tie
    # goes to the newer run).
    big = {sc.id for sc in SCENARIOS if sc.needs_big}

    def main_figures(doc: dict[str, Any]) -> int:
        return sum(1 for f in doc.get("figures", []) if f["id"] not in big)

    out = dict(new if main_figures(new) >= main_figures(old) else old)
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
        "--rounds",
        type=int,
        help="run the throughput groups in N rounds on fresh servers, targets alternating"
        " who goes first; report each target's median round (default 3; 1 with --quick)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        help="within a round, run each throughput scenario N times back to back on the same"
        " server and keep the median run",
    )
    p.add_argument(
        "--memory-znodes", type=int, help="znodes for the memory/restart figure (default 100k)"
    )
    p.add_argument("--tick-time", type=int, help="zoo.cfg tickTime in ms (default 2000)")
    p.add_argument(
        "--failover-kills", type=int, help="leader kills of the fail-over figure (default 10; 2 quick)"
    )
    p.add_argument(
        "--coldstart-trials", type=int, help="cold starts of the ensemble (default 3; 1 quick)"
    )
    p.add_argument(
        "--catchup-writes",
        type=int,
        help="writes a restarted follower is behind (default 100k; 2k quick)",
    )
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


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The run's knobs: the mode's defaults (full or ``--quick``), then the explicit flags."""
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
        "rounds": args.rounds,
        "memory_znodes": args.memory_znodes,
        "expiry_timeout_ms": args.expiry_timeout_ms,
        "expiry_trials": args.expiry_trials,
        "failover_kills": args.failover_kills,
        "coldstart_trials": args.coldstart_trials,
        "catchup_writes": args.catchup_writes,
    }
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    return settings


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
    settings = settings_from_args(args)
    if settings.rounds < 1 or settings.repeat < 1:
        print("--rounds and --repeat must be at least 1", file=sys.stderr)
        return 2
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
