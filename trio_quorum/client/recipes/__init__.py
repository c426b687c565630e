"""Coordination recipes on a :class:`~trio_quorum.client.Client`, in structured-concurrency style.

Each recipe is cancellation-safe: a task cancelled while it waits (for a
lock, a lease, leadership, a barrier) deletes the znode it created before the
cancellation propagates (shielded, bounded, retried over connection loss),
and finds that znode by its unique prefix when the create was cut short.
"""
