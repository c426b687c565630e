"""A deterministic whole-ensemble simulation: N real peers in one ``trio.run``.

Every peer is a real :class:`~trio_quorum.server.peer.Peer` (election,
quorum links, the role loop, the chains) on a :class:`MemStore` and a
:class:`MemoryNetwork` endpoint, under ``MockClock(autojump_threshold=0)``:
timeouts, ticks and link delays take no real time, and a seed fixes the
run.  Clients are :class:`~.client.SimClient` (no sockets).

Faults: :meth:`Sim.crash` (a power cut: the run scope cancelled at once,
unsynced writes lost, links reset), :meth:`Sim.restart` (a new ``Peer`` on the
same store), :meth:`Sim.partition` / :meth:`Sim.heal` (silent cuts), and per
link drop/delay on the election links (``sim.net.faults(election_name(a),
election_name(b))``: each peer's election links use their own endpoint name,
``peer-N:election``, so loss never touches the ZAB links, which assume FIFO
and reliable delivery).

What the harness records (``sim.trace``): every role a peer established
(``LEADING``/``FOLLOWING``/``OBSERVING`` with its epoch and mock time), every
role subtree start and end (lifecycle events), crashes and restarts,
acknowledged writes, and ZAB packets of interest seen on the wire (DIFF,
TRUNC, SNAP) from a tap on the quorum links.

Invariants (:meth:`Sim.check_invariants`, run at the end of every test):

* at most one leader established per epoch (over the whole run);
* a zxid names one txn: for every zxid, every store that ever logged it (live
  or crashed) holds the same bytes;
* the live peers of the final epoch agree: same tree (paths, data, czxid,
  mzxid, version) and same last zxid;
* no acknowledged write lost: every acknowledged create is in every live
  synced peer's tree with the zxid the client was told.

Determinism: same seed -> same trace.  Three sources of run-to-run variation
are pinned while a simulation runs (:func:`deterministic`): trio's scheduler
RNG (seeded), trio's tie-break between equal deadlines (``id()`` of the cancel
scope -> a counter), and the wall clock of txn headers and session ids
(derived from the mock clock).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import hypothesis  # noqa: F401 - see below
import trio
import trio.testing

from actors import ActorStarting, ActorStopped, ActorStopping, LifecycleEvent
from trio_quorum.config import parse_config
from trio_quorum.net import MemoryNetwork
from trio_quorum.persistence.memstore import MemStore
from trio_quorum.protocol.txn import encode_txn
from trio_quorum.quorum import zab_packets as zp
from trio_quorum.quorum.messages import QUORUM, QUORUM_LIMITS
from trio_quorum.quorum.wire import WireError
from trio_quorum.server import stages as _stages_module
from trio_quorum.server import state as _state_module
from trio_quorum.server.peer import Peer, ServerFailed

from .client import SimClient

__all__ = ["Sim", "SimPeer", "TraceEvent", "deterministic", "election_name", "peer_name", "run_sim"]

log = logging.getLogger("tests.sim")

#: " at 0x7f..." in reprs (task names in cancel reasons): not part of a replayable history.
_ADDRESS = re.compile(r" at 0x[0-9a-f]+")

#: Wall-clock origin of a simulation (txn times, session ids): fixed, so runs repeat.
SIM_EPOCH = 1_700_000_000.0


def peer_name(sid: int) -> str:
    return f"peer-{sid}"


def election_name(sid: int) -> str:
    return f"peer-{sid}:election"


@dataclass(frozen=True, slots=True)
class TraceEvent:
    time: float
    sid: int
    kind: str
    detail: Any = None

    def __str__(self) -> str:
        return f"{self.time:9.3f} peer-{self.sid} {self.kind} {self.detail if self.detail is not None else ''}"


@dataclass(frozen=True, slots=True)
class Acked:
    """A write the client was told succeeded."""

    path: str
    data: bytes
    zxid: int
    sid: int


@dataclass
class SimPeer:
    """One server id: its durable store (survives crashes) and the incarnation running now."""

    sid: int
    observer: bool
    store: MemStore
    peer: Peer | None = None
    incarnation: int = 0
    scope: trio.CancelScope | None = None
    done: trio.Event = field(default_factory=trio.Event)
    failure: str | None = None
    events: list[LifecycleEvent] = field(default_factory=list)

    @property
    def alive(self) -> bool:
        return self.peer is not None and not self.done.is_set()


# ---------------------------------------------------------------------------- determinism


class _SimTime:
    """Stands in for the ``time`` module of state.py / stages.py: wall time follows the mock clock."""

    perf_counter = staticmethod(__import__("time").perf_counter)
    monotonic = staticmethod(__import__("time").monotonic)

    @staticmethod
    def time() -> float:
        try:
            return SIM_EPOCH + trio.current_time()
        except RuntimeError:  # outside trio.run
            return SIM_EPOCH


@contextlib.contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Pin what varies between runs of the same simulation (see the module docstring).

    Importing hypothesis (above) switches trio's scheduler to its reproducible
    mode (each batch sorted, then shuffled with ``_r``): the same schedule in
    a script as under pytest, whose hypothesis plugin does the same import.
    """
    from trio._core import _run

    rng_state = _run._r.getstate()
    _run._r.seed(seed)
    counter = itertools.count()
    orig_add = _run.Deadlines.add

    def add(self: Any, deadline: float, cancel_scope: Any) -> None:
        # The heap breaks ties between equal deadlines by id(scope): memory
        # addresses.  A counter gives registration order instead.
        _run.heappush(self._heap, (deadline, next(counter), cancel_scope))
        self._active += 1

    saved = (_state_module.time, _stages_module.time)
    _run.Deadlines.add = add  # type: ignore[method-assign]
    _state_module.time = _stages_module.time = _SimTime  # type: ignore[assignment]
    try:
        yield
    finally:
        _run.Deadlines.add = orig_add  # type: ignore[method-assign]
        _state_module.time, _stages_module.time = saved  # type: ignore[assignment]
        _run._r.setstate(rng_state)


def run_sim(scenario: Callable[[Sim], Any], seed: int, *, mock: bool = True, timeout: float = 120.0,
            **sim_kwargs: Any) -> Sim:
    """Run ``await scenario(sim)`` in a fresh ``trio.run`` (MockClock unless ``mock`` is False).

    ``timeout`` bounds the whole run in (mock) seconds.  The invariants are
    checked after the scenario; on any failure the seed and the trace tail
    are attached to the error.
    """
    result: list[Sim] = []

    async def main() -> None:
        with trio.fail_after(timeout):
            async with open_sim(seed, **sim_kwargs) as sim:
                result.append(sim)
                await scenario(sim)
                await sim.settle()
                sim.check_invariants()

    clock = trio.testing.MockClock(autojump_threshold=0) if mock else None
    with deterministic(seed):
        try:
            trio.run(main, clock=clock)
        except BaseException as exc:
            tail = "\n".join(map(str, result[0].trace[-60:])) if result else "(no sim)"
            exc.add_note(f"simulation seed {seed}; replay: run_sim(<scenario>, {seed}); trace tail:\n{tail}")
            raise
    return result[0]


@contextlib.asynccontextmanager
async def open_sim(seed: int, **kwargs: Any) -> Any:
    async with trio.open_nursery() as nursery:
        sim = Sim(nursery, seed, **kwargs)
        try:
            yield sim
        finally:
            await sim.stop_all("simulation over")
            nursery.cancel_scope.cancel()


# ---------------------------------------------------------------------------- the wire tap

#: ZAB packets the tap records (the rest are counted by type only).
_TAPPED = (zp.Diff, zp.Trunc, zp.Snap, zp.NewLeader, zp.LeaderInfo)


class _WireTap:
    """Decodes the frames of one quorum-link direction as they are sent (MemoryNetwork ``mutate``)."""

    def __init__(self, sim: Sim, src: int, dst: int) -> None:
        self.sim, self.src, self.dst = sim, src, dst

    def __call__(self, frame: bytes) -> bytes:
        try:
            packets = QUORUM.decode_frame(frame, QUORUM_LIMITS)
        except WireError:
            return frame  # the handshake (HELLO) is not a quorum message
        for packet in packets:
            if isinstance(packet, _TAPPED):
                detail = (self.dst, type(packet).__name__.upper(), getattr(packet, "zxid", None)
                          if not isinstance(packet, zp.LeaderInfo) else packet.epoch)
                self.sim._record(self.src, "sent", detail)
        return frame


# ---------------------------------------------------------------------------- the simulation


class Sim:
    """An ensemble of ``voters`` participants and ``observers`` observers (sids 1..N)."""

    def __init__(self, nursery: trio.Nursery, seed: int, *, voters: int = 3, observers: int = 0,
                 tick_ms: int = 100, init_limit: int = 10, sync_limit: int = 5,
                 latency: tuple[float, float] = (0.0005, 0.002), extra_config: str = "") -> None:
        self.nursery = nursery
        self.seed = seed
        self.rng = random.Random(seed)
        self.net = MemoryNetwork(seed)
        self.tick_ms = tick_ms
        self.init_limit = init_limit
        self.sync_limit = sync_limit
        self.extra_config = extra_config
        self.sids = list(range(1, voters + observers + 1))
        self.voters = self.sids[:voters]
        self.observers = self.sids[voters:]
        self.peers = {sid: SimPeer(sid, sid in self.observers, MemStore()) for sid in self.sids}
        self.trace: list[TraceEvent] = []
        self.acked: list[Acked] = []
        #: (epoch, sid) of every leader that established its epoch.
        self.leaders: list[tuple[int, int]] = []
        self._changed = trio.Event()
        self._dir = tempfile.mkdtemp(prefix="trio-quorum-sim-")
        for a in self.sids:
            for b in self.sids:
                if a != b:
                    zab = self.net.faults(peer_name(a), peer_name(b))
                    zab.mutate = _WireTap(self, a, b)
                    # A little latency (FIFO per link, as TCP): interleavings vary with the seed.
                    zab.delay = latency
                    self.net.faults(election_name(a), election_name(b)).delay = latency

    # ------------------------------------------------------------ configuration
    def config_text(self, sid: int) -> str:
        servers = "".join(
            f"server.{s}=127.0.0.1:{20000 + s}:{30000 + s}{':observer' if s in self.observers else ''}\n"
            for s in self.sids
        )
        peer_type = "peerType=observer\n" if sid in self.observers else ""
        return (f"tickTime={self.tick_ms}\ninitLimit={self.init_limit}\nsyncLimit={self.sync_limit}\n"
                f"dataDir=p{sid}\nclientPort=0\nclientPortAddress=127.0.0.1\n"
                f"maxSessionTimeout=600000\n{peer_type}{self.extra_config}{servers}")

    # ------------------------------------------------------------ trace
    def _record(self, sid: int, kind: str, detail: Any = None) -> None:
        self.trace.append(TraceEvent(round(trio.current_time(), 6), sid, kind, detail))
        self._changed.set()
        self._changed = trio.Event()

    def events_of(self, kind: str, sid: int | None = None) -> list[TraceEvent]:
        return [e for e in self.trace if e.kind == kind and (sid is None or e.sid == sid)]

    def sync_packets(self, *, to: int | None = None, kind: str | None = None,
                     since: float = 0.0) -> list[TraceEvent]:
        """DIFF/TRUNC/SNAP packets the tap saw (optionally: to one learner, of one kind, after a time)."""
        return [e for e in self.trace if e.kind == "sent" and e.time >= since
                and e.detail[1] in ("DIFF", "TRUNC", "SNAP")
                and (to is None or e.detail[0] == to) and (kind is None or e.detail[1] == kind)]

    def history(self) -> list[str]:
        """The trace as text (what "same seed, same history" compares)."""
        return [str(e) for e in self.trace]

    async def wait(self, predicate: Callable[[], bool]) -> None:
        """Until ``predicate()`` holds; re-checked at every trace event and every tick (mock time)."""
        while not predicate():
            with trio.move_on_after(self.tick_ms / 1000):
                await self._changed.wait()

    # ------------------------------------------------------------ peers
    def peer(self, sid: int) -> Peer:
        p = self.peers[sid].peer
        assert p is not None, f"peer {sid} never started"
        return p

    def live(self) -> list[int]:
        return [sid for sid in self.sids if self.peers[sid].alive]

    async def start(self, sid: int) -> None:
        sp = self.peers[sid]
        assert not sp.alive, f"peer {sid} is running"
        cfg, _warnings = parse_config(self.config_text(sid), cwd=self._dir, myid_text=str(sid))
        peer = Peer(cfg, sp.store, network=self.net.endpoint(peer_name(sid)))
        assert peer.quorum is not None
        # The election links get their own endpoint name, so that faults and
        # taps can tell them from the ZAB links (which must stay reliable).
        peer.quorum.election.network = self.net.endpoint(election_name(sid))
        qp = peer.quorum
        established = qp._established

        def on_established(epoch: int, *, _sid: int = sid, _qp: Any = qp, _orig: Any = established) -> None:
            role = _qp.state.name
            self._record(_sid, role, epoch)
            if role == "LEADING":
                self.leaders.append((epoch, _sid))
            _orig(epoch)

        qp._established = on_established  # type: ignore[method-assign]
        sp.peer = peer
        sp.incarnation += 1
        sp.done = trio.Event()
        sp.failure = None
        self._record(sid, "start", sp.incarnation)
        await self.nursery.start(self._run_peer, sp, peer)

    async def _run_peer(self, sp: SimPeer, peer: Peer, *, task_status: Any) -> None:
        events = peer.tree.events.subscribe(max_buffer=1_000_000)
        try:
            with trio.CancelScope() as scope:
                sp.scope = scope
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._watch, sp, events)
                    try:
                        await peer.run(task_status=task_status)
                    finally:
                        nursery.cancel_scope.cancel()
        except ServerFailed as exc:
            sp.failure = str(exc)
            self._record(sp.sid, "failed", str(exc))
        finally:
            events.close()
            self._absorb(sp, events.drain())
            sp.done.set()
            self._record(sp.sid, "down", sp.incarnation)

    async def _watch(self, sp: SimPeer, events: Any) -> None:
        async for event in events:
            self._absorb(sp, [event])

    def _absorb(self, sp: SimPeer, events: list[LifecycleEvent]) -> None:
        prefix = peer_name(sp.sid) + "/"
        for event in events:
            sp.events.append(event)
            rel = event.path[len(prefix):] if event.path.startswith(prefix) else None
            if rel in ("leading", "following", "observing"):
                if isinstance(event, ActorStarting):
                    self._record(sp.sid, "role-start", rel)
                elif isinstance(event, ActorStopped):
                    self._record(sp.sid, "role-end", (rel, _ADDRESS.sub("", event.reason)))

    async def start_all(self, sids: Iterable[int] | None = None) -> None:
        for sid in (self.sids if sids is None else sids):
            await self.start(sid)

    async def crash(self, sid: int) -> list[Any]:
        """Power cut: unsynced writes lost, links reset, every task cancelled at once.

        Returns the txns the store lost.
        """
        sp = self.peers[sid]
        assert sp.alive and sp.scope is not None
        lost = sp.store.crash()  # first: the unwinding tasks must not sync anything more
        self.net.disconnect(peer_name(sid), "crashed")
        self.net.disconnect(election_name(sid), "crashed")
        self._record(sid, "crash", len(lost))
        sp.scope.cancel(reason="crashed")
        await sp.done.wait()
        return lost

    async def restart(self, sid: int) -> None:
        await self.start(sid)

    async def stop(self, sid: int, reason: str = "stopped by the test") -> None:
        sp = self.peers[sid]
        if sp.alive and sp.peer is not None:
            sp.peer.shutdown(reason)
            await sp.done.wait()

    async def stop_all(self, reason: str) -> None:
        for sid in self.sids:
            await self.stop(sid, reason)

    # ------------------------------------------------------------ network
    def partition(self, side_a: Iterable[int], side_b: Iterable[int] | None = None) -> None:
        """Cut ``side_a`` from ``side_b`` (default: every other peer), both links of each pair."""
        a = list(side_a)
        b = [s for s in self.sids if s not in a] if side_b is None else list(side_b)
        names_a = [n for s in a for n in (peer_name(s), election_name(s))]
        names_b = [n for s in b for n in (peer_name(s), election_name(s))]
        self.net.partition(names_a, names_b)
        self._record(0, "partition", (sorted(a), sorted(b)))

    def heal(self) -> None:
        self.net.heal()
        self._record(0, "heal")

    # ------------------------------------------------------------ roles
    def mode(self, sid: int) -> str:
        sp = self.peers[sid]
        return sp.peer.mode if sp.alive and sp.peer is not None else "down"

    def serving(self, sid: int) -> bool:
        sp = self.peers[sid]
        return sp.alive and sp.peer is not None and sp.peer.serving

    def epoch(self, sid: int) -> int:
        p = self.peer(sid)
        assert p.quorum is not None
        return p.quorum.epoch

    def leader(self, sids: Iterable[int] | None = None) -> int | None:
        """The leader serving clients among ``sids`` (default: the live peers), if exactly one."""
        group = self.live() if sids is None else [s for s in sids if self.peers[s].alive]
        leaders = [s for s in group if self.mode(s) == "leader" and self.serving(s)]
        return leaders[0] if len(leaders) == 1 else None

    def settled(self, sids: Iterable[int] | None = None) -> bool:
        """Every peer of ``sids`` (default: all live) serving, one of them the leader, all in its epoch."""
        group = self.live() if sids is None else list(sids)
        lead = self.leader(group)
        if lead is None:
            return False
        epoch = self.epoch(lead)
        return all(self.serving(s) and self.epoch(s) == epoch for s in group)

    async def wait_settled(self, sids: Iterable[int] | None = None) -> int:
        """Wait until :meth:`settled`; return the leader."""
        group = None if sids is None else list(sids)
        await self.wait(lambda: self.settled(group))
        lead = self.leader(group)
        assert lead is not None
        return lead

    async def settle(self) -> None:
        """Wait until the live peers agree on a leader and hold the same last zxid (if a quorum lives)."""
        live_voters = [s for s in self.live() if s in self.voters]
        if 2 * len(live_voters) <= len(self.voters):
            return  # no quorum: nothing can settle
        await self.wait_settled()
        await self.wait(lambda: self.settled() and len({self.peer(s).last_zxid() for s in self.live()}) == 1)
        # Requests still in a chain (a closeSession of an expiry...) finish within a few ticks.
        with trio.move_on_after(10 * self.tick_ms / 1000):
            await self.wait(lambda: all(self.peer(s).stats.outstanding == 0 for s in self.live()))

    # ------------------------------------------------------------ clients
    async def client(self, sid: int, *, timeout_ms: int = 60_000) -> SimClient:
        c = SimClient(self.peer(sid), timeout_ms=timeout_ms)
        await c.connect()
        return c

    async def create(self, client: SimClient, path: str, data: bytes = b"") -> int:
        """Create ``path``; record it as acknowledged; return its zxid (raises on an error reply)."""
        reply = await client.create(path, data)
        if reply.err:
            raise AssertionError(f"create {path} on peer {client.peer.name}: error {reply.err}")
        self.acked.append(Acked(path, data, reply.zxid, int(client.peer.config.my_id)))
        self._record(int(client.peer.config.my_id), "acked", (path, hex(reply.zxid)))
        return reply.zxid

    # ------------------------------------------------------------ invariants
    def tree_view(self, sid: int) -> dict[str, tuple[bytes, int, int, int]]:
        tree = self.peer(sid).state.tree
        return {path: (bytes(n.data), n.czxid, n.mzxid, n.version) for path, n in tree.nodes.items()}

    def check_invariants(self) -> None:
        problems: list[str] = []
        # 1. at most one leader per epoch
        by_epoch: dict[int, set[int]] = {}
        for epoch, sid in self.leaders:
            by_epoch.setdefault(epoch, set()).add(sid)
        for epoch, sids in by_epoch.items():
            if len(sids) > 1:
                problems.append(f"epoch {epoch} had leaders {sorted(sids)}")
        # 2. a zxid names one txn, in every store that ever logged it
        seen: dict[int, tuple[int, bytes]] = {}
        for sid in self.sids:
            for hdr, rec in self.peers[sid].store.durable:
                blob = encode_txn(hdr, rec)
                other = seen.setdefault(hdr.zxid, (sid, blob))
                if other[1] != blob:
                    problems.append(f"zxid 0x{hdr.zxid:x}: peer {other[0]} and peer {sid} logged different txns")
        # 3. no peer failed (a role crash is fatal: it means a bug)
        for sid in self.sids:
            if self.peers[sid].failure:
                problems.append(f"peer {sid} failed: {self.peers[sid].failure}")
        # 4. the live peers agree (when they settled under one leader)
        live = self.live()
        if self.settled() and live:
            ref = live[0]
            ref_view = self.tree_view(ref)
            for sid in live[1:]:
                view = self.tree_view(sid)
                if view != ref_view:
                    diff = sorted(p for p in set(view) | set(ref_view) if view.get(p) != ref_view.get(p))
                    problems.append(f"trees of peer {ref} and peer {sid} differ at {diff[:5]}")
            zxids = {sid: self.peer(sid).last_zxid() for sid in live}
            if len(set(zxids.values())) != 1:
                problems.append(f"last zxids differ: { {s: hex(z) for s, z in zxids.items()} }")
            # 5. every request handed to a chain was answered or accounted as dropped
            for sid in live:
                if self.peer(sid).stats.outstanding:
                    problems.append(f"peer {sid}: {self.peer(sid).stats.outstanding} requests outstanding at rest")
            # 6. no acknowledged write lost
            for ack in self.acked:
                for sid in live:
                    node = self.peer(sid).state.tree.nodes.get(ack.path)
                    if node is None or node.czxid != ack.zxid:
                        problems.append(f"acknowledged {ack.path} (zxid 0x{ack.zxid:x}) missing on peer {sid}")
        if problems:
            raise AssertionError("simulation invariants violated:\n  " + "\n  ".join(problems))

    def teardown_events(self, sid: int, role: str) -> list[LifecycleEvent]:
        """Stopping/stopped events of the actors under ``peer-N/<role>/``."""
        prefix = f"{peer_name(sid)}/{role}/"
        return [e for e in self.peers[sid].events
                if e.path.startswith(prefix) and isinstance(e, (ActorStopping, ActorStopped))]
