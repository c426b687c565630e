"""End to end: the benchmark's ensemble figures on a tiny load, against each target.

Runs ``python -m trio_quorum.bench --quick --only ensemble`` in a subprocess (one
leader kill, one cold start, a follower a few hundred writes behind, a few thousand
znodes) and checks the JSON has every ensemble figure with values that hang
together.  No timing is asserted as a target: numbers on a shared 2-core machine
are not facts about correctness; the orderings checked (elected before the first
write, serving before synced) are.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trio_quorum.bench.scenarios import select
from trio_quorum.bench.servers import TARGETS

TINY = [
    "--quick",
    "--only",
    "ensemble",
    "--warmup",
    "0.2",
    "--duration",
    "0.5",
    "--failover-kills",
    "1",
    "--coldstart-trials",
    "1",
    "--catchup-writes",
    "500",
    "--memory-znodes",
    "1000",
    "--no-markdown",
]


def run_bench(target: str, tmp_path: Path) -> dict:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "trio_quorum.bench", *TINY, "--targets", target, "--json", str(out),
         "--workdir", str(tmp_path / "work")],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert out.exists(), f"no JSON written (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    doc = json.loads(out.read_text())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return doc


def check_document(doc: dict, target: str) -> None:
    ids = [f["id"] for f in doc["figures"]]
    assert ids == [sc.id for sc in select(["ensemble"])]
    assert doc["settings"]["failover_kills"] == 1
    for fig in doc["figures"]:
        res = fig["results"][target]
        assert res["status"] == "ok", (fig["id"], res)
        kind = fig["kind"]
        if kind == "throughput":
            assert res["completed"] > 0 and res["errors"] == 0, fig["id"]
            assert res["peers"] == int(fig["topology"][len("ensemble"):])
            on = fig["params"]["on"]
            assert len(res["endpoints"]) == (res["peers"] if on == "spread" else 1)
        elif kind == "failover":
            (kill,) = res["kills"]
            assert kill["new_leader"] != kill["killed"]
            assert 0 < kill["elected_s"] and 0 < kill["first_write_s"]
            assert res["first_write_s_max"] >= res["first_write_s_median"] > 0
            assert res["writes"] > 0
        elif kind == "coldstart":
            (trial,) = res["trials"]
            assert 0 < trial["elected_s"] <= trial["first_write_s"]
        elif kind == "catchup":
            assert res["writes_behind"] == 500
            assert res["zxid_leader"] - res["zxid_before"] >= 500
            assert 0 < res["serving_s"] <= res["synced_s"]
        elif kind == "ens_memory":
            assert res["znodes_created"] == 1000
            assert len(res["rss_bytes_by_peer"]) == 3
            assert res["rss_bytes_max_peer"] == max(res["rss_bytes_by_peer"].values())


def test_bench_ensemble_trio_quorum(tmp_path: Path) -> None:
    doc = run_bench("trio-quorum", tmp_path)
    check_document(doc, "trio-quorum")


@pytest.mark.zookeeper
def test_bench_ensemble_zookeeper(tmp_path: Path) -> None:
    reason = TARGETS["zookeeper"].unavailable_reason()
    if reason:
        pytest.skip(f"Debian's Apache ZooKeeper is not usable here: {reason}")
    doc = run_bench("zookeeper", tmp_path)
    check_document(doc, "zookeeper")
