"""What checking a customer token's session costs a request: ``auth.session_revoked`` answered
from a live shared cache (the hot path), beside the remembered signature check it follows.

    python bench/session_check.py [--calls 200000]

No database: the cache is marked live and holds the session, as in a process whose listener
is connected after the session's first request (a miss is one indexed ``SELECT EXISTS`` on
``refresh_tokens.family``, once per session after each revocation anywhere).
"""
from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from types import SimpleNamespace

from myhibachi.core import auth
from myhibachi.core.cache import SharedCache
from myhibachi.core.settings import Settings


async def per_call(fn, calls: int) -> float:
    for _ in range(1000):
        await fn()
    start = time.perf_counter()
    for _ in range(calls):
        await fn()
    return (time.perf_counter() - start) / calls * 1e6


async def main(calls: int) -> None:
    settings = Settings(secret_key="bench-" + "k" * 32)
    cache = SharedCache()
    cache.live = True
    ctx = SimpleNamespace(cache=cache, db=None)
    family = uuid.uuid4()
    for _ in range(5000):  # other sessions in the bucket
        cache._values.setdefault(auth.SESSIONS, {})[uuid.uuid4()] = False
    cache._values[auth.SESSIONS][family] = False
    token, _ = auth.issue_access_token(settings, subject=str(uuid.uuid4()), kind="customer", session=family.hex)
    sid = family.hex

    async def check():
        return await auth.session_revoked(ctx, sid)

    async def decode():
        return auth.decode_access_token(settings, token)

    auth.decode_access_token(settings, token)
    for name, fn in (("session_revoked (cache hit)", check), ("decode_access_token (remembered)", decode)):
        print(f"{name}: {await per_call(fn, calls):.2f} µs per call")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--calls", type=int, default=200_000)
    asyncio.run(main(p.parse_args().calls))
