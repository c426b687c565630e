"""Messages/s over ONE real WebSocket peer link (127.0.0.1), batched vs one message per frame.

    PYTHONPATH=. python bench/links.py [--messages N] [--size BYTES] [--window W]

Two PeerLinks (sids 1 and 2, quorum channel) in one process; sid 2 streams
``Packet(seq, payload)`` records to sid 1, keeping at most ``window`` in flight
(a leader's outstanding proposals), as fast as the link takes them.  The
"one per frame" run is the same code with ``Limits(max_messages=1)``, so each
message costs a WebSocket frame, as an unbatched design would.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import trio

from trio_quorum.net import Batch, LinksConfig, LinkUp, WebSocketNetwork, open_peer_links
from trio_quorum.quorum.wire import Catalogue, Channel, Limits


@dataclass(frozen=True, slots=True)
class Packet:
    seq: int
    payload: bytes


CAT = Catalogue("bench")
CAT.register(16, Packet, (("seq", int), ("payload", bytes)))


async def run(messages: int, size: int, window: int, per_frame: int | None) -> dict[str, float]:
    limits = Limits() if per_frame is None else Limits(max_messages=per_frame)
    config = LinksConfig(limits=limits, heartbeat_interval=1.0, heartbeat_timeout=10.0)
    net = WebSocketNetwork()
    payload = b"p" * size
    peers: dict[int, str | None] = {1: "127.0.0.1:0", 2: None}
    async with open_peer_links(net, 1, peers, Channel.QUORUM, CAT, config=config,
                               parent="bench-1") as rx:
        async with open_peer_links(net, 2, {1: rx.address, 2: "127.0.0.1:0"}, Channel.QUORUM,
                                   CAT, config=config, parent="bench-2") as tx:
            rx.set_address(2, tx.address)
            async for item in rx.inbound:
                if isinstance(item, LinkUp):
                    break
            received = 0
            progress = trio.Event()

            async def consume() -> None:
                nonlocal received, progress
                async for item in rx.inbound:
                    if isinstance(item, Batch):
                        received += len(item.messages)
                        progress.set()
                        progress = trio.Event()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(consume)
                start = time.perf_counter()
                sent = 0
                while sent < messages:
                    room = min(window - (sent - received), messages - sent)
                    if room <= 0:
                        await progress.wait()
                        continue
                    tx.send(1, [Packet(sent + i, payload) for i in range(room)])
                    sent += room
                    await trio.lowlevel.checkpoint()
                while received < messages:
                    await progress.wait()
                elapsed = time.perf_counter() - start
                nursery.cancel_scope.cancel()
            stats = rx.statistics().peers[2]
    return {
        "messages": messages,
        "seconds": elapsed,
        "messages_per_s": messages / elapsed,
        "frames": stats.frames_received,
        "messages_per_frame": stats.messages_received / max(1, stats.frames_received),
        "mib_per_s": stats.bytes_received / elapsed / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--single-messages", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--window", type=int, default=10_000)
    args = parser.parse_args()
    rows = [
        ("batched", trio.run(run, args.messages, args.size, args.window, None)),
        ("one per frame", trio.run(run, args.single_messages, args.size, args.window, 1)),
    ]
    print(f"one WebSocket link on 127.0.0.1, {args.size}-byte payloads, window {args.window}")
    for name, r in rows:
        print(f"{name:>14}: {r['messages_per_s']:>9,.0f} msg/s  {r['mib_per_s']:6.1f} MiB/s  "
              f"{r['frames']:>7,.0f} frames  {r['messages_per_frame']:7.1f} msg/frame  "
              f"({r['messages']:,.0f} in {r['seconds']:.2f} s)")
    print(f"batching speed-up: {rows[0][1]['messages_per_s'] / rows[1][1]['messages_per_s']:.1f}x")


if __name__ == "__main__":
    main()
