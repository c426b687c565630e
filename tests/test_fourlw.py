"""Four-letter word formatting against ZooKeeper 3.8.0's exact layouts (captured from Debian's 3.8.0)."""

from __future__ import annotations

from trio_quorum.config import ALL_4LW, parse_config
from trio_quorum.server.fourlw import run_command
from trio_quorum.server.stats import ConnStats, ServerStats


class Conn:
    def __init__(self, sid: int) -> None:
        self.remote = ("127.0.0.1", 60172)
        self.session_id = sid
        self.session_timeout = 10000
        self.established_ms = 1795323828753
        self.stats = ConnStats()
        self.outstanding = 0
        self.interest_ops = 1


class View:
    mode = "standalone"
    serving = True

    def __init__(self, whitelist: str = "*") -> None:
        self.config, _ = parse_config(
            f"tickTime=2000\ndataDir=/tmp/refzk/data\nclientPort=21819\n4lw.commands.whitelist={whitelist}\n",
            cwd="/")
        self.stats = ServerStats()
        self.conns = [Conn(0x100000A38C20000)]

    def connections(self): return self.conns
    def last_zxid(self): return 3
    def node_count(self): return 7
    def approximate_data_size(self): return 44
    def ephemerals(self): return {0x100000A38C20000: ["/a"]}
    def session_buckets(self): return {4000: [0x100000A38C20000]}
    def session_count(self): return 1
    def watches_by_session(self): return {0x100000A38C20000: ["/a", "/b"]}
    def watch_count(self): return 2
    def dir_sizes(self): return (457, 457)
    def environment(self): return [("zookeeper.version", "3.8.0-x"), ("host.name", "localhost")]
    def now_ms(self): return 0
    def wall_ms(self): return 0
    def uptime_ms(self): return 5
    def fd_counts(self): return (38, 20000)


def test_whitelist_refusal_and_default() -> None:
    v = View(whitelist="srvr")
    assert run_command("ruok", v) == "ruok is not executed because it is not in the whitelist.\n"
    assert run_command("srvr", v).startswith("Zookeeper version: ")
    assert View().config.fourlw_whitelist == ALL_4LW


def test_srvr_stat_layout() -> None:
    v = View()
    v.stats.update_latency(0)
    v.stats.update_latency(12)
    v.stats.packets_received, v.stats.packets_sent = 7, 7
    srvr = run_command("srvr", v)
    assert srvr.split("\n")[1:] == [
        "Latency min/avg/max: 0/6.0/12", "Received: 7", "Sent: 7", "Connections: 1", "Outstanding: 0",
        "Zxid: 0x3", "Mode: standalone", "Node count: 7", ""]
    stat = run_command("stat", v)
    assert "\nClients:\n /127.0.0.1:60172[1](queued=0,recved=0,sent=0)\n\nLatency" in stat


def test_cons_wchs_wchc_wchp_conf_dirs() -> None:
    v = View()
    v.conns[0].stats.update_for_response(5, 3, 3, 100, 103)
    cons = run_command("cons", v)
    assert cons.startswith(" /127.0.0.1:60172[1](queued=0,recved=0,sent=0,sid=0x100000a38c20000,lop=EXIS,"
                           "est=1795323828753,to=10000,lcxid=0x5,lzxid=0x3,lresp=103,llat=3,")
    assert cons.endswith(")\n\n")
    assert run_command("wchs", v) == "1 connections watching 2 paths\nTotal watches:2\n"
    assert run_command("wchc", v) == "0x100000a38c20000\n\t/a\n\t/b\n\n"
    assert run_command("wchp", v) == "/a\n\t0x100000a38c20000\n/b\n\t0x100000a38c20000\n\n"
    assert run_command("conf", v).startswith(
        "clientPort=21819\nsecureClientPort=-1\ndataDir=/tmp/refzk/data/version-2\ndataDirSize=457\n")
    assert run_command("dirs", v) == "datadir_size: 457\nlogdir_size: 457\n"
    dump = run_command("dump", v)
    assert dump.startswith("SessionTracker dump:\nSession Sets (1)/(1):\n1 expire at Thu Jan 01 00:00:04 UTC 1970:\n"
                           "\t0x100000a38c20000\nephemeral nodes dump:\nSessions with Ephemerals (1):\n"
                           "0x100000a38c20000:\n\t/a\nConnections dump:\n")


def test_resets_and_mntr() -> None:
    v = View()
    v.stats.packets_received = 9
    v.conns[0].stats.packets_received = 4
    assert run_command("srst", v) == "Server stats reset.\n" and v.stats.packets_received == 0
    assert run_command("crst", v) == "Connection stats reset.\n" and v.conns[0].stats.packets_received == 0
    mntr = dict(line.split("\t") for line in run_command("mntr", v).splitlines())
    assert mntr["zk_server_state"] == "standalone" and mntr["zk_znode_count"] == "7"
    assert mntr["zk_ephemerals_count"] == "1" and mntr["zk_watch_count"] == "2"
    assert run_command("ruok", v) == "imok" and run_command("isro", v) == "rw"
    assert run_command("envi", v) == "Environment:\nzookeeper.version=3.8.0-x\nhost.name=localhost\n"
