"""zoo.cfg parsing: keys, defaults, quorum lines, errors that name key and line."""

from __future__ import annotations

import pytest

from trio_quorum.config import ALL_4LW, ConfigError, default_config, parse_config, parse_properties

BASE = "tickTime=2000\ndataDir=/var/zk\nclientPort=2181\n"


def parse(text: str, myid: str | None = None):
    return parse_config(text, cwd="/home/u", myid_text=myid)


def test_properties_syntax() -> None:
    props = parse_properties("# c\n! c\n a = 1 \nb:2\nc 3\nd=x\\\n  y\n\ne=\n")
    assert props == [(3, "a", "1"), (4, "b", "2"), (5, "c", "3"), (6, "d", "xy"), (9, "e", "")]


def test_minimal_standalone_defaults() -> None:
    cfg, warnings = parse(BASE)
    assert warnings == []
    assert cfg.standalone
    assert (cfg.tick_time, cfg.data_dir, cfg.data_log_dir, cfg.client_port) == (2000, "/var/zk", "/var/zk", 2181)
    assert cfg.client_port_address == "0.0.0.0"
    assert cfg.max_client_cnxns == 60
    assert (cfg.effective_min_session_timeout, cfg.effective_max_session_timeout) == (4000, 40000)
    assert cfg.clamp_session_timeout(1000) == 4000
    assert cfg.clamp_session_timeout(10_000) == 10_000
    assert cfg.clamp_session_timeout(10**9) == 40000
    assert cfg.fourlw_whitelist == {"srvr"}
    assert cfg.snap_count == 100_000 and cfg.snap_retain_count == 3 and cfg.purge_interval_hours == 0
    assert cfg.force_sync and not cfg.extended_types_enabled and cfg.jute_max_buffer == 0xFFFFF


def test_relative_paths_resolve_against_cwd() -> None:
    cfg, _ = parse("tickTime=2000\ndataDir=data\ndataLogDir=../logs\nclientPort=1\n")
    assert cfg.data_dir == "/home/u/data"
    assert cfg.data_log_dir == "/home/logs"


def test_many_keys_and_zookeeper_prefix() -> None:
    text = BASE + (
        "clientPortAddress=127.0.0.1\nmaxClientCnxns=5\nminSessionTimeout=1000\nmaxSessionTimeout=9000\n"
        "snapCount=50\nautopurge.snapRetainCount=1\nautopurge.purgeInterval=2\nforceSync=no\n"
        "4lw.commands.whitelist=stat, ruok,conf\nglobalOutstandingLimit=7\nzookeeper.jute.maxbuffer=2048\n"
        "zookeeper.extendedTypesEnabled=true\nreadonlymode.enabled=true\npreAllocSize=1024\n"
        "DigestAuthenticationProvider.superDigest=super:abc=\nelectionAlg=3\n"
    )
    cfg, warnings = parse(text)
    assert cfg.client_port_address == "127.0.0.1" and cfg.max_client_cnxns == 5
    assert cfg.clamp_session_timeout(500) == 1000 and cfg.clamp_session_timeout(20_000) == 9000
    assert cfg.snap_count == 50 and cfg.snap_retain_count == 3 and cfg.purge_interval_hours == 2
    assert any("snapRetainCount" in w for w in warnings)
    assert not cfg.force_sync
    assert cfg.fourlw_whitelist == {"stat", "ruok", "conf", "srvr", "isro"}
    assert cfg.global_outstanding_limit == 7 and cfg.jute_max_buffer == 2048
    assert cfg.extended_types_enabled and cfg.read_only_mode_enabled
    assert cfg.super_digest == "super:abc=" and cfg.pre_alloc_size_kb == 1024


def test_whitelist_star() -> None:
    cfg, _ = parse(BASE + "4lw.commands.whitelist=*\n")
    assert cfg.fourlw_whitelist == ALL_4LW


def test_java_only_and_unknown_keys_warn() -> None:
    cfg, warnings = parse(BASE + "serverCnxnFactory=x\nadmin.serverPort=8080\nssl.keyStore.location=/k\nauthProvider.1=x\nmetricsProvider.className=x\nfoo=bar\n")
    assert len(warnings) == 6
    assert any(w.startswith("line 4: serverCnxnFactory") for w in warnings)
    assert any("line 9: foo" in w and "unknown" in w for w in warnings)


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ("tickTime=abc\ndataDir=/d\nclientPort=1\n", "tickTime", 1),
        (BASE + "clientPort=70000\n", "clientPort", 4),
        (BASE + "maxClientCnxns=-3\n", "maxClientCnxns", 4),
        (BASE + "forceSync=perhaps\n", "forceSync", 4),
        (BASE + "peerType=boss\n", "peerType", 4),
        (BASE + "electionAlg=1\n", "electionAlg", 4),
        (BASE + "server.x=h:1:2\n", "server.x", 4),
        (BASE + "server.1=h:1\n", "server.1", 4),
        (BASE + "server.1=h:1:2:king\n", "server.1", 4),
        (BASE + "superDigest=nocolon\n", "superDigest", 4),
        (BASE + "minSessionTimeout=50000\n", "minSessionTimeout", 4),
        ("dataDir=/d\nclientPort=1\n", "tickTime", 0),
        ("tickTime=1\nclientPort=1\n", "dataDir", 0),
        ("tickTime=1\ndataDir=/d\n", "clientPort", 0),
    ],
)
def test_errors_name_key_and_line(text: str, key: str, line: int) -> None:
    with pytest.raises(ConfigError) as ei:
        parse(text)
    assert ei.value.key == key
    assert ei.value.line == line
    assert key in str(ei.value)
    if line:
        assert f"line {line}" in str(ei.value)


QUORUM = (
    "tickTime=2000\ndataDir=/d\ninitLimit=5\nsyncLimit=2\n"
    "server.1=127.0.0.1:2888:3888;2181\nserver.2=127.0.0.1:2889:3889:participant;127.0.0.1:2182\n"
    "server.3=[::1]:2890:3890:observer;2183\n"
)


def test_quorum_lines() -> None:
    cfg, _ = parse(QUORUM, myid="2\n")
    assert not cfg.standalone
    assert cfg.my_id == 2 and cfg.client_port == 2182 and cfg.client_port_address == "127.0.0.1"
    s3 = cfg.servers[3]
    assert (s3.host, s3.quorum_port, s3.election_port, s3.role, s3.client_port) == ("::1", 2890, 3890, "observer", 2183)
    cfg3, _ = parse(QUORUM, myid="3")
    assert cfg3.peer_type == "observer"


def test_quorum_errors() -> None:
    with pytest.raises(ConfigError, match="myid"):
        parse(QUORUM)
    with pytest.raises(ConfigError, match="not among"):
        parse(QUORUM, myid="9")
    with pytest.raises(ConfigError, match="initLimit"):
        parse(QUORUM.replace("initLimit=5\n", ""), myid="1")
    with pytest.raises(ConfigError) as ei:
        parse(QUORUM + "server.1=h:1:2\n", myid="1")
    assert ei.value.line == 8 and "duplicate" in str(ei.value)


def test_single_server_line_is_standalone() -> None:
    cfg, _ = parse("tickTime=2000\ndataDir=/d\ninitLimit=5\nsyncLimit=2\nserver.1=127.0.0.1:2888:3888;2181\n", myid="1")
    assert cfg.standalone and cfg.client_port == 2181


def test_default_config() -> None:
    cfg = default_config("/w")
    assert (cfg.client_port_address, cfg.client_port, cfg.data_dir, cfg.tick_time) == (
        "127.0.0.1", 2181, "/w/trio-quorum-data", 2000)
    assert cfg.standalone
