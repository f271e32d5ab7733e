"""Database helpers for tests."""
from __future__ import annotations

from contextlib import asynccontextmanager


class _RollBack(Exception):
    pass


@asynccontextmanager
async def rolled_back(db):
    """A connection in a transaction that is rolled back when the block ends."""
    try:
        async with db.transaction() as conn:
            yield conn
            raise _RollBack
    except _RollBack:
        pass
