"""Appending to the audit trail, querying it, verifying its hash chain, anchoring its head.

Each row's ``hash`` is an HMAC-SHA256, under a key derived from the secret key (which the
database does not hold), of the previous row's hash followed by the row's canonical JSON: a
row changed or removed in place breaks the chain at that row (or the next one), and whoever
can write the table cannot re-hash it. The head (last seq, its hash, the row count) is
published out of the database as a signed checkpoint file under the home folder and a log
line (``anchor``), so deleting the tail or truncating the table, which leave a valid shorter
chain, fail ``verify`` against the last anchor. Appends take a transaction-scoped advisory
lock, so chain order is commit order and ``seq`` follows it; the lock is held only from the
append to the commit.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import uuid
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from myhibachi.core import fetch_page
from myhibachi.plugins.audit.models import audit_logs

log = logging.getLogger("myhibachi.audit")

GENESIS = "0" * 64
ANCHOR_FILE = "audit-anchor.json"
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


def chain_key(settings) -> bytes:
    """The chain's HMAC key: derived from the secret key, never stored in the database."""
    return hmac.new(settings.signing_key.encode(), b"myhibachi/audit-chain", hashlib.sha256).digest()


def chain_hash(key: bytes, prev_hash: str, row: dict[str, Any]) -> str:
    return hmac.new(key, prev_hash.encode() + canonical(row), hashlib.sha256).hexdigest()


def _text(value: Any, size: int) -> str | None:
    return None if value is None else str(value)[:size]


async def append(conn, ctx, action: dict[str, Any]) -> dict[str, Any]:
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
    key = ctx.extra.get("audit_chain_key") or ctx.extra.setdefault("audit_chain_key", chain_key(ctx.settings))
    row["hash"] = chain_hash(key, row["prev_hash"], row)
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


async def verify(conn, settings, *, batch: int = 1000) -> dict[str, Any]:
    """Walk the chain in order, then hold it against the last anchor: ``{"ok": True, "rows": n}``
    or the first broken row (``seq``, ``id``, ``reason``)."""
    key = chain_key(settings)
    anchor = read_anchor(settings, key)
    if anchor is not None and anchor.get("forged"):
        return {"ok": False, "rows": 0, "seq": None, "id": None,
                "reason": f"the anchor file {ANCHOR_FILE} is not signed by this deployment's key"}
    expected_prev = GENESIS
    last_seq = 0
    count = 0
    anchored = None
    while True:
        rows = await conn.fetch_all(sa.select(audit_logs).where(audit_logs.c.seq > last_seq)
                                   .order_by(audit_logs.c.seq).limit(batch))
        for row in rows:
            reason = None
            if row["prev_hash"] != expected_prev:
                reason = "its previous hash does not match the row before it (a row was removed or changed)"
            elif not hmac.compare_digest(chain_hash(key, row["prev_hash"], dict(row)), row["hash"]):
                reason = "its content does not match its hash (the row was changed or re-hashed)"
                if count == 0 and row["hash"] == legacy_hash(row["prev_hash"], dict(row)):
                    reason = ("the chain starts with rows of the unkeyed sha256 chain of earlier versions: "
                              "run `myhibachi audit rehash` as the table's owner")
            if reason:
                return {"ok": False, "rows": count, "seq": row["seq"], "id": str(row["id"]), "reason": reason}
            expected_prev = row["hash"]
            count += 1
            if anchor is not None and row["seq"] == anchor["seq"]:
                anchored = (row["hash"], count)
        if not rows:
            break
        last_seq = rows[-1]["seq"]
    if anchor is not None and anchor["rows"] and anchored != (anchor["hash"], anchor["rows"]):
        return {"ok": False, "rows": count, "seq": anchor["seq"], "id": None,
                "reason": f"the anchored head (seq {anchor['seq']}, {anchor['rows']} rows, at {anchor['at']}) is "
                          "gone or changed: rows were deleted from the end or the table was truncated"}
    return {"ok": True, "rows": count}


def legacy_hash(prev_hash: str, row: dict[str, Any]) -> str:
    """The unkeyed sha256 chain of rows written before the keyed one."""
    return hashlib.sha256(prev_hash.encode() + canonical(row)).hexdigest()


class _Refused(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        self.result = result


async def rehash(conn, settings, *, batch: int = 1000) -> dict[str, Any]:
    """Re-hash under the keyed HMAC the rows written with the unkeyed sha256 chain (and relink
    the keyed rows appended after them), as the table's owner: its append-only trigger is
    disabled inside this transaction only (DDL is transactional, and the ACCESS EXCLUSIVE lock
    keeps every other session out until the commit).

    Each row is first checked against the chain it was written in (sha256, or the keyed HMAC
    for rows appended since), and the head against the last anchor: a row that matches
    neither, a ``prev_hash`` that is not the stored hash before it, or an anchored head gone
    or changed changes nothing (so ``verify`` still reports it). An intact chain is anchored
    afterwards. ``{"ok", "rows", "rehashed"}`` and, when refused, ``seq`` and ``reason``.
    The re-hash vouches for the chain as it stands: rows forged before it, with the sha256
    anyone can compute, are only caught by an anchor taken before the forgery."""
    key = chain_key(settings)
    held = read_anchor(settings, key)
    if held is not None and held.get("forged"):
        return {"ok": False, "rows": 0, "rehashed": 0, "seq": None,
                "reason": f"the anchor file {ANCHOR_FILE} is not signed by this deployment's key"}
    try:
        async with conn.savepoint():
            result = await _rehash(conn, key, held, batch)
            if not result["ok"]:
                raise _Refused(result)
    except _Refused as refused:
        log.error("audit rehash refused at row seq=%s: %s", refused.result["seq"], refused.result["reason"])
        return refused.result
    if result["rehashed"]:  # the old anchor named the old hashes of an intact head: anchor the new ones
        (settings.home_dir / ANCHOR_FILE).unlink(missing_ok=True)
        await anchor(conn, settings)
    return result


async def _rehash(conn, key: bytes, held: dict[str, Any] | None, batch: int) -> dict[str, Any]:
    await conn.run(sa.text("ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_append_only"))
    anchored = held is None or not held["rows"]
    stored_prev, new_prev, last_seq, count, changed = GENESIS, GENESIS, 0, 0, 0
    while True:
        rows = await conn.fetch_all(sa.select(audit_logs).where(audit_logs.c.seq > last_seq)
                                   .order_by(audit_logs.c.seq).limit(batch))
        if not rows:
            break
        for row in rows:
            row = dict(row)
            reason = None
            if row["prev_hash"] != stored_prev:
                reason = "its previous hash does not match the row before it (a row was removed or changed)"
            elif row["hash"] not in (legacy_hash(stored_prev, row), chain_hash(key, stored_prev, row)):
                reason = "its content matches neither the sha256 nor the keyed chain (the row was changed)"
            if reason:
                return {"ok": False, "rows": count, "rehashed": 0, "seq": row["seq"], "reason": reason}
            stored_prev = row["hash"]
            new_hash = chain_hash(key, new_prev, row)
            if (new_prev, new_hash) != (row["prev_hash"], row["hash"]):
                await conn.run(sa.update(audit_logs).where(audit_logs.c.id == row["id"])
                               .values(prev_hash=new_prev, hash=new_hash))
                changed += 1
            new_prev = new_hash
            count += 1
            if held is not None and row["seq"] == held["seq"]:
                anchored = (row["hash"], count) == (held["hash"], held["rows"])
        last_seq = rows[-1]["seq"]
    await conn.run(sa.text("ALTER TABLE audit_logs ENABLE TRIGGER audit_logs_append_only"))
    if not anchored:
        return {"ok": False, "rows": count, "rehashed": 0, "seq": held["seq"],
                "reason": f"the anchored head (seq {held['seq']}, {held['rows']} rows) is gone or changed: "
                          "rows were deleted from the end or the table was truncated"}
    return {"ok": True, "rows": count, "rehashed": changed}


def _mac(key: bytes, doc: dict[str, Any]) -> str:
    body = {k: doc[k] for k in ("rows", "seq", "hash", "at")}
    return hmac.new(key, json.dumps(body, sort_keys=True).encode(), hashlib.sha256).hexdigest()


def read_anchor(settings, key: bytes) -> dict[str, Any] | None:
    """The last checkpoint, or None before the first; ``{"forged": True}`` when its signature fails."""
    path = settings.home_dir / ANCHOR_FILE
    try:
        doc = json.loads(path.read_text())
        ok = hmac.compare_digest(_mac(key, doc), str(doc.get("mac")))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        ok = False
    return doc if ok else {"forged": True}


async def publish(doc: dict[str, Any], sink) -> dict[str, str]:
    """Hand a signed checkpoint to the outside sinks ``sink`` (the plugin's settings) names:
    ``{"url"|"command": "ok" or why not}``. A sink that fails does not undo the others."""
    import asyncio
    import shlex

    import httpx

    body = json.dumps(doc, sort_keys=True).encode()
    out: dict[str, str] = {}
    if sink is None:
        return out
    if sink.anchor_url:
        headers = {"Content-Type": "application/json"}
        if sink.anchor_token:
            headers["Authorization"] = f"Bearer {sink.anchor_token}"
        try:
            async with httpx.AsyncClient(timeout=sink.anchor_timeout_seconds) as client:
                answer = await client.post(sink.anchor_url, content=body, headers=headers)
            out["url"] = "ok" if answer.is_success else f"answered {answer.status_code}"
        except httpx.HTTPError as exc:
            out["url"] = f"{type(exc).__name__}: {exc}"
    if sink.anchor_command:
        try:
            proc = await asyncio.create_subprocess_exec(
                *shlex.split(sink.anchor_command), stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            try:
                _, err = await asyncio.wait_for(proc.communicate(body), sink.anchor_timeout_seconds)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
                out["command"] = f"took more than {sink.anchor_timeout_seconds:g} s"
            else:
                out["command"] = "ok" if proc.returncode == 0 else (
                    f"exited {proc.returncode}: {err.decode(errors='replace').strip()[:200]}")
        except OSError as exc:
            out["command"] = f"{type(exc).__name__}: {exc}"
    for name, state in out.items():
        if state != "ok":
            log.error("audit anchor not published to the %s sink: %s", name, state)
    return out


async def anchor(conn, settings, sink=None) -> dict[str, Any]:
    """Verify the chain, then publish its head out of the database: the signed checkpoint file
    (written 0600, replaced atomically), a log line, and the outside sinks ``sink`` (the
    plugin's settings) names, whose states are under ``published``. A broken chain is not anchored."""
    result = await verify(conn, settings)
    if not result["ok"]:
        return result
    head = await conn.fetch_one(sa.select(audit_logs.c.seq, audit_logs.c.hash).order_by(audit_logs.c.seq.desc())
                                .limit(1))
    doc = {"rows": result["rows"], "seq": head["seq"] if head else 0, "hash": head["hash"] if head else GENESIS,
           "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    doc["mac"] = _mac(chain_key(settings), doc)
    path = settings.home_dir / ANCHOR_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(doc, out)
    os.replace(partial, path)
    log.info("audit anchor: rows=%s seq=%s hash=%s at=%s", doc["rows"], doc["seq"], doc["hash"], doc["at"])
    return {"ok": True, **doc, "published": await publish(doc, sink)}
