"""Unit tests of the benchmark harness's pure parts: frames, percentiles, report, config."""

from __future__ import annotations

import math
import struct
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from trio_quorum import proto
from trio_quorum.bench import report
from trio_quorum.bench.loadgen import READ, WRITE, LoadSpec, _Requests, _Session, percentiles
from trio_quorum.bench.scenarios import SCENARIOS, select
from trio_quorum.bench.servers import write_zoo_cfg
from trio_quorum.consts import OpCode


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
