"""Differential: Apache ZooKeeper 3.8's own ``QuorumPeerConfig.parse`` and ours, on the same files.

One JVM parses every config of the corpus (a tiny Java program run by the
source launcher, against Debian's zookeeper.jar) and prints, per file, either
``ERR`` or what it understood: distributed or not, myid, the client port, and
every server line.  Ours must agree: accept the same files with the same
ensemble, refuse the same files.  Where we are deliberately stricter at parse
time (ZooKeeper fails later, at start-up, or silently keeps the last of two
lines), the case is listed in ``STRICTER`` and checked the other way round.
"""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

import pytest

from tests.support.apache_zk import require_zookeeper, zk_classpath
from trio_quorum.config import ConfigError
from trio_quorum.server.configfile import load_config

JAVA = r"""
import org.apache.zookeeper.server.quorum.QuorumPeerConfig;
import org.apache.zookeeper.server.quorum.QuorumPeer.QuorumServer;
import java.net.InetSocketAddress;

public class ZkCfg {
    public static void main(String[] args) {
        for (String path : args) {
            try {
                QuorumPeerConfig c = new QuorumPeerConfig();
                c.parse(path);
                StringBuilder sb = new StringBuilder("OK ");
                sb.append(c.isDistributed()).append(' ').append(c.getServerId()).append(' ');
                InetSocketAddress ca = c.getClientPortAddress();
                sb.append(ca == null ? "-" : Integer.toString(ca.getPort())).append(' ');
                if (c.getQuorumVerifier() != null) {
                    for (QuorumServer s : c.getQuorumVerifier().getAllMembers().values()) {
                        sb.append(s.id).append('@').append(s.hostname)
                          .append('@').append(s.addr.getReachableOrOne().getPort())
                          .append('@').append(s.electionAddr.getReachableOrOne().getPort())
                          .append('@').append(s.type.toString().toLowerCase())
                          .append('@').append(s.clientAddr == null ? "-" : Integer.toString(s.clientAddr.getPort()))
                          .append(',');
                    }
                }
                System.out.println(sb);
            } catch (Throwable e) {
                System.out.println("ERR " + e.toString().replace('\n', ' '));
            }
        }
    }
}
"""

HEAD = "tickTime=2000\ndataDir=data\ninitLimit=5\nsyncLimit=2\n"
THREE = "server.1=127.0.0.1:2888:3888;2181\nserver.2=127.0.0.1:2889:3889;2182\nserver.3=127.0.0.1:2890:3890;2183\n"

#: name -> (zoo.cfg text, myid text or None)
CORPUS: dict[str, tuple[str, str | None]] = {
    "standalone": ("tickTime=2000\ndataDir=data\nclientPort=2181\n", None),
    "standalone-limits": (HEAD + "clientPort=2181\nmaxClientCnxns=10\n", None),
    "three": (HEAD + THREE, "2"),
    "three-clientPort-same": (HEAD + THREE + "clientPort=2182\n", "2"),
    "three-clientPort-differs": (HEAD + THREE + "clientPort=2999\n", "2"),
    "three-no-client-sections": (HEAD + "clientPort=2181\nserver.1=127.0.0.1:1:2\nserver.2=127.0.0.1:3:4\n"
                                 "server.3=127.0.0.1:5:6\n", "1"),
    "roles": (HEAD + "server.1=127.0.0.1:1:2:participant;2181\nserver.2=127.0.0.1:3:4;2182\n"
              "server.3=127.0.0.1:5:6:observer;2183\n", "3"),
    "peerType-mismatch": (HEAD + THREE + "peerType=observer\n", "1"),
    "ipv6": (HEAD + "server.1=[::1]:2888:3888;[::1]:2181\nserver.2=[::1]:2889:3889;2182\n"
             "server.3=[0:0:0:0:0:0:0:1]:2890:3890:observer\n", "1"),
    "one-line-myid": (HEAD + "server.1=127.0.0.1:2888:3888;2181\n", "1"),
    "one-line-myid-clientPort": (HEAD + "clientPort=2181\nserver.1=127.0.0.1:2888:3888;2181\n", "1"),
    "one-line-no-myid": (HEAD + "clientPort=2181\nserver.5=127.0.0.1:2888:3888;2181\n", None),
    "one-line-not-standalone": (HEAD + "standaloneEnabled=false\nserver.1=127.0.0.1:2888:3888;2181\n", "1"),
    "big-id": (HEAD + "clientPort=2181\nserver.0=127.0.0.1:1:2\nserver.9223372036854775807=127.0.0.1:3:4\n",
               "9223372036854775807"),
    "ensemble-tunables": (HEAD + THREE + "cnxTimeout=7000\nquorumListenOnAllIPs=true\nelectionAlg=3\n"
                          "syncEnabled=false\nconnectToLearnerMasterLimit=3\nadmin.enableServer=false\n"
                          "admin.serverPort=8080\nauthProvider.1=x.Y\nmetricsProvider.httpPort=7000\n"
                          "secureClientPort=2281\nssl.keyStore.location=/k.jks\n4lw.commands.whitelist=*\n", "1"),
    # refused by both
    "no-limits": ("tickTime=2000\ndataDir=data\n" + THREE, "1"),
    "no-myid": (HEAD + THREE, None),
    "myid-not-a-number": (HEAD + THREE, "one"),
    "two-parts": (HEAD + THREE + "server.4=127.0.0.1:2891\n", "1"),
    "five-parts": (HEAD + THREE + "server.4=127.0.0.1:1:2:observer:x\n", "1"),
    "bad-role": (HEAD + THREE + "server.4=127.0.0.1:1:2:leader\n", "1"),
    "same-ports": (HEAD + THREE + "server.4=127.0.0.1:7:7\n", "1"),
    "bad-id": (HEAD + THREE + "server.x=127.0.0.1:1:2\n", "1"),
    "bad-peerType": (HEAD + THREE + "peerType=boss\n", "1"),
    "bad-electionAlg": (HEAD + THREE + "electionAlg=1\n", "1"),
    "observers-only": (HEAD + "clientPort=1\nserver.1=127.0.0.1:1:2:observer\n", None),
    "observer-with-one-voter": (HEAD + "clientPort=1\nserver.1=127.0.0.1:1:2\nserver.2=127.0.0.1:3:4:observer\n",
                                None),
    "multi-address-off": (HEAD + "server.1=127.0.0.1:1:2|127.0.0.2:1:2;2181\nserver.2=127.0.0.1:3:4\n"
                          "server.3=127.0.0.1:5:6\n", "1"),
    "clientPortAddress-alone": (HEAD + "clientPortAddress=127.0.0.1\nserver.1=127.0.0.1:2888:3888;2181\n", "1"),
    "no-dataDir": ("tickTime=2000\nclientPort=2181\n", None),
    "standaloneEnabled-bad": (HEAD + "clientPort=1\nstandaloneEnabled=perhaps\n", None),
}

#: Cases ZooKeeper's parse accepts and we refuse on purpose, with why.
STRICTER: dict[str, tuple[str, str | None]] = {
    # ZooKeeper fails only when the peer starts ("My id 9 not in the peer list")
    "myid-not-listed": (HEAD + THREE, "9"),
    # java.util.Properties keeps the last line silently
    "duplicate-server": (HEAD + THREE + "server.3=127.0.0.1:2891:3891\n", "1"),
}


def _zookeeper(tmp_path: Path, cases: dict[str, tuple[str, str | None]]) -> dict[str, str]:
    require_zookeeper()
    src = tmp_path / "ZkCfg.java"
    src.write_text(JAVA)
    paths = []
    for name, (text, myid) in cases.items():
        d = tmp_path / name
        (d / "data").mkdir(parents=True)
        if myid is not None:
            (d / "data" / "myid").write_text(myid + "\n")
        (d / "zoo.cfg").write_text(text.replace("dataDir=data", f"dataDir={d / 'data'}"))
        paths.append(str(d / "zoo.cfg"))
    res = subprocess.run(
        ["java", "-Xmx128m", "-XX:TieredStopAtLevel=1", "-cp", zk_classpath(), str(src), *paths],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )
    verdicts = [line for line in res.stdout.splitlines() if line.startswith(("OK", "ERR"))]
    assert len(verdicts) == len(cases), res.stdout + res.stderr
    return dict(zip(cases, verdicts, strict=True))


def _host(h: str) -> str:
    try:
        return str(ipaddress.ip_address(h))
    except ValueError:
        return h


def _ours(path: Path) -> str:
    try:
        cfg, _ = load_config(path)
    except ConfigError as exc:
        return f"ERR {exc}"
    q = cfg.quorum
    my_id = q.my_id if q is not None else None
    servers = sorted(
        (s.sid, _host(s.host), s.quorum_port, s.election_port, s.role, s.client_port) for s in cfg.servers.values()
    )
    return f"OK {q is not None} {my_id} {cfg.client_port} {servers}"


def _theirs(verdict: str) -> str:
    if verdict.startswith("ERR"):
        return verdict
    _, distributed, sid, port, members = verdict.split(" ", 4)
    servers = []
    for m in filter(None, members.strip().split(",")):
        s, host, qp, ep, role, cp = m.split("@")
        servers.append((int(s), _host(host), int(qp), int(ep), role, None if cp == "-" else int(cp)))
    is_d = distributed == "true"
    return f"OK {is_d} {int(sid) if is_d else None} {None if port == '-' else int(port)} {sorted(servers)}"


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("zkcfg")
    return tmp, _zookeeper(tmp, {**CORPUS, **STRICTER})


@pytest.mark.parametrize("name", list(CORPUS))
def test_we_agree_with_zookeepers_parser(name: str, verdicts: tuple[Path, dict[str, str]]) -> None:
    tmp, zk = verdicts
    theirs, ours = _theirs(zk[name]), _ours(tmp / name / "zoo.cfg")
    if theirs.startswith("ERR"):
        assert ours.startswith("ERR"), f"ZooKeeper: {theirs}\nours: {ours}"
    else:
        assert ours == theirs


@pytest.mark.parametrize("name", list(STRICTER))
def test_where_we_are_stricter_zookeeper_accepts(name: str, verdicts: tuple[Path, dict[str, str]]) -> None:
    tmp, zk = verdicts
    assert zk[name].startswith("OK"), zk[name]
    assert _ours(tmp / name / "zoo.cfg").startswith("ERR")


def test_the_shipped_example_configs_parse(tmp_path: Path) -> None:
    examples = [p for p in (Path("/etc/zookeeper/conf_example/zoo.cfg"), Path("/etc/zookeeper/conf/zoo.cfg"),
                            Path("/usr/share/zookeeper/conf/zoo_sample.cfg")) if p.is_file()]
    if not examples:
        pytest.skip("no ZooKeeper example configs installed")
    for path in examples:
        cfg, warnings = load_config(path, cwd=str(tmp_path))
        assert cfg.standalone and cfg.client_port == 2181 and cfg.tick_time == 2000
        assert (cfg.init_limit, cfg.sync_limit) == (10, 5) and warnings == []
    # and as an ensemble: the same file with server lines, the way the admin guide extends it
    text = examples[0].read_text().replace("dataDir=/tmp/zookeeper", f"dataDir={tmp_path}")
    (tmp_path / "myid").write_text("2\n")
    (tmp_path / "zoo.cfg").write_text(text + "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\n"
                                      "server.3=127.0.0.1:2890:3890\n")
    cfg, _ = load_config(tmp_path / "zoo.cfg")
    assert cfg.quorum is not None and cfg.quorum.my_id == 2 and cfg.client_port == 2181
