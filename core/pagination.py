"""Keyset pagination: every list of the API pages the same way, with opaque cursors.

A list orders its rows by key columns whose last one is unique (``created_at, id`` or a
sequence number) and asks for one row more than the page: :func:`keyset` adds the order,
the limit and the condition "after the cursor" to a query, :func:`page_of` cuts the rows
to the page and makes the cursor of the next one from the last row's keys, and
:func:`fetch_page` does both on a connection. A cursor is the last row's key values, so a
page never skips or repeats a row when rows are added meanwhile.

Every list route takes ``limit: int = LIMIT`` and ``cursor: str | None = CURSOR`` and
answers ``{items, next_cursor}`` with ``next_cursor: NextCursor``, so every page of the API
has one default size, one maximum and one shape.
"""
from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Sequence

import sqlalchemy as sa
from fastapi import Query
from pydantic import Field

from myhibachi.core.errors import invalid


DEFAULT_LIMIT, MAX_LIMIT = 50, 200
LIMIT = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description=f"Items per page, at most {MAX_LIMIT}.")
CURSOR = Query(None, max_length=200, description="The previous page's next_cursor; none for the first page.")
NextCursor = Annotated[str | None, Field(description="Pass as ?cursor= for the next page; null on the last page.")]


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    return value.isoformat() if isinstance(value, datetime) else str(value) if isinstance(value, uuid.UUID) else value


def encode_cursor(*values: Any) -> str:
    raw = json.dumps([_plain(v) for v in values]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _typed(value: Any, column) -> Any:
    kind = column.type.python_type
    if kind is datetime:
        at = datetime.fromisoformat(value)
        if at.tzinfo is None:
            raise ValueError("naive")
        return at
    if kind is uuid.UUID:
        return uuid.UUID(value)
    if kind is bytes:
        return bytes.fromhex(value)
    if kind is int and not isinstance(value, int):
        raise ValueError("not an integer")
    return kind(value)


def decode_keys(cursor: str, keys: Sequence[Any]) -> list[Any]:
    """The key values a cursor carries, typed as ``keys``' columns; 422 naming ``cursor`` for
    anything else."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(values, list) or len(values) != len(keys):
            raise ValueError("wrong length")
        return [_typed(v, k) for v, k in zip(values, keys)]
    except (ValueError, TypeError, UnicodeDecodeError, NotImplementedError):
        raise invalid("query.cursor", "is not a cursor this API returned") from None


def keyset(query: sa.Select, keys: Sequence[Any], *, limit: int, cursor: str | None = None,
           descending: bool = True) -> sa.Select:
    """``query`` ordered by ``keys`` (all descending, or all ascending), after ``cursor``,
    with one row more than ``limit`` (so the page knows whether another follows)."""
    if cursor:
        values = [sa.literal(v, k.type) for v, k in zip(decode_keys(cursor, keys), keys)]
        after = sa.tuple_(*keys) < sa.tuple_(*values) if descending else sa.tuple_(*keys) > sa.tuple_(*values)
        query = query.where(after)
    return query.order_by(*(k.desc() if descending else k.asc() for k in keys)).limit(limit + 1)


def page_of(rows: list[dict[str, Any]], keys: Sequence[Any], limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """The page of rows fetched with ``limit + 1``, and the cursor of the next page (None at the end)."""
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor(*(last[k.key] for k in keys))


async def fetch_page(conn, query: sa.Select, keys: Sequence[Any], *, limit: int, cursor: str | None = None,
                     descending: bool = True) -> tuple[list[dict[str, Any]], str | None]:
    """One page of ``query``: its rows and the next page's cursor."""
    rows = await conn.fetch_all(keyset(query, keys, limit=limit, cursor=cursor, descending=descending))
    return page_of(rows, keys, limit)
