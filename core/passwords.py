"""Password hashing with argon2id, run off the event loop.

Hashing takes tens of milliseconds by design, so it runs in worker threads (a few at a
time) and a request for an unknown account verifies against a dummy hash, so a login takes
as long whether or not the account exists.
"""
from __future__ import annotations

import functools

import anyio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

CONCURRENCY = 4

_hasher = PasswordHasher()
_limiter: anyio.CapacityLimiter | None = None


async def _in_thread(func, *args):
    global _limiter
    if _limiter is None:
        _limiter = anyio.CapacityLimiter(CONCURRENCY)
    return await anyio.to_thread.run_sync(func, *args, limiter=_limiter)


@functools.cache
def _dummy() -> str:
    return _hasher.hash("not a password of anyone")


async def hash_password(password: str) -> str:
    return await _in_thread(_hasher.hash, password)


async def verify_password(stored: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored``; None (no such account) takes as long and fails."""

    def check() -> bool:
        try:
            return _hasher.verify(stored or _dummy(), password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    return await _in_thread(check)


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)
