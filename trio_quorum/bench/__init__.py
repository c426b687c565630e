"""Benchmark harness: trio-quorum side by side with Apache ZooKeeper.

Run ``python -m trio_quorum.bench --help``.  The harness starts each target from one
generated ``zoo.cfg``, drives it with :mod:`.loadgen` (worker processes, raw sockets,
pipelined requests), and writes ``docs/benchmarks.json`` and the generated part of
``docs/benchmarks.md``.  See ``docs/benchmarks.md`` for what is measured and how.
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m trio_quorum.bench``; returns the exit status."""
    from .runner import main as _main

    return _main(argv)
