"""zoo.cfg ensemble keys: server.N forms, myid, observers, every problem at once, ignored keys,
the key table, and the CLI's one refusal of a valid ensemble config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_quorum.config import KEYS, ConfigError, ServerConfig, default_of, parse_config
from trio_quorum.server.configfile import load_config

ROOT = Path(__file__).resolve().parent.parent
HEAD = "tickTime=2000\ndataDir=/d\ninitLimit=5\nsyncLimit=2\n"


def parse(text: str, myid: str | None = None, dynamic: str | None = None):
    return parse_config(text, cwd="/w", myid_text=myid, dynamic_text=dynamic)


def problems(text: str, myid: str | None = None) -> list[tuple[str | None, int]]:
    with pytest.raises(ConfigError) as ei:
        parse(text, myid)
    return [(p.key, p.line) for p in ei.value.problems]


@pytest.mark.parametrize(
    ("value", "expect"),
    [
        ("h:2888:3888", ("h", 2888, 3888, "participant", None, None)),
        ("h:2888:3888:participant", ("h", 2888, 3888, "participant", None, None)),
        ("h:2888:3888:OBSERVER", ("h", 2888, 3888, "observer", None, None)),
        ("h:2888:3888;2181", ("h", 2888, 3888, "participant", "0.0.0.0", 2181)),
        ("h:2888:3888:observer;10.0.0.1:2181", ("h", 2888, 3888, "observer", "10.0.0.1", 2181)),
        ("[::1]:2888:3888", ("::1", 2888, 3888, "participant", None, None)),
        ("[2001:db8::7]:2888:3888:participant;[2001:db8::7]:2181", ("2001:db8::7", 2888, 3888, "participant",
                                                                     "2001:db8::7", 2181)),
        ("[fe80::1%eth0]:1:2;3", ("fe80::1%eth0", 1, 2, "participant", "0.0.0.0", 3)),
        (" zk1.example.com : 2888 : 3888 ; 2181 ", ("zk1.example.com", 2888, 3888, "participant", "0.0.0.0", 2181)),
    ],
)
def test_every_form_of_a_server_line(value: str, expect: tuple[object, ...]) -> None:
    cfg, _ = parse(HEAD + f"server.7={value}\nserver.8=b:1:2\nserver.9=c:1:2\nclientPort=2181\n", myid="8")
    s = cfg.servers[7]
    assert (s.host, s.quorum_port, s.election_port, s.role, s.client_host, s.client_port) == expect
    assert s.sid == 7 and cfg.quorum is not None and cfg.quorum.servers[7] == s


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("server.1", "h:1", "form"),
        ("server.1", "h:1:2:3:4", "form"),
        ("server.1", ":1:2", "empty host"),
        ("server.1", "h:x:2", "quorum port"),
        ("server.1", "h:1:99999", "election port"),
        ("server.1", "h:5:5", "different"),
        ("server.1", "h:1:2:leader", "peer type"),
        ("server.1", "h:1:2;a:b:c", "form"),
        ("server.1", "h:1:2;x", "client port"),
        ("server.1", "h:1:2;1;2", "form"),
        ("server.-1", "h:1:2", "between 0"),
        ("server.1x", "h:1:2", "not a number"),
        (f"server.{2**63}", "h:1:2", "between 0"),
    ],
)
def test_bad_server_lines_name_key_and_line(key: str, value: str, needle: str) -> None:
    with pytest.raises(ConfigError) as ei:
        parse(HEAD + "clientPort=1\n" + f"{key}={value}\n")
    assert [(p.key, p.line) for p in ei.value.problems] == [(key, 6)]
    assert needle in str(ei.value) and str(ei.value).startswith(f"line 6: {key}: ")


def test_ids_are_java_longs() -> None:
    big = 2**63 - 1
    cfg, _ = parse(HEAD + f"server.0=a:1:2;2181\nserver.{big}=b:1:2\nclientPort=1\n", myid=f"{big}\n")
    assert cfg.quorum is not None and cfg.quorum.my_id == big and set(cfg.servers) == {0, big}


def test_several_problems_are_reported_at_once() -> None:
    text = ("tickTime=soon\ndataDir=/d\nclientPort=70000\nforceSync=maybe\nserver.1=h:1\n"
            "electionAlg=1\nserver.2=h:1:2:boss\nmaxClientCnxns=-1\n")
    with pytest.raises(ConfigError) as ei:
        parse(text)
    err = ei.value
    assert [(p.key, p.line) for p in err.problems] == [
        ("tickTime", 1), ("clientPort", 3), ("forceSync", 4), ("server.1", 5), ("electionAlg", 6),
        ("server.2", 7), ("maxClientCnxns", 8), ("clientPort", 0),
    ]
    lines = str(err).splitlines()
    assert lines[0] == "8 problems"
    assert len(lines) == 9
    for p, text_line in zip(err.problems, lines[1:], strict=True):
        assert p.key is not None and p.key in text_line
        assert (f"line {p.line}: " in text_line) == (p.line != 0)
    assert (err.key, err.line) == ("tickTime", 1)  # the first problem, for single-error callers


def test_a_bad_value_is_not_also_reported_missing() -> None:
    assert problems("tickTime=x\ndataDir=\nclientPort=1\n") == [("tickTime", 1), ("dataDir", 2)]


def test_quorum_config_and_this_peers_client_port() -> None:
    text = HEAD + ("cnxTimeout=7000\nquorumListenOnAllIPs=true\nelectionAlg=3\n"
                   "server.1=a:2888:3888;2181\nserver.2=b:2888:3888;127.0.0.2:2182\nserver.3=c:2888:3888\n")
    cfg, _ = parse(text, myid="2\n")
    q = cfg.quorum
    assert q is not None and not cfg.standalone
    assert (q.my_id, q.init_limit, q.sync_limit, q.cnx_timeout_ms, q.quorum_listen_on_all_ips) == (2, 5, 2, 7000, True)
    assert q.standalone_enabled and q.election_alg == 3 and set(q.voters) == {1, 2, 3} and not q.observers
    assert (cfg.client_port, cfg.client_port_address, cfg.my_id) == (2182, "127.0.0.2", 2)
    # peer 3 has no client section: clientPort is then required, as in ZooKeeper
    assert problems(text, myid="3") == [("clientPort", 0)]
    cfg3, _ = parse(text + "clientPort=2183\n", myid="3")
    assert (cfg3.client_port, cfg3.client_port_address) == (2183, "0.0.0.0")


def test_client_port_conflicts_as_zookeeper() -> None:
    lines = HEAD + "server.1=a:1:2;2181\nserver.2=b:1:2;127.0.0.1:2182\n"
    assert parse(lines + "clientPort=2181\n", myid="1")[0].client_port == 2181
    assert problems(lines + "clientPort=2999\n", myid="1") == [("server.1", 5)]
    assert problems(lines + "clientPort=2182\nclientPortAddress=127.0.0.9\n", myid="2") == [("server.2", 6)]
    assert parse(lines + "clientPort=2182\nclientPortAddress=127.0.0.1\n", myid="2")[0].client_port == 2182
    # clientPortAddress alone is refused, as ZooKeeper does
    assert problems(lines + "clientPortAddress=127.0.0.1\n", myid="1") == [("clientPortAddress", 7)]


def test_observers_and_peer_type() -> None:
    text = HEAD + "server.1=a:1:2;2181\nserver.2=b:1:2;2182\nserver.3=c:1:2:observer;2183\n"
    cfg, warnings = parse(text + "peerType=observer\n", myid="3")
    assert cfg.peer_type == "observer" and cfg.quorum is not None and cfg.quorum.peer_type == "observer"
    assert set(cfg.quorum.observers) == {3} and warnings == []
    # the server list wins over peerType, with a warning naming the line
    cfg1, warnings1 = parse(text + "peerType=observer\n", myid="1")
    assert cfg1.peer_type == "participant" and warnings1 == [
        "line 8: peerType: observer does not match server.1's participant; using participant"]
    assert problems(text + "peerType=boss\n", myid="1") == [("peerType", 8)]


def test_observers_need_a_quorum() -> None:
    assert problems(HEAD + "clientPort=1\nserver.1=a:1:2:observer\n") == [("server.1", 6)]
    assert problems(HEAD + "clientPort=1\nserver.1=a:1:2\nserver.2=b:1:2:observer\n") == [("server.2", 7)]
    cfg, _ = parse(HEAD + "clientPort=1\nstandaloneEnabled=false\nserver.1=a:1:2\nserver.2=b:1:2:observer\n",
                   myid="1")
    assert cfg.quorum is not None and set(cfg.quorum.voters) == {1}


def test_standalone_rule() -> None:
    one = HEAD + "server.1=a:2888:3888;2181\n"
    cfg, _ = parse(one + "clientPort=2181\n")  # standalone needs no myid
    assert cfg.standalone and cfg.quorum is None and cfg.my_id == 0
    cfg, _ = parse(one, myid="1")
    assert cfg.standalone and cfg.quorum is None and cfg.client_port == 2181 and cfg.my_id == 0
    cfg, _ = parse(one + "standaloneEnabled=false\n", myid="1")
    assert not cfg.standalone and cfg.quorum is not None and cfg.quorum.my_id == 1
    assert problems("tickTime=1\ndataDir=/d\nclientPort=1\nstandaloneEnabled=false\n") == [("standaloneEnabled", 4)]
    assert problems(HEAD + "standaloneEnabled=sometimes\nclientPort=1\n") == [("standaloneEnabled", 5)]


def test_single_line_without_myid_needs_client_port() -> None:
    # ZooKeeper takes the client port from the server line only once it knows myid
    assert problems(HEAD + "server.1=a:2888:3888;2181\n") == [("clientPort", 0)]


def test_myid_handling() -> None:
    text = HEAD + "clientPort=2181\nserver.1=a:1:2\nserver.2=b:1:2\nserver.3=c:1:2\n"
    with pytest.raises(ConfigError) as ei:
        parse(text)
    assert ei.value.key == "myid" and "/d/myid is missing" in str(ei.value)
    for bad in ("one\n", "", "1.5", "-3"):
        with pytest.raises(ConfigError) as ei:
            parse(text, myid=bad)
        assert ei.value.key == "myid" and "/d/myid" in str(ei.value)
    with pytest.raises(ConfigError, match="myid 9 .*/d/myid.* is not among the server.N lines"):
        parse(text, myid="9\n")
    assert parse(text, myid=" 3 \n# trailing\n")[0].my_id == 3


def test_limits_are_required_with_several_voters() -> None:
    text = "tickTime=2000\ndataDir=/d\nclientPort=1\nserver.1=a:1:2\nserver.2=b:1:2\n"
    assert problems(text, myid="1") == [("initLimit", 0), ("syncLimit", 0)]
    assert problems(text + "initLimit=0\nsyncLimit=3\n", myid="1") == [("initLimit", 6)]
    # standalone ZooKeeper ignores them: so do we
    assert parse("tickTime=2000\ndataDir=/d\nclientPort=1\ninitLimit=0\n")[0].standalone


def test_hierarchical_quorums_are_refused_clearly() -> None:
    with pytest.raises(ConfigError) as ei:
        parse(HEAD + "clientPort=1\nserver.1=a:1:2\nserver.2=b:1:2\ngroup.1=1:2\nweight.1=1\n", myid="1")
    assert [(p.key, p.line) for p in ei.value.problems] == [("group.1", 8), ("weight.1", 9)]
    assert "hierarchical quorums" in str(ei.value) and "not supported" in str(ei.value)


def test_multi_address() -> None:
    text = HEAD + "clientPort=1\nserver.1=a:1:2|a2:3:4\nserver.2=b:1:2\n"
    assert problems(text, myid="1") == [("server.1", 6)]
    cfg, _ = parse(text + "multiAddress.enabled=true\nmultiAddress.reachabilityCheckTimeoutMs=10\n", myid="1")
    s = cfg.servers[1]
    assert (s.host, s.quorum_port, s.addresses) == ("a", 1, (("a", 1, 2), ("a2", 3, 4)))
    assert [k.key for k in cfg.ignored_keys] == ["multiAddress.reachabilityCheckTimeoutMs"]
    assert problems(text.replace("a2:3:4", "a2:3:4:observer") + "multiAddress.enabled=true\n",
                    myid="1") == [("server.1", 6)]


def test_ensemble_keys_are_accepted_and_java_keys_listed_once() -> None:
    text = HEAD + (
        "clientPort=2181\nserver.1=a:1:2\nserver.2=b:1:2\nserver.3=c:1:2\n"  # 5-8
        "syncEnabled=false\nreconfigEnabled=true\nquorumListenOnAllIPs=true\nconnectToLearnerMasterLimit=3\n"  # 9-12
        "admin.enableServer=false\nadmin.serverAddress=0.0.0.0\nadmin.serverPort=8080\n"  # 13-15
        "admin.commandURL=/commands\nserverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n"  # 16-17
        "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\nreadonlymode.enabled=true\n"
        "4lw.commands.whitelist=ruok\nsecureClientPort=2281\nssl.keyStore.location=/k.jks\n"  # 20-22
        "zookeeper.ssl.keyStore.password=pw\nmetricsProvider.className=x.Prometheus\nmetricsProvider.httpPort=7000\n"
        "quorum.auth.enableSasl=true\nquorum.auth.kerberos.servicePrincipal=zk/_HOST\nsomethingNew=1\n"  # 26-28
    )
    cfg, warnings = parse(text, myid="2")
    q = cfg.quorum
    assert q is not None and not q.sync_enabled and q.reconfig_enabled and q.quorum_listen_on_all_ips
    assert cfg.read_only_mode_enabled and cfg.fourlw_whitelist == {"ruok", "srvr", "isro"}
    assert cfg.secure_client_port == 2281
    assert cfg.ssl == {"ssl.keyStore.location": "/k.jks", "ssl.keyStore.password": "pw"}
    ignored = [(k.key, k.line) for k in cfg.ignored_keys]
    assert ignored == [
        ("admin.enableServer", 13), ("admin.serverAddress", 14), ("admin.serverPort", 15), ("admin.commandURL", 16),
        ("serverCnxnFactory", 17), ("authProvider.1", 18), ("secureClientPort", 21), ("ssl.keyStore.location", 22),
        ("zookeeper.ssl.keyStore.password", 23), ("metricsProvider.className", 24), ("metricsProvider.httpPort", 25),
        ("quorum.auth.enableSasl", 26), ("quorum.auth.kerberos.servicePrincipal", 27), ("somethingNew", 28),
    ]
    assert warnings == [str(k) for k in cfg.ignored_keys]  # each logged once, nothing else
    assert "unknown" in str(cfg.ignored_keys[-1])
    assert problems(text.replace("admin.serverPort=8080", "admin.serverPort=http"), myid="2") == [
        ("admin.serverPort", 15)]


def test_election_alg_only_3() -> None:
    with pytest.raises(ConfigError) as ei:
        parse(HEAD + "clientPort=1\nelectionAlg=0\n")
    assert (ei.value.key, ei.value.line) == ("electionAlg", 6) and "only 3" in str(ei.value)


def test_dynamic_config_file() -> None:
    static = HEAD + "clientPort=2181\ndynamicConfigFile=conf/zoo.cfg.dynamic.100000000\n"
    dynamic = "server.1=a:1:2;2181\nserver.2=b:1:2;2182\nserver.3=c:1:2;2183\n"
    cfg, warnings = parse(static, myid="1", dynamic=dynamic)
    assert cfg.quorum is not None and set(cfg.quorum.servers) == {1, 2, 3}
    assert cfg.quorum.dynamic_config_file == "/w/conf/zoo.cfg.dynamic.100000000"
    assert any("dynamicConfigFile" in w for w in warnings)
    with pytest.raises(ConfigError) as ei:
        parse(static + "server.4=d:1:2\n", myid="1", dynamic=dynamic + "tickTime=1\nversion=1\n")
    assert [(p.key, p.line, p.source) for p in ei.value.problems] == [
        ("server.4", 7, None),
        ("tickTime", 4, "/w/conf/zoo.cfg.dynamic.100000000"),
        ("version", 5, "/w/conf/zoo.cfg.dynamic.100000000"),
    ]
    assert "/w/conf/zoo.cfg.dynamic.100000000: line 4: tickTime: not allowed" in str(ei.value)
    assert problems(static, myid="1") == [("dynamicConfigFile", 6)]


def test_load_config_reads_myid_and_dynamic_file_relative_to_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "myid").write_text("2\n")
    (tmp_path / "zoo.cfg.dynamic").write_text("server.1=a:1:2;2181\nserver.2=b:1:2;2182\nserver.3=c:1:2\n")
    cfg_path = tmp_path / "conf" / "zoo.cfg"
    cfg_path.parent.mkdir()
    cfg_path.write_text("tickTime=2000\ndataDir=data\ninitLimit=5\nsyncLimit=2\ndynamicConfigFile=zoo.cfg.dynamic\n")
    cfg, _ = load_config(cfg_path, cwd=str(tmp_path))
    assert cfg.data_dir == str(tmp_path / "data")  # the working directory, not the file's
    assert cfg.quorum is not None and cfg.quorum.my_id == 2 and cfg.client_port == 2182
    (tmp_path / "zoo.cfg.dynamic").unlink()
    with pytest.raises(ConfigError) as ei:
        load_config(cfg_path, cwd=str(tmp_path))
    assert (ei.value.key, ei.value.line) == ("dynamicConfigFile", 5) and "cannot read" in str(ei.value)


def test_every_row_sets_a_real_field_with_a_default() -> None:
    names = [k.name for k in KEYS]
    assert len(names) == len(set(names))
    fields = set(ServerConfig.__dataclass_fields__)
    for row in KEYS:
        assert row.field is None or row.field in fields, row
        assert row.kind in ("applies", "ensemble", "ignored")
        if row.field is not None and not row.prefix:
            assert default_of(row) == getattr(ServerConfig(), row.field)


@given(st.lists(st.sampled_from([
    "tickTime=x", "clientPort=-1", "forceSync=perhaps", "server.1=h", "electionAlg=2", "peerType=boss",
    "maxClientCnxns=z", "snapCount=1", "jute.maxbuffer=1", "superDigest=x", "admin.serverPort=p",
]), min_size=1, max_size=8))
def test_every_bad_line_is_one_problem(bad: list[str]) -> None:
    text = "tickTime=2000\ndataDir=/d\nclientPort=2181\n" + "".join(f"{b}\n" for b in bad)
    with pytest.raises(ConfigError) as ei:
        parse(text)
    found = [p.line for p in ei.value.problems if p.line]
    # duplicate keys are all parsed (the last value wins, as java.util.Properties)
    assert found == list(range(4, 4 + len(bad)))


def _free_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def test_cli_runs_a_valid_ensemble_peer_and_logs_ignored_keys_once(tmp_path: Path) -> None:
    import signal

    (tmp_path / "myid").write_text("1\n")
    cfg = tmp_path / "zoo.cfg"
    c1, c2, q1, q2, e1, e2 = _free_ports(6)
    cfg.write_text(f"tickTime=2000\ndataDir={tmp_path}\ninitLimit=5\nsyncLimit=2\nadmin.serverPort=8080\n"
                   f"server.1=127.0.0.1:{q1}:{e1};127.0.0.1:{c1}\nserver.2=127.0.0.1:{q2}:{e2};127.0.0.1:{c2}\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "trio_quorum", "serve", str(cfg)], stderr=subprocess.PIPE,
                            text=True, env=env)
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        # A peer alone cannot form a quorum: it binds its client port and looks for a leader.
        for line in proc.stderr:
            lines.append(line)
            if f"binding to port 127.0.0.1:{c1}" in line:
                break
        assert proc.poll() is None, "".join(lines)
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = "".join(lines) + rest
    assert proc.returncode == 0, log
    assert log.count("admin.serverPort") == 1  # the ignored key, logged once
    # an invalid ensemble config is a config error (exit 2)
    cfg.write_text(cfg.read_text() + "server.3=127.0.0.1:2890\n")
    res = subprocess.run([sys.executable, "-m", "trio_quorum", "serve", str(cfg)], capture_output=True, text=True,
                         env=env, timeout=60, check=False)
    assert res.returncode == 2 and "invalid configuration: line 8: server.3" in res.stderr


def test_every_key_is_documented() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    for row in KEYS:
        shown = row.name + ("N" if row.index or row.name in ("group.", "weight.") else "*" if row.prefix else "")
        assert f"`{shown}`" in doc, f"{shown} missing from docs/configuration.md"
