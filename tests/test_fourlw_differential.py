"""Four-letter words side by side with Apache ZooKeeper 3.8.0.

Monitoring tools (telegraf, Datadog, zkServer.sh, Prometheus exporters) parse
these outputs, so after the same client activity on a fresh server of each
kind, every word must have ZooKeeper's layout and agree on every value that
does not depend on timing, the process or the session ids.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from kazoo.client import KazooClient

from tests.support.apache_zk import apache_zookeeper
from tests.support.server import ServerProcess, four_letter_word, write_cfg

pytestmark = pytest.mark.zookeeper

WORDS = ["ruok", "srvr", "stat", "mntr", "conf", "cons", "wchs", "wchc", "wchp", "dirs", "isro", "envi", "dump"]


def _activity_then_words(hosts: str, port: int) -> dict[str, str]:
    c = KazooClient(hosts=hosts, timeout=10)
    c.start(timeout=20)
    try:
        c.create("/a", b"xyz")
        c.create("/a/b", b"")
        c.create("/e", ephemeral=True)
        c.get("/a", watch=lambda e: None)
        c.get_children("/", watch=lambda e: None)
        c.exists("/missing", watch=lambda e: None)
        return {w: four_letter_word(port, w) for w in WORDS}
    finally:
        c.stop()
        c.close()


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], dict[str, str]]:
    base = tmp_path_factory.mktemp("fourlw")
    with apache_zookeeper(base / "zk") as zk:
        ref = _activity_then_words(zk.hosts, zk.port)
    (base / "tq").mkdir()
    with ServerProcess(write_cfg(base / "tq", extra="4lw.commands.whitelist=*\n")) as tq:
        ours = _activity_then_words(tq.hosts, tq.port)
    return ref, ours


def _pairs(text: str, sep: str) -> dict[str, str]:
    return dict(line.split(sep, 1) for line in text.splitlines() if sep in line)


def test_identical_words(outputs: Any) -> None:
    ref, ours = outputs
    for w in ("ruok", "isro", "wchs"):
        assert ours[w] == ref[w], w


def test_srvr_and_stat(outputs: Any) -> None:
    ref, ours = outputs
    for w in ("srvr", "stat"):
        r, o = _pairs(ref[w], ": "), _pairs(ours[w], ": ")
        assert list(o) == list(r), w
        for key in ("Zxid", "Mode", "Node count", "Outstanding", "Connections"):
            assert o[key] == r[key], (w, key)
        assert re.fullmatch(r"\d+/\d+(\.\d+)?/\d+", o["Latency min/avg/max"])
        assert o["Zookeeper version"].startswith("3.8.0-")
    # one client line per connection, in ZooKeeper's format
    clients = [line for line in ours["stat"].splitlines() if line.startswith(" /")]
    assert len(clients) == 2
    assert all(re.fullmatch(r" /127\.0\.0\.1:\d+\[\d\]\(queued=\d+,recved=\d+,sent=\d+\)", line) for line in clients)


def test_mntr_keys_and_values(outputs: Any) -> None:
    ref, ours = outputs
    r, o = _pairs(ref["mntr"], "\t"), _pairs(ours["mntr"], "\t")
    # Every gauge ZooKeeper registers itself (ZooKeeperServer.registerMetrics,
    # printed first, before the ServerMetrics counters) is there, in its order.
    gauges = list(r)[: list(r).index("zk_non_mtls_local_conn_count") + 1]
    assert list(o)[: len(gauges)] == gauges
    for key in (
        "zk_server_state",
        "zk_ephemerals_count",
        "zk_num_alive_connections",
        "zk_outstanding_requests",
        "zk_znode_count",
        "zk_global_sessions",
        "zk_local_sessions",
        "zk_watch_count",
        "zk_approximate_data_size",
        "zk_auth_failed_count",
    ):
        assert o[key] == r[key], key


def test_watch_and_connection_listings(outputs: Any) -> None:
    ref, ours = outputs

    def shape(text: str) -> str:
        return re.sub(r"0x[0-9a-f]+", "0xID", text)

    assert shape(ours["wchc"]) == shape(ref["wchc"])
    assert shape(ours["wchp"]) == shape(ref["wchp"])
    cons = re.compile(
        r" /127\.0\.0\.1:\d+\[\d\]\(queued=\d+,recved=\d+,sent=\d+"
        r"(,sid=0x[0-9a-f]+,lop=\w+,est=\d+,to=\d+,lcxid=0x[0-9a-f]+,lzxid=0x[0-9a-f]+,"
        r"lresp=\d+,llat=\d+,minlat=\d+,avglat=\d+,maxlat=\d+)?\)"
    )
    lines = [line for line in ours["cons"].splitlines() if line.strip()]
    assert len(lines) == len([line for line in ref["cons"].splitlines() if line.strip()])
    assert all(cons.fullmatch(line) for line in lines), lines


def test_conf_dirs_envi_dump(outputs: Any) -> None:
    ref, ours = outputs
    assert list(_pairs(ours["conf"], "=")) == list(_pairs(ref["conf"], "="))
    assert list(_pairs(ours["dirs"], ": ")) == list(_pairs(ref["dirs"], ": "))
    assert ours["envi"].startswith("Environment:\nzookeeper.version=3.8.0-")
    ref_dump = [re.sub(r"0x[0-9a-f]+|\d+|at .*:", "N", line) for line in ref["dump"].splitlines()]
    our_dump = [re.sub(r"0x[0-9a-f]+|\d+|at .*:", "N", line) for line in ours["dump"].splitlines()]
    assert our_dump[:8] == ref_dump[:8]  # session buckets and ephemerals
