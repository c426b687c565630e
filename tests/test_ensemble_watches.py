"""Watches across failover: set through one peer, fired by a write through another.

One three-peer ensemble per ``kind`` (Apache ZooKeeper 3.8 is the reference),
one watching kazoo session ``W`` (all peers in its connect string, a follower
first) and writers connected to other peers only.

kazoo 2.11 does not re-register one-shot watches on reconnect (it sends no
``SetWatches``): when its connection drops it delivers a ``NONE`` event
(state ``CONNECTING``) to every watch and forgets them; its recipes re-arm
after reconnecting.  So a one-shot watch set before a failover gets exactly
one event: the change, if W's connection survived, or ``NONE``.  (The Java
client re-registers with ``SetWatches``: ``tests/test_ensemble_zkcli.py``
checks that path across a failover.)

1. no failure: a data watch, a child watch and an exists watch set through
   W's peer fire (NodeDataChanged, NodeChildrenChanged, NodeCreated) after
   writes through another peer;
2. the leader SIGKILLed after watches were set: each gets exactly one event
   (the change or ``NONE``); watches set again after the failover fire on
   writes through the new leader (ZooKeeper's follower dropped W when its
   leader went; trio-quorum's may keep it);
3. the peer W is connected to SIGKILLed and writes made at once through
   another peer: W's watches get ``NONE``; set again once W reconnected, they
   fire on the next writes.

A kazoo ``DataWatch`` on W (re-armed by kazoo after every event and every
reconnect) follows a node written in each phase, the third while W was
disconnected, and ends on its last value.  W keeps one session throughout.
Every wait is bounded (``WATCH_BOUND``, kazoo retries, srvr polls).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.protocol.states import EventType, WatchedEvent
from kazoo.recipe.watchers import DataWatch

from tests.support.ensemble import Ensemble, Kind, kazoo_client, op_retry, require_ensemble

KINDS = [
    pytest.param("zookeeper", marks=pytest.mark.zookeeper, id="zookeeper"),
    pytest.param("trio-quorum", id="trio-quorum"),
]

START_TIMEOUT = 60.0
FAILOVER_BOUND = 15.0
SESSION_TIMEOUT = 10.0
#: A watch fires this long after the write that triggers it, failover included.
WATCH_BOUND = 15.0


class Fired:
    """A one-shot watch callback: the events it got, with a bounded wait for the first."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.got: list[WatchedEvent] = []

    def __call__(self, event: WatchedEvent) -> None:  # kazoo's event thread
        self.got.append(event)
        self._event.set()

    def wait(self, type_: str, path: str, *, or_connection_loss: bool = False) -> str:
        """Wait for the event; it must be ``(type_, path)`` — or kazoo's ``NONE`` when
        ``or_connection_loss``.  Return its type."""
        assert self._event.wait(WATCH_BOUND), f"no {type_} watch event on {path} within {WATCH_BOUND}s"
        got = [(e.type, e.path) for e in self.got]
        allowed = [[(type_, path)]] + ([[(EventType.NONE, None)]] if or_connection_loss else [])
        assert got in allowed, self.got
        return got[0][0]


class Values:
    """What a kazoo ``DataWatch`` saw, with a bounded wait for a given value."""

    def __init__(self) -> None:
        self.seen: list[bytes | None] = []
        self._cv = threading.Condition()

    def __call__(self, data: bytes | None, _stat: object) -> None:
        with self._cv:
            self.seen.append(data)
            self._cv.notify_all()

    def wait_for(self, value: bytes) -> None:
        with self._cv:
            ok = self._cv.wait_for(lambda: bool(self.seen) and self.seen[-1] == value, WATCH_BOUND)
            assert ok, f"DataWatch saw {self.seen}, not {value!r} last"


def _arm(w: KazooClient, tag: str) -> dict[str, Fired]:
    """Set a data watch on /w, a child watch on /c and an exists watch on /x-<tag> through ``w``."""
    fired = {"data": Fired(), "child": Fired(), "exists": Fired()}
    w.get("/w", watch=fired["data"])
    w.get_children("/c", watch=fired["child"])
    assert w.exists(f"/x-{tag}", watch=fired["exists"]) is None
    return fired


def _trigger(writer: KazooClient, tag: str) -> None:
    retry = op_retry(FAILOVER_BOUND)
    retry(writer.set, "/w", tag.encode())
    retry(writer.create, f"/c/{tag}", b"")
    retry(writer.create, f"/x-{tag}", b"")
    retry(writer.set, "/dw", tag.encode())


def _check(fired: dict[str, Fired], tag: str, *, or_connection_loss: bool = False) -> set[str]:
    """Each watch got its one event; return the set of event types seen."""
    return {
        fired["data"].wait(EventType.CHANGED, "/w", or_connection_loss=or_connection_loss),
        fired["child"].wait(EventType.CHILD, "/c", or_connection_loss=or_connection_loss),
        fired["exists"].wait(EventType.CREATED, f"/x-{tag}", or_connection_loss=or_connection_loss),
    }


@pytest.mark.parametrize("kind", KINDS)
def test_watches_fire_across_leader_and_connected_peer_failover(tmp_path: Path, kind: Kind) -> None:
    require_ensemble(kind)
    with Ensemble(tmp_path / kind, kind=kind, size=3, start_timeout=START_TIMEOUT) as ens:
        leader = ens.wait_serving(START_TIMEOUT)
        f1, f2 = (s for s in ens.sids if s != leader)
        values = Values()
        with kazoo_client(
            ens.connect_string([f1, leader, f2]), timeout=SESSION_TIMEOUT, randomize=False
        ) as w:
            session = w.client_id[0]
            assert ens.session_peer(session) == f1
            w.create("/w", b"")
            w.create("/c", b"")
            w.create("/dw", b"")
            w.sync("/")
            DataWatch(w, "/dw", values)

            with kazoo_client(ens.connect_string([f2]), timeout=SESSION_TIMEOUT) as writer:
                # 1. no failure: set through f1, written through f2
                fired = _arm(w, "one")
                _trigger(writer, "one")
                assert _check(fired, "one") == {EventType.CHANGED, EventType.CHILD, EventType.CREATED}
                values.wait_for(b"one")

                # 2. the leader killed between setting watches and the writes
                fired = _arm(w, "two")
                ens.kill(leader)
                ens.wait_leader(FAILOVER_BOUND, exclude=(leader,))
                _trigger(writer, "two")
                types = _check(fired, "two", or_connection_loss=True)
                if kind == "zookeeper":  # its follower dropped W when the leader went
                    assert types == {EventType.NONE}
                values.wait_for(b"two")
                op_retry(FAILOVER_BOUND)(w.sync, "/")
                fired = _arm(w, "two-again")  # set after the failover, through W's peer
                _trigger(writer, "two-again")
                assert _check(fired, "two-again") == {EventType.CHANGED, EventType.CHILD, EventType.CREATED}
                values.wait_for(b"two-again")

            # 3. W's own peer killed, the writes made while W reconnects
            ens.start_peer(leader)
            ens.wait_serving(START_TIMEOUT)
            op_retry(FAILOVER_BOUND)(w.sync, "/")
            fired = _arm(w, "three")
            connected = ens.session_peer(session)
            assert connected is not None
            others = [s for s in ens.sids if s != connected]
            with kazoo_client(ens.connect_string(others), timeout=SESSION_TIMEOUT) as writer:
                ens.kill(connected)
                _trigger(writer, "three")
                assert _check(fired, "three", or_connection_loss=True) == {EventType.NONE}
                values.wait_for(b"three")  # written while W was away: read after reconnecting
                op_retry(FAILOVER_BOUND)(w.sync, "/")
                fired = _arm(w, "three-again")
                _trigger(writer, "three-again")
                assert _check(fired, "three-again") == {EventType.CHANGED, EventType.CHILD, EventType.CREATED}
                values.wait_for(b"three-again")

            assert w.client_id[0] == session
            assert ens.session_peer(session) in others
            # the DataWatch saw the values in write order (it may read one more than once, or
            # skip one a later write overtook: kazoo reads the node when it fires)
            order = [b"", b"one", b"two", b"two-again", b"three", b"three-again"]
            distinct = [v for i, v in enumerate(values.seen) if i == 0 or v != values.seen[i - 1]]
            assert distinct[0] == b"" and distinct[-1] == b"three-again", values.seen
            assert distinct == sorted(distinct, key=order.index), values.seen
