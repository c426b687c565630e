"""Garbage-collector policy for a server process holding a large, long-lived tree.

Why: CPython's cyclic collector is generational, and a full (generation-2)
pass walks EVERY tracked container object.  A server with 100k-1M znodes has
millions of them (DataNode, their stat tuples, children sets, session and
watch tables), almost none of which are ever garbage, so a full pass stalls
the event loop for tens to hundreds of milliseconds, and the default
thresholds (700, 10, 10) trigger one every time the heap grew by 25%: while a
create load grows the tree, that is every few seconds.  (The create 8x32
p99.9 stall once blamed on this was the snapshot running in the foreground:
docs/server.md, "Performance".)

What (measured in docs/server.md, "Performance"):

* :func:`tune` raises the thresholds: generation 0 every 50,000 net
  allocations instead of 700 (young collections are cheap, but 700 means one
  every ~30 requests), generation 1/2 passes correspondingly rarer.
* :func:`freeze` moves everything alive now (the restored tree, imported
  modules) into the permanent generation, which no collection walks.  It is
  called once the restore is done, before anything serves, when the restored
  tree is big enough to matter (:data:`FREEZE_MIN_NODES`).

Invariants: only thresholds and the permanent generation change; collection
stays enabled, so cyclic garbage (tracebacks, cancelled scopes) is still
reclaimed.  Frozen objects are still freed by reference counting when the
tree drops them; only a reference CYCLE among frozen objects would outlive
its last reference, and the tree does not build cycles (parents hold child
names, not child objects).  :func:`restore` puts the previous thresholds back
(in-process servers in tests share the interpreter with other code).
"""

from __future__ import annotations

import gc
import logging
import time

__all__ = ["freeze", "restore", "tune"]

log = logging.getLogger("trio_quorum.server.gc")

#: (gen0, gen1, gen2) thresholds while a server runs.
THRESHOLDS = (50_000, 20, 20)
#: Freeze only after restoring at least this many znodes: a small tree costs
#: nothing to collect, and freezing in a process that runs many servers (the
#: tests) would pin whatever cyclic garbage happens to be alive at that moment.
FREEZE_MIN_NODES = 10_000
#: Collections slower than this are logged (debug): the stall a client saw.
_SLOW_MS = 50.0

_start: list[float] = []


def _on_gc(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _start.append(time.perf_counter())
    elif _start:
        ms = (time.perf_counter() - _start.pop()) * 1000.0
        if ms >= _SLOW_MS:
            log.debug("gc generation %d took %.1f ms (%d collected)", info["generation"], ms, info["collected"])


def tune() -> tuple[int, int, int]:
    """Apply :data:`THRESHOLDS`; return the previous thresholds for :func:`restore`."""
    old = gc.get_threshold()
    gc.set_threshold(*THRESHOLDS)
    if _on_gc not in gc.callbacks:
        gc.callbacks.append(_on_gc)
    return old


def freeze() -> None:
    """Exclude everything alive now from future collections (after the restore)."""
    t0 = time.perf_counter()
    # No gc.collect() first: with 1M restored znodes it would add a second to
    # the restart, and the restore leaves next to no cyclic garbage.
    gc.freeze()
    log.debug("gc: %d objects frozen in %.1f ms", gc.get_freeze_count(), (time.perf_counter() - t0) * 1000.0)


def restore(old: tuple[int, int, int]) -> None:
    """Put back the thresholds :func:`tune` replaced (the frozen objects stay frozen)."""
    gc.set_threshold(*old)
    try:
        gc.callbacks.remove(_on_gc)
    except ValueError:
        pass
