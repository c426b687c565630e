"""End to end: the benchmark harness on a tiny load, against each target.

Runs ``python -m trio_quorum.bench`` in a subprocess with seconds-long windows and
small znode counts, then checks the JSON it wrote has every figure with sane
values.  No timing is asserted: numbers on a shared 2-core machine are not facts
about correctness.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trio_quorum.bench.servers import TARGETS

TINY = [
    "--quick",
    "--rounds",
    "1",  # --quick's default, spelled out: one fresh server per group, as fast as it gets
    "--warmup",
    "0.3",
    "--duration",
    "0.8",
    "--memory-znodes",
    "2000",
    "--tick-time",
    "1000",
    "--expiry-trials",
    "2",
    "--no-markdown",
]


def run_bench(target: str, tmp_path: Path) -> dict:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "trio_quorum.bench",
            *TINY,
            "--targets",
            target,
            "--json",
            str(out),
            "--workdir",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert out.exists(), f"no JSON written (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    doc = json.loads(out.read_text())
    doc["_stderr"] = proc.stderr
    doc["_rc"] = proc.returncode
    return doc


def check_document(doc: dict, target: str) -> None:
    assert doc["_rc"] == 0, doc["_stderr"][-3000:]
    assert doc["settings"]["rounds"] == 1
    assert doc["machine"]["cpu_cores"] >= 1
    ids = {f["id"] for f in doc["figures"]}
    for op in ("get", "set", "mix", "create"):
        for shape in ("8x32", "1x1"):
            assert f"throughput.{op}.{shape}" in ids
    assert "memory.100k" in ids and "expiry" in ids
    for fig in doc["figures"]:
        res = fig["results"][target]
        assert res["status"] == "ok", (fig["id"], res)
        if fig["kind"] == "throughput":
            assert res["completed"] > 0 and res["throughput"] > 0
            assert res["errors"] == 0
            kinds = ["all", "read", "write"] if fig["params"]["op"] == "mix" else ["all"]
            for k in kinds:
                lat = res["latency_ms"][k]
                assert lat["count"] > 0, (fig["id"], k)
                assert 0 <= lat["p50"] <= lat["p99"] <= lat["p99.9"] <= lat["max"], (
                    fig["id"],
                    k,
                    lat,
                )
            assert sum(lat_count(res)) == res["completed"]
            assert all(w["cpu_s"] >= 0 for w in res["workers"])
            assert res["server_rss_bytes"] > 0
            assert res["runs_throughput"] == [res["throughput"]] and res["median_round"] == 1
            assert res["latency_p50_ms_median"] == res["latency_ms"]["all"]["p50"]
        elif fig["kind"] == "memory":
            assert res["znodes_created"] == 2000
            assert (
                res["node_count_after_restart"] is None or res["node_count_after_restart"] >= 2000
            )
            assert res["rss_bytes"] > 0 and res["rss_bytes_after_restart"] > 0
            assert res["restart_s"] > 0 and res["restart_srvr_s"] <= res["restart_s"]
        elif fig["kind"] == "expiry":
            assert res["expired"] == 2 and res["not_expired"] == 0
            assert all(t["elapsed_ms"] > 0 for t in res["trials"])


def lat_count(res: dict) -> list[int]:
    if "read" in res["latency_ms"]:
        return [res["latency_ms"]["read"]["count"], res["latency_ms"]["write"]["count"]]
    return [res["latency_ms"]["all"]["count"]]


@pytest.mark.zookeeper
def test_bench_smoke_zookeeper(tmp_path: Path) -> None:
    reason = TARGETS["zookeeper"].unavailable_reason()
    if reason:
        pytest.skip(f"Debian's Apache ZooKeeper is not usable here: {reason}")
    doc = run_bench("zookeeper", tmp_path)
    assert doc["targets"]["zookeeper"]["status"] == "ok", doc["targets"]["zookeeper"]
    assert doc["targets"]["zookeeper"]["version"].startswith("3.")
    check_document(doc, "zookeeper")


def test_bench_smoke_trio_quorum(tmp_path: Path) -> None:
    reason = TARGETS["trio-quorum"].unavailable_reason()
    if reason:
        pytest.skip(f"trio-quorum cannot be benchmarked yet: {reason}")
    doc = run_bench("trio-quorum", tmp_path)
    info = doc["targets"]["trio-quorum"]
    if info["status"] == "unavailable":
        first = (info["reason"] or "").splitlines()[0]
        pytest.skip(f"`python -m trio_quorum serve` does not serve yet: {first}")
    check_document(doc, "trio-quorum")
