"""Unit tests of the benchmark harness's pure parts: frames, percentiles, report, config."""

from __future__ import annotations

import math
import struct
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from trio_quorum.bench import report
from trio_quorum.bench.loadgen import READ, WRITE, LoadSpec, _Requests, _Session, percentiles
from trio_quorum.bench.scenarios import SCENARIOS, select
from trio_quorum.bench.servers import write_zoo_cfg
from trio_quorum.protocol import records as proto
from trio_quorum.protocol.consts import OpCode


def _frames(blob: bytes) -> list[tuple[int, int, object]]:
    """Split request frames and decode each with the project's codec."""
    out, off = [], 0
    while off < len(blob):
        (n,) = struct.unpack_from(">i", blob, off)
        xid, op = struct.unpack_from(">ii", blob, off + 4)
        out.append((xid, op, proto.decode_request(op, blob[off + 12 : off + 4 + n])))
        off += 4 + n
    assert off == len(blob)
    return out


def _build(op: str, n: int, **kw: object) -> tuple[_Session, list[tuple[int, int, object]]]:
    spec = LoadSpec(op=op, sessions=1, inflight=n, workers=1, keys=7, **kw)  # type: ignore[arg-type]
    reqs = _Requests(spec, worker=0)
    s = _Session(sock=None, name=f"{spec.run_tag}w0s0", remaining=0)  # type: ignore[arg-type]
    out: list[bytes] = []
    reqs.build(s, n, 1000, out)
    return s, _frames(b"".join(out))


def test_hot_loop_get_and_set_frames_decode_as_the_codec_says() -> None:
    s, frames = _build("get", 10)
    assert [x for x, _, _ in frames] == list(range(1, 11))
    assert all(op == OpCode.getData for _, op, _ in frames)
    assert [r.path for _, _, r in frames] == [f"/bench/k/{i % 7}" for i in range(10)]
    assert s.pending == 10 and len(s.sent) == 10 and all(v & 1 == READ for v in s.sent)
    _, frames = _build("set", 3, value_size=100)
    assert all(
        op == OpCode.setData and r.data == b"v" * 100 and r.version == -1 for _, op, r in frames
    )


def test_hot_loop_create_names_are_unique_and_valid() -> None:
    s, frames = _build("create", 50, run_tag="t1-")
    paths = [r.path for _, _, r in frames]
    assert len(set(paths)) == 50
    assert all(p.startswith("/bench/c/t1-w0s0-") for p in paths)
    assert all(r.data == b"v" * 100 and r.flags == 0 for _, _, r in frames)
    assert all(v & 1 == WRITE for v in s.sent)


def test_mix_has_the_requested_read_share() -> None:
    _, frames = _build("mix", 1000, read_percent=90)
    ops = [op for _, op, _ in frames]
    assert ops.count(OpCode.getData) == 900 and ops.count(OpCode.setData) == 100


@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=2000))
def test_percentiles_are_nearest_rank_and_ordered(values: list[int]) -> None:
    p = percentiles(values)
    s = sorted(values)
    for q, key in ((0.5, "p50"), (0.99, "p99"), (0.999, "p99.9")):
        assert p[key] == s[max(0, math.ceil(q * len(s)) - 1)] / 1e6
    assert p["p50"] <= p["p99"] <= p["p99.9"] <= p["max"]
    assert p["count"] == len(values)


def test_zoo_cfg_has_the_benchmark_settings(tmp_path: Path) -> None:
    cfg = write_zoo_cfg(tmp_path, 12345)
    kv = dict(line.split("=", 1) for line in cfg.read_text().splitlines())
    assert kv["clientPort"] == "12345" and kv["clientPortAddress"] == "127.0.0.1"
    assert kv["forceSync"] == "yes" and kv["tickTime"] == "2000"
    assert kv["4lw.commands.whitelist"] == "*" and kv["maxClientCnxns"] == "0"
    assert kv["admin.enableServer"] == "false"
    assert Path(kv["dataDir"]).is_dir()
    ens = write_zoo_cfg(tmp_path / "n2", 1, servers=[(1, 2, 3), (2, 4, 5)], my_id=2)
    assert "server.2=127.0.0.1:4:5" in ens.read_text()
    assert (tmp_path / "n2" / "data" / "myid").read_text().strip() == "2"


def test_select_keeps_big_figures_behind_the_flag() -> None:
    assert "memory.1m" not in {s.id for s in select()}
    assert "memory.1m" in {s.id for s in select(big=True)}
    assert {s.id for s in select(["throughput.get"])} == {
        "throughput.get.8x32",
        "throughput.get.1x1",
    }
    assert len({s.id for s in SCENARIOS}) == len(SCENARIOS)


def _doc() -> dict:
    ok = {
        "status": "ok",
        "throughput": 1000.0,
        "completed": 5000,
        "errors": 0,
        "latency_ms": {"all": {"count": 5000, "p50": 1.0, "p99": 2.0, "p99.9": 3.0, "max": 4.0}},
        "workers": [{"cpu_util": 0.25}],
        "server_cpu_util": 0.9,
        "server_rss_bytes": 2**20,
    }
    return {
        "command": "python -m trio_quorum.bench",
        "mode": "quick",
        "machine": {"cpu_model": "X", "cpu_cores": 2},
        "settings": {},
        "targets": {
            "zookeeper": {"title": "Apache ZooKeeper 3.8", "status": "ok", "version": "3.8.0"},
            "trio-quorum": {
                "title": "trio-quorum",
                "status": "unavailable",
                "reason": "no serve\ntail",
            },
        },
        "figures": [
            {
                "id": "throughput.get.8x32",
                "kind": "throughput",
                "title": "getData",
                "params": {"op": "get"},
                "results": {
                    "zookeeper": ok,
                    "trio-quorum": {"status": "unavailable", "reason": "no serve"},
                },
            }
        ],
    }


def test_report_marks_unavailable_target_without_numbers() -> None:
    md = report.render(_doc())
    row = next(line for line in md.splitlines() if line.startswith("| throughput (ops/s)"))
    assert row == "| throughput (ops/s) | 1,000 | unavailable | – |"
    assert "unavailable: no serve" in md


def test_report_ratio_is_other_over_zookeeper() -> None:
    doc = _doc()
    other = dict(doc["figures"][0]["results"]["zookeeper"], throughput=1500.0)
    doc["figures"][0]["results"]["trio-quorum"] = other
    md = report.render(doc)
    assert "| throughput (ops/s) | 1,000 | 1,500 | 1.50x |" in md


def test_write_markdown_keeps_hand_written_notes(tmp_path: Path) -> None:
    path = tmp_path / "b.md"
    path.write_text(f"# title\n\nintro\n\n{report.BEGIN}\nold\n{report.END}\n\n## Method\nkept\n")
    report.write_markdown(path, _doc())
    text = path.read_text()
    assert text.startswith("# title\n\nintro\n\n")
    assert text.endswith(f"{report.END}\n\n## Method\nkept\n")
    assert "old" not in text and "1,000" in text


def test_merge_adds_separately_measured_figures_in_scenario_order() -> None:
    from trio_quorum.bench.runner import merge

    def fig(fid: str, stamp: str, **results: object) -> dict:
        return {"id": fid, "kind": "memory", "results": results, "measured": {"command": stamp}}

    full = {
        "command": "full",
        "targets": {"zookeeper": {"status": "ok"}},
        "figures": [
            fig("throughput.get.8x32", "full", zookeeper={"v": 1}),
            fig("memory.100k", "full", zookeeper={"v": 2}),
            fig("expiry", "full", zookeeper={"v": 3}),
        ],
    }
    big = {
        "command": "big",
        "targets": {"trio-quorum": {"status": "ok"}},
        "figures": [fig("memory.1m", "big", zookeeper={"v": 4}, **{"trio-quorum": {"v": 5}})],
    }
    out = merge(full, big)
    assert out["command"] == "full"  # the run that measured more keeps the top level
    assert [f["id"] for f in out["figures"]] == [
        "throughput.get.8x32",
        "memory.100k",
        "memory.1m",
        "expiry",
    ]
    assert set(out["targets"]) == {"zookeeper", "trio-quorum"}
    again = merge(
        out, {"command": "z", "targets": {}, "figures": [fig("expiry", "z", zookeeper={"v": 9})]}
    )
    expiry = next(f for f in again["figures"] if f["id"] == "expiry")
    assert expiry["results"] == {"zookeeper": {"v": 9}}
    # A new full run (without --big) merged into a document that also holds the
    # 1M figure takes the top level: it measured as many default figures.
    rerun = {
        "command": "full again",
        "targets": {"zookeeper": {"status": "ok"}},
        "figures": [fig(f["id"], "again", zookeeper={"v": 7}) for f in full["figures"]],
    }
    latest = merge(out, rerun)
    assert latest["command"] == "full again"
    assert "memory.1m" in [f["id"] for f in latest["figures"]]


# ------------------------------------------------------------ rounds (no servers)


class _FakeTarget:
    def __init__(self, name: str, reason: str | None = None) -> None:
        self.name = name
        self.title = name
        self._reason = reason

    def unavailable_reason(self) -> str | None:
        return self._reason


ZK, TQ = _FakeTarget("zookeeper"), _FakeTarget("trio-quorum")


def _ok(throughput: float, p50: float = 1.0, runs: list[float] | None = None) -> dict:
    return {
        "status": "ok",
        "throughput": throughput,
        "completed": int(throughput),
        "errors": 0,
        "latency_ms": {"all": {"count": 1, "p50": p50, "p99": 2 * p50, "p99.9": 3 * p50}},
        "workers": [{"cpu_s": 0.1, "cpu_util": 0.1}],
        "runs_throughput": runs if runs is not None else [throughput],
    }


def test_schedule_alternates_who_goes_first_and_runs_slow_groups_once() -> None:
    from trio_quorum.bench.runner import schedule

    steps = schedule([ZK, TQ], select(), rounds=3)  # type: ignore[list-item]
    order = [(s.round, s.target.name, s.group) for s in steps]
    in_rounds = ("throughput", "ensemble3", "ensemble5")
    once = ("memory.100k", "expiry", "ensemble3.failover", "ensemble3.coldstart",
            "ensemble3.catchup", "ensemble3.memory.100k")
    assert order == [
        *((1, t, g) for g in in_rounds for t in ("zookeeper", "trio-quorum")),
        *((2, t, g) for g in in_rounds for t in ("trio-quorum", "zookeeper")),
        *((3, t, g) for g in in_rounds for t in ("zookeeper", "trio-quorum")),
        *((None, t, g) for g in once for t in ("zookeeper", "trio-quorum")),
    ]
    tp = next(s for s in steps if s.group == "throughput")
    assert [sc.id for sc in tp.scenarios] == [sc.id for sc in SCENARIOS if sc.group == "throughput"]
    # one round, one target, a subset: today's order
    one = schedule([TQ], select(["throughput.get", "expiry"]), rounds=1)  # type: ignore[list-item]
    assert [(s.round, s.target.name, s.group) for s in one] == [
        (1, "trio-quorum", "throughput"),
        (None, "trio-quorum", "expiry"),
    ]
    assert [sc.id for sc in one[0].scenarios] == ["throughput.get.8x32", "throughput.get.1x1"]


def test_median_round_picks_the_median_throughput_and_keeps_every_round() -> None:
    from trio_quorum.bench.runner import median_round

    rounds = [_ok(300.0, p50=0.5), _ok(100.0, p50=0.9), _ok(200.0, p50=0.2)]
    out = median_round(rounds)
    assert out["throughput"] == 200.0 and out["median_round"] == 3
    assert out["latency_ms"]["all"]["p50"] == 0.2  # the median round's percentiles
    assert out["runs_throughput"] == [300.0, 100.0, 200.0]
    assert out["latency_p50_ms_rounds"] == [0.5, 0.9, 0.2]
    assert out["latency_p50_ms_median"] == 0.5  # median over rounds, not the median round's
    assert "rounds_failed" not in out and "repeats_throughput" not in out
    assert rounds[2]["runs_throughput"] == [200.0]  # inputs are not modified


def test_median_round_with_a_failed_round_and_repeats() -> None:
    from trio_quorum.bench.runner import median_round

    failed = {"status": "failed", "reason": "boom"}
    out = median_round([_ok(100.0, runs=[90.0, 100.0, 110.0]), failed, _ok(300.0)])
    assert out["throughput"] == 100.0 and out["median_round"] == 1  # lower median of 2
    assert out["runs_throughput"] == [100.0, None, 300.0]
    assert out["repeats_throughput"] == [[90.0, 100.0, 110.0], None, [300.0]]
    assert out["rounds_failed"] == [{"round": 2, "status": "failed", "reason": "boom"}]
    assert out["latency_p50_ms_median"] == 1.0
    assert median_round([failed, failed]) == failed


def test_round_ratios_pair_rounds_and_take_the_median() -> None:
    from trio_quorum.bench.runner import round_ratios

    zk = [_ok(100.0), _ok(200.0), _ok(100.0)]
    tq = [_ok(150.0), _ok(100.0), _ok(80.0)]
    ratios, med = round_ratios(zk, tq)
    assert ratios == [1.5, 0.5, 0.8] and med == 0.8
    ratios, med = round_ratios(zk, [_ok(150.0), {"status": "failed"}, _ok(80.0)])
    assert ratios == [1.5, None, 0.8] and med == (1.5 + 0.8) / 2
    assert round_ratios([{"status": "failed"}], [_ok(1.0)]) == ([None], None)


def _fake_run(monkeypatch, targets: list, rounds: int, table: dict, only: list[str]) -> tuple:
    """runner.run with a fake step runner: ``table[(target, round or group)]`` -> result."""
    from trio_quorum.bench import runner
    from trio_quorum.bench.scenarios import Settings

    monkeypatch.setattr(runner, "machine_facts", lambda: {})
    calls: list[tuple] = []
    rounds_seen = {t.name: 0 for t in targets}

    def run_group(target, group, scenarios, settings, workdir, log, subdir):
        if group == "throughput":
            rounds_seen[target.name] += 1
            key = (target.name, rounds_seen[target.name])
        else:
            key = (target.name, group)
        calls.append((key, subdir))
        got = table.get(key, {})
        if isinstance(got, str):  # the server did not start
            return {}, None, got
        return {sc.id: got for sc in scenarios}, {"Zookeeper version": "3.x"}, None

    settings = Settings(rounds=rounds)
    doc = runner.run(
        targets, select(only), settings, Path("/nonexistent"), lambda _m: None, run_group
    )
    return doc, calls


def test_run_aggregates_rounds_per_target_and_ratios_per_figure(monkeypatch) -> None:
    table = {
        ("zookeeper", 1): _ok(100.0, p50=0.30),
        ("trio-quorum", 1): _ok(120.0, p50=0.20),
        ("trio-quorum", 2): _ok(60.0, p50=0.40),
        ("zookeeper", 2): _ok(50.0, p50=0.35),
        ("zookeeper", 3): _ok(80.0, p50=0.10),
        ("trio-quorum", 3): _ok(100.0, p50=0.25),
        ("zookeeper", "expiry"): {"status": "ok", "elapsed_ms_min": 1.0},
        ("trio-quorum", "expiry"): {"status": "ok", "elapsed_ms_min": 2.0},
    }
    doc, calls = _fake_run(monkeypatch, [ZK, TQ], 3, table, ["throughput.get.1x1", "expiry"])
    assert calls == [
        (("zookeeper", 1), "throughput.round1"),
        (("trio-quorum", 1), "throughput.round1"),
        (("trio-quorum", 2), "throughput.round2"),
        (("zookeeper", 2), "throughput.round2"),
        (("zookeeper", 3), "throughput.round3"),
        (("trio-quorum", 3), "throughput.round3"),
        (("zookeeper", "expiry"), None),
        (("trio-quorum", "expiry"), None),
    ]
    fig = next(f for f in doc["figures"] if f["id"] == "throughput.get.1x1")
    zk, tq = fig["results"]["zookeeper"], fig["results"]["trio-quorum"]
    assert zk["throughput"] == 80.0 and zk["median_round"] == 3
    assert tq["throughput"] == 100.0 and tq["median_round"] == 3
    assert zk["runs_throughput"] == [100.0, 50.0, 80.0]
    assert tq["runs_throughput"] == [120.0, 60.0, 100.0]
    assert fig["ratio_per_round"] == [1.2, 1.2, 1.25]
    assert fig["ratio_median"] == 1.2
    assert zk["latency_p50_ms_median"] == 0.30 and tq["latency_p50_ms_median"] == 0.25
    expiry = next(f for f in doc["figures"] if f["id"] == "expiry")
    assert expiry["results"]["trio-quorum"] == {"status": "ok", "elapsed_ms_min": 2.0}
    assert "ratio_per_round" not in expiry
    assert doc["settings"]["rounds"] == 3
    assert all(t["status"] == "ok" and t["version"] == "3.x" for t in doc["targets"].values())

    md = report.render(doc)
    summary = next(line for line in md.splitlines() if line.startswith("| getData, 1 session"))
    assert "| 1.20x (1.20-1.25) |" in summary and "| 1.25x |" in summary
    assert "| latency p50, median of rounds (ms) | 0.300 | 0.250 | 0.83x |" in md
    assert "| every round (ops/s; median reported) | 100, 50, 80 | 120, 60, 100 |" in md


def test_run_marks_a_target_that_never_starts_unavailable_and_skips_its_rounds(
    monkeypatch,
) -> None:
    table = {
        ("zookeeper", 1): "zookeeper did not start: log tail",
        ("trio-quorum", 1): _ok(10.0),
        ("trio-quorum", 2): "died on start",
        ("trio-quorum", 3): _ok(30.0),
    }
    doc, calls = _fake_run(monkeypatch, [ZK, TQ], 3, table, ["throughput.set.8x32"])
    assert [k for k, _ in calls] == [
        ("zookeeper", 1),
        ("trio-quorum", 1),
        ("trio-quorum", 2),
        ("trio-quorum", 3),
    ]
    assert doc["targets"]["zookeeper"]["status"] == "unavailable"
    fig = doc["figures"][0]
    assert fig["results"]["zookeeper"]["status"] == "unavailable"
    tq = fig["results"]["trio-quorum"]
    assert tq["status"] == "ok" and tq["throughput"] == 10.0
    assert tq["runs_throughput"] == [10.0, None, 30.0]
    assert tq["rounds_failed"][0]["round"] == 2
    assert "ratio_per_round" not in fig
    assert "| every round (ops/s; median reported) | – | 10, failed, 30 |" in report.render(doc)


def test_rounds_default_three_in_full_mode_one_in_quick() -> None:
    from trio_quorum.bench.runner import _parser, settings_from_args

    def settings(*argv: str):
        return settings_from_args(_parser().parse_args(list(argv)))

    assert settings().rounds == 3 and settings().repeat == 1
    assert settings("--quick").rounds == 1
    assert settings("--quick", "--rounds", "2").rounds == 2
    assert settings("--rounds", "5", "--repeat", "2").repeat == 2


def test_merge_drops_per_round_ratios_when_only_one_target_is_remeasured() -> None:
    from trio_quorum.bench.runner import merge

    both = {
        "id": "throughput.set.8x32",
        "kind": "throughput",
        "results": {"zookeeper": _ok(100.0), "trio-quorum": _ok(90.0)},
        "ratio_per_round": [0.9],
        "ratio_median": 0.9,
        "measured": {"command": "full"},
    }
    again = {
        "id": "throughput.set.8x32",
        "kind": "throughput",
        "results": {"trio-quorum": _ok(120.0)},
        "measured": {"command": "tq only"},
    }
    out = merge({"targets": {}, "figures": [both]}, {"targets": {}, "figures": [again]})
    fig = out["figures"][0]
    assert fig["results"]["zookeeper"]["throughput"] == 100.0
    assert fig["results"]["trio-quorum"]["throughput"] == 120.0
    assert "ratio_per_round" not in fig  # the old rounds' pairs no longer hold
