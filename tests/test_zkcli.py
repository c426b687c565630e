"""zkCli (Debian's zookeeper-bin, the Java client) driven by a script, against both servers.

The same script of zkCli commands runs against a fresh Apache ZooKeeper 3.8.0
and a fresh trio-quorum; their printed output must match line for line once
wall-clock dates are masked.  Both start from an empty data directory, so
even the zxids zkCli prints must agree.  Watch notifications arrive on
zkCli's event thread and interleave with command output at random, so they
are compared as a multiset and the rest of the output in order.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.support.apache_zk import apache_zookeeper
from tests.support.server import ServerProcess, write_cfg

ZKCLI = Path("/usr/share/zookeeper/bin/zkCli.sh")

pytestmark = [
    pytest.mark.zookeeper,
    pytest.mark.skipif(
        not ZKCLI.exists() or shutil.which("java") is None,
        reason="zkCli.sh from Debian's zookeeper-bin (and Java) is not installed: "
        "apt-get install -y zookeeper zookeeper-bin",
    ),
]

SCRIPT = """\
create /app hello
create -e /app/eph e
create -s /app/seq- s
create -s /app/seq- s
create -c /app/box
create /app/box/item 1
ls /app
ls -s /app
get /app
get -s /app
set /app world
stat /app
set -v 0 /app nope
delete /app/missing
create /app/child c
delete /app/child
delete /app/box
getAcl /app
addauth digest alice:secret
create /private p
setAcl /private auth:alice:secret:cdrwa
getAcl /private
setAcl /app world:anyone:ra
set /app denied
setAcl /app world:anyone:cdrwa
whoami
ls -w /app
create /app/w w
get -w /app
set /app changed
stat -w /app/w
delete /app/w
addWatch -m PERSISTENT_RECURSIVE /app
create /app/deep d
set /app/deep d2
create /app/deep/er x
deleteall /app
ls /
ls /zookeeper
get /zookeeper/config
quit
"""

_NOISE = re.compile(r"^(SLF4J:|\d{4}-\d\d-\d\d |log4j:|JLine support|Welcome to ZooKeeper|Connecting to )")
_DATE = re.compile(r"^(ctime|mtime) = .*$")


def run_zkcli(hosts: str) -> tuple[list[str], Counter[str]]:
    proc = subprocess.run(
        [str(ZKCLI), "-server", hosts],
        input=SCRIPT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )
    lines, events = [], Counter()
    for raw in proc.stdout.splitlines():
        line = raw.rstrip()
        if not line or line == "WATCHER::" or _NOISE.match(line):
            continue
        if line.startswith("WatchedEvent "):
            events[line] += 1
            continue
        lines.append(_DATE.sub(r"\1 = <date>", line))
    return lines, events


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    base = tmp_path_factory.mktemp("zkcli")
    with apache_zookeeper(base / "zk") as zk:
        expected = run_zkcli(zk.hosts)
    (base / "tq").mkdir()
    with ServerProcess(write_cfg(base / "tq")) as tq:
        actual = run_zkcli(tq.hosts)
    return expected, actual


def test_command_output_matches_zookeeper(outputs):
    (exp_lines, _), (act_lines, _) = outputs
    # The script really ran: spot-check what the reference printed.
    assert "Created /app/seq-0000000001" in exp_lines
    assert "Insufficient permission : /app" in exp_lines
    assert act_lines == exp_lines


def test_watch_events_match_zookeeper(outputs):
    (_, exp_events), (_, act_events) = outputs
    assert "WatchedEvent state:SyncConnected type:NodeChildrenChanged path:/app" in exp_events
    assert "WatchedEvent state:SyncConnected type:NodeCreated path:/app/deep" in exp_events
    assert act_events == exp_events
