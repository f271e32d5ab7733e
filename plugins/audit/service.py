"""Appending to the audit trail, querying it, and verifying its hash chain.

Each row's ``hash`` is sha256 of the previous row's hash followed by the row's canonical
JSON, so a row changed or removed in place breaks the chain at that row (or the next one).
Appends take a transaction-scoped advisory lock, so chain order is commit order and
``seq`` follows it; the lock is held only from the append to the commit.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from myhibachi.core import fetch_page
from myhibachi.plugins.audit.models import audit_logs

GENESIS = "0" * 64
CHAIN_LOCK = 0x61756469  # "audi"
HASHED = ("id", "actor_kind", "actor_id", "action", "permission", "resource_type", "resource_id", "changes",
          "method", "path", "ip", "user_agent", "request_id", "created_at")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat(timespec="microseconds")
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def canonical(row: dict[str, Any]) -> bytes:
    doc = {k: _plain(row.get(k)) for k in HASHED}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def chain_hash(prev_hash: str, row: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical(row)).hexdigest()


def _text(value: Any, size: int) -> str | None:
    return None if value is None else str(value)[:size]


async def append(conn, action: dict[str, Any]) -> dict[str, Any]:
    """Append one action (the ``record_admin_action`` payload) in ``conn``'s transaction."""
    changes = action.get("changes")
    row = {
        "id": uuid.uuid4(),
        "actor_kind": _text(action.get("actor_kind") or "system", 20),
        "actor_id": _text(action.get("actor_id"), 64),
        "action": _text(action.get("action") or "unknown", 200),
        "permission": _text(action.get("permission"), 100),
        "resource_type": _text(action.get("resource_type") or "unknown", 100),
        "resource_id": _text(action.get("resource_id"), 200),
        # Round-trip through JSON so what is hashed is what JSONB gives back.
        "changes": None if changes is None else json.loads(json.dumps(changes, default=str)),
        "method": _text(action.get("method"), 10),
        "path": action.get("path"),
        "ip": _text(action.get("ip"), 45),
        "user_agent": _text(action.get("user_agent"), 1000),
        "request_id": _text(action.get("request_id"), 100),
        "created_at": action.get("at") or datetime.now(timezone.utc),
    }
    await conn.run(sa.select(sa.func.pg_advisory_xact_lock(CHAIN_LOCK)))
    prev = await conn.scalar(sa.select(audit_logs.c.hash).order_by(audit_logs.c.seq.desc()).limit(1))
    row["prev_hash"] = prev or GENESIS
    row["hash"] = chain_hash(row["prev_hash"], row)
    await conn.run(sa.insert(audit_logs).values(**row))
    return row


async def list_logs(conn, *, actor_id: str | None = None, action: str | None = None,
                    resource_type: str | None = None, resource_id: str | None = None,
                    since: datetime | None = None, until: datetime | None = None,
                    cursor: str | None = None, limit: int = 50) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first, keyset-paged on ``seq``."""
    query = sa.select(audit_logs)
    for column, value in ((audit_logs.c.actor_id, actor_id), (audit_logs.c.action, action),
                          (audit_logs.c.resource_type, resource_type), (audit_logs.c.resource_id, resource_id)):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(audit_logs.c.created_at >= since)
    if until is not None:
        query = query.where(audit_logs.c.created_at < until)
    return await fetch_page(conn, query, (audit_logs.c.seq,), limit=limit, cursor=cursor)


async def verify(conn, *, batch: int = 1000) -> dict[str, Any]:
    """Walk the chain in order: ``{"ok": True, "rows": n}`` or the first broken row."""
    expected_prev = GENESIS
    last_seq = 0
    count = 0
    while True:
        rows = await conn.fetch_all(sa.select(audit_logs).where(audit_logs.c.seq > last_seq)
                                   .order_by(audit_logs.c.seq).limit(batch))
        if not rows:
            return {"ok": True, "rows": count}
        for row in rows:
            reason = None
            if row["prev_hash"] != expected_prev:
                reason = "its previous hash does not match the row before it (a row was removed or changed)"
            elif chain_hash(row["prev_hash"], dict(row)) != row["hash"]:
                reason = "its content does not match its hash (the row was changed)"
            if reason:
                return {"ok": False, "rows": count, "seq": row["seq"], "id": str(row["id"]), "reason": reason}
            expected_prev = row["hash"]
            count += 1
        last_seq = rows[-1]["seq"]
