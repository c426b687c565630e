"""A randomized scenario: writers on every peer while peers crash, restart and get cut off.

Everything random comes from ``sim.rng`` (seeded), so a seed replays the same
schedule.  The run ends with a repair phase (heal, faults off, every peer
restarted) and must then settle; ``run_sim`` checks the invariants.
"""

from __future__ import annotations

from collections import Counter

import trio

from .client import ConnectionLoss, NotServing, SimClient
from .harness import Acked, Sim, election_name


async def chaos(sim: Sim, *, steps: int = 12) -> Counter[str]:
    """Run the schedule; returns counts of what happened (for the report line)."""
    rng = sim.rng
    stats: Counter[str] = Counter()
    await sim.start_all()
    with trio.fail_after(30):
        await sim.wait_settled()
    seq = iter(range(1_000_000))

    async def writer(w: int) -> None:
        client: SimClient | None = None
        while True:
            await trio.sleep(rng.uniform(0.01, 0.2))
            if client is None or client.closed:
                target = rng.choice(sim.sids)
                if not sim.serving(target):
                    stats["not serving"] += 1
                    continue
                try:
                    client = await sim.client(target)
                except (ConnectionLoss, NotServing):
                    stats["connect lost"] += 1
                    client = None
                    continue
            path = f"/w{w}-{next(seq)}"
            try:
                reply = await client.create(path, b"%d" % w)
            except ConnectionLoss:
                stats["write lost"] += 1  # in doubt: may or may not have committed
                continue
            if reply.err:
                stats[f"error {reply.err}"] += 1
                continue
            sid = int(client.peer.config.my_id)
            sim.acked.append(Acked(path, b"%d" % w, reply.zxid, sid))
            sim._record(sid, "acked", (path, hex(reply.zxid)))
            stats["acked"] += 1

    async with trio.open_nursery() as nursery:
        for w in range(3):
            nursery.start_soon(writer, w)
        down: set[int] = set()
        for _ in range(steps):
            await trio.sleep(rng.uniform(0.05, 2.0))
            action = rng.choice(["crash", "restart", "partition", "heal", "lossy", "purge", "quiet"])
            live = [s for s in sim.sids if s not in down]
            if action == "crash" and live:
                victim = rng.choice(live)
                await sim.crash(victim)
                down.add(victim)
            elif action == "restart" and down:
                back = rng.choice(sorted(down))
                await sim.restart(back)
                down.discard(back)
            elif action == "partition":
                side = rng.sample(sim.sids, rng.randint(1, len(sim.sids) - 1))
                sim.partition(side)
            elif action == "heal":
                sim.heal()
            elif action == "purge" and [s for s in live if sim.serving(s)]:
                # What snapCount + autopurge do on disk: a snapshot, then the
                # logs before the 3rd newest snapshot go (SNAP for far-behind
                # learners).  Only a serving peer snapshots (its tree holds
                # committed txns only; a LOOKING one may hold logged ones).
                sid = rng.choice([s for s in live if sim.serving(s)])
                state = sim.peer(sid).state
                store = sim.peers[sid].store
                if not store.pending:
                    await store.take_snapshot(state.tree, state.tracker.session_timeouts())
                    store.purge(3)
                    sim._record(sid, "purged", hex(store.min_logged_zxid()))
            elif action == "lossy":
                drop = rng.choice([0.0, 0.1, 0.3])
                for a in sim.sids:
                    for b in sim.sids:
                        if a != b:
                            sim.net.faults(election_name(a), election_name(b)).drop = drop
                sim._record(0, "election drop", drop)
            stats[action] += 1
        # Repair: the network is whole again and every peer runs.
        sim.heal()
        for a in sim.sids:
            for b in sim.sids:
                if a != b:
                    sim.net.faults(election_name(a), election_name(b)).drop = 0.0
        for sid in sorted(down):
            await sim.restart(sid)
        with trio.fail_after(60):
            await sim.wait_settled()
        acked = stats["acked"]
        with trio.fail_after(30):  # writes go through again
            await sim.wait(lambda: stats["acked"] >= acked + 3)
        nursery.cancel_scope.cancel()
    for e in sim.sync_packets():
        stats[e.detail[1]] += 1
    return stats
