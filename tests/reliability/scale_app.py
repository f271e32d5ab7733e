"""The app factory the scale-out test serves with granian and runs its workers on: every
installed plugin plus the probe subscriber, whose effect table shows a handler run twice."""
from __future__ import annotations

import asyncio


def plugins() -> list:
    from myhibachi.core.plugins import discover
    from tests.core.probe import ProbePlugin

    return [*sorted(discover()), ProbePlugin()]


def create():
    from myhibachi.core.app import create_app

    return create_app(plugins())


def work() -> None:
    """A worker: the production dispatch loop over this app's plugins."""
    from myhibachi.core.tasks import dispatch_forever

    ctx = create().state.ctx
    ctx.flags.start()
    print("ready", flush=True)
    asyncio.run(dispatch_forever(ctx, interval=0.1))


if __name__ == "__main__":
    work()
