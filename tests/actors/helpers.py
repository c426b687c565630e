"""Small actors used by the tests."""

import trio

from actors import Call


async def echo(ctx, inbox, *, task_status):
    """Ready at once; answers calls with (path, incarnation); returns on 'quit', raises on 'crash'."""
    task_status.started()
    async for msg in inbox:
        if isinstance(msg, Call):
            msg.reply((ctx.path, ctx.incarnation))
        elif msg == "quit":
            return
        elif msg == "crash":
            raise RuntimeError(f"{ctx.path} asked to crash")


async def stubborn(ctx, inbox, *, task_status):
    """Ignores the stop request: only a cancel ends it."""
    task_status.started()
    await trio.sleep_forever()


def events_of(rec, kind, path):
    return [e for e in rec.of_type(kind) if e.path == path]
