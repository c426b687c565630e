"""Read-only mode, differential: Apache ZooKeeper 3.8 and trio-quorum, 3 voters, 2 of them killed.

The same scenario on both kinds, with read-only mode switched on the way
each reads it: ZooKeeper's ``-Dreadonlymode.enabled=true`` system property
(plus ``localSessionsEnabled=true`` and its upgrading, for the ephemeral: without it ZooKeeper 3.8.0 answers a new
read-only session's createSession with a bare NOTREADONLY header that no
client parses, see ``trio_quorum/server/readonly.py``), trio-quorum's
``TRIO_QUORUM_READONLYMODE=true`` environment (the property's equivalent).

1. A znode is written and a client with an ephemeral (a global session) is
   left open; the leader and one follower are SIGKILLed.
2. The survivor first does not serve (``srvr`` "not currently serving",
   ``isro`` ``null``), then, no sooner than ZooKeeper's 2 s grace, serves
   read-only: ``isro`` ``ro``, ``srvr`` Mode read-only with the READ-ONLY line,
   ``mntr`` zk_server_state read-only without the quorum rows, ``conf``
   without membership.
3. A non-read-only ConnectRequest is refused (closed, no answer); a
   reconnect with the global session is refused too; a read-only one gets a
   ConnectResponse with readOnly set, its reads are answered and its writes
   NOTREADONLY (per xid, the same codes on both kinds; in request order here).
4. kazoo ``read_only=True`` on all three hosts: CONNECTED_RO, reads the
   znode, NotReadOnlyCallError for create / set / sync; its session is local
   (``mntr`` local 1, ``dump`` "Local Session Sets", and the survivor's Zxid
   did not move).
5. The killed peers restart: the client ends up CONNECTED read-write (a new
   session: the read-only one was local, the new server says expired), writes.

Every wait is bounded (polls of four-letter words, kazoo timeouts).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NotReadOnlyCallError
from kazoo.retry import KazooRetry

from tests.support.ensemble import Ensemble, Kind, four_letter_word, require_ensemble
from tests.support.wire import WireClient
from trio_quorum.protocol import records as p
from trio_quorum.protocol.consts import Err, OpCode
from trio_quorum.protocol.data import OPEN_ACL_UNSAFE

KINDS = [
    pytest.param("zookeeper", marks=pytest.mark.zookeeper, id="zookeeper"),
    pytest.param("trio-quorum", id="trio-quorum"),
]
NOT_SERVING = "This ZooKeeper instance is not currently serving requests\n"
#: ZooKeeper's grace before a LOOKING peer serves read-only (max(2000 ms, tickTime)).
GRACE = 2.0


def _ensemble(kind: Kind, root: Path, monkeypatch: pytest.MonkeyPatch) -> Ensemble:
    if kind == "zookeeper":
        return Ensemble(root, kind=kind, size=3, java_opts=("-Dreadonlymode.enabled=true",),
                        extra_cfg={"localSessionsEnabled": "true", "localSessionsUpgradingEnabled": "true"})
    monkeypatch.setenv("TRIO_QUORUM_READONLYMODE", "true")
    return Ensemble(root, kind=kind, size=3)


def _fourlw(port: int, word: str) -> str:
    try:
        return four_letter_word(port, word)
    except OSError as exc:
        return f"<{exc}>"


def _mntr(port: int) -> dict[str, str]:
    return dict(line.split("\t", 1) for line in _fourlw(port, "mntr").splitlines() if "\t" in line)


@pytest.mark.parametrize("kind", KINDS)
def test_read_only_survivor(kind: Kind, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_ensemble(kind)
    with _ensemble(kind, tmp_path, monkeypatch) as ens:
        leader = ens.wait_serving(60)
        survivor = next(s for s in ens.participants if s != leader)
        port = ens.client_port(survivor)
        writer = KazooClient(hosts=ens.connect_string([leader]), timeout=10.0)
        writer.start(timeout=30)
        writer.create("/ro", b"data")
        writer.create("/ro/eph", b"", ephemeral=True)  # makes the session global on both kinds
        global_id, global_pw = writer.client_id
        for s in ens.sids:
            if s != survivor:
                ens.kill(s)
        killed_at = time.monotonic()
        writer.stop()  # its session stays in the survivor's tree (no quorum to close it)
        writer.close()

        # 2. not serving, then read-only after the grace.
        seen: list[str] = []
        deadline = killed_at + 30
        while True:
            answer = _fourlw(port, "isro")
            if not seen or seen[-1] != answer:
                seen.append(answer)
                if answer == "null":  # LOOKING, not serving (unless read-only began in between)
                    srvr = _fourlw(port, "srvr")
                    assert srvr == NOT_SERVING or "Mode: read-only" in srvr, srvr
            if answer == "ro":
                break
            assert time.monotonic() < deadline, f"{kind}: never read-only: {seen}\n{ens.logs(survivor)[-3000:]}"
            time.sleep(0.05)
        assert time.monotonic() - killed_at >= GRACE * 0.95, seen
        assert "null" in seen, seen
        srvr = _fourlw(port, "srvr")
        assert "READ-ONLY mode; serving only read-only clients\n" in srvr and "\nMode: read-only\n" in srvr
        mntr = _mntr(port)
        assert mntr["zk_server_state"] == "read-only"
        assert "zk_peer_state" not in mntr and "zk_quorum_size" not in mntr and "zk_learners" not in mntr
        conf = _fourlw(port, "conf")
        assert conf.endswith("\npeerType=0\n") and "membership" not in conf
        zxid_before = srvr.split("Zxid: ")[1].split("\n")[0]

        # 3. the handshake rules and the read-only chain on the wire.
        refused = WireClient(port)
        with pytest.raises((EOFError, ConnectionError)):
            refused.connect(read_only=False)
        refused.close()
        old = WireClient(port)
        old.sock.sendall(p.encode_connect_request(0, 0, 30000, global_id, global_pw, True))
        with pytest.raises((EOFError, ConnectionError)):
            old.recv_payload()
        old.close()
        wire = WireClient(port)
        resp = wire.connect(read_only=True)
        assert resp.read_only is True and resp.session_id != 0 and resp.timeout > 0
        script = [
            (OpCode.getData, p.GetDataRequest("/ro", False)),
            (OpCode.create, p.CreateRequest("/ro/new", b"", OPEN_ACL_UNSAFE, 0)),
            (OpCode.exists, p.ExistsRequest("/ro/missing", False)),
            (OpCode.setData, p.SetDataRequest("/ro", b"x", -1)),
            (OpCode.getChildren, p.GetChildrenRequest("/ro", False)),
        ]
        wire.sock.sendall(b"".join(p.encode_request(i + 1, op, rec) for i, (op, rec) in enumerate(script)))
        replies = [p.decode_reply_header(wire.recv_payload()) for _ in script]
        by_xid = {r.xid: r.err for r in replies}
        assert by_xid == {1: 0, 2: Err.NOTREADONLY, 3: Err.NONODE, 4: Err.NOTREADONLY, 5: 0}
        if kind == "trio-quorum":  # ZooKeeper's read-only processor may answer a write ahead of a read
            assert [r.xid for r in replies] == [1, 2, 3, 4, 5]
        wire.xid = len(script)
        hdr, _ = wire.call(OpCode.closeSession)  # a local session closes here, without a txn
        assert hdr.err == 0
        with pytest.raises((EOFError, ConnectionError)):
            wire.recv_payload()
        wire.close()

        # 4. kazoo read-only.
        states: list[str] = []
        lock = threading.Lock()
        ro = KazooClient(hosts=ens.connect_string(), read_only=True, timeout=10.0,
                         connection_retry=KazooRetry(max_tries=-1, delay=0.05, backoff=1.5, max_delay=0.5))

        def listener(state: object) -> None:
            with lock:
                states.append(str(state))

        ro.add_listener(listener)
        ro.start(timeout=30)
        try:
            assert ro.client_state == "CONNECTED_RO"
            ro_session = ro.client_id[0]
            assert ro_session >> 56 == survivor  # a local session id of this server
            assert ro.get("/ro")[0] == b"data"
            assert sorted(ro.get_children("/")) == ["ro", "zookeeper"]
            for call in (lambda: ro.create("/ro/w", b""), lambda: ro.set("/ro", b"y"), lambda: ro.sync("/ro")):
                with pytest.raises(NotReadOnlyCallError):
                    call()
            mntr = _mntr(port)
            assert mntr["zk_local_sessions"] == "1", mntr
            dump = _fourlw(port, "dump")
            assert dump.startswith("SessionTracker dump:\nLocal Session Sets (") and f"\t0x{ro_session:x}\n" in dump
            assert f"0x{global_id:x}\t" in dump.split("Global Sessions(")[1]
            assert _fourlw(port, "srvr").split("Zxid: ")[1].split("\n")[0] == zxid_before  # no txn, no zxid

            # 5. the quorum comes back: read-write again (a new session), writes work.
            for s in ens.sids:
                if s != survivor:
                    ens.start_peer(s)
            ens.wait_serving(60)
            deadline = time.monotonic() + 30
            while ro.client_state != "CONNECTED":
                assert time.monotonic() < deadline, f"{kind}: client still {ro.client_state}; states {states}"
                time.sleep(0.05)
            assert ro.client_id[0] != ro_session
            ro.create("/ro/after", b"rw")
            assert ro.get("/ro/after")[0] == b"rw"
            assert _fourlw(port, "isro") == "rw"
            with lock:
                assert "LOST" in states, states  # the local session is unknown to the read-write servers
        finally:
            ro.stop()
            ro.close()
