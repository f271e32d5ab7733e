"""The offline outbox: what the offline adapters would have sent, readable by tests and
``myhibachi outbox``.

What would have reached a customer (an SMS's or an email's recipient, subject and text) or a
language model (a call's messages, which can quote a customer) is stored sealed: those fields
of the payload become one ``sealed`` value (AES-GCM under the vault's current key, bound to
the port and the record's id) with its ``key_id``;
the rest (ids, the sender, the callback) stays readable. :func:`read` given the vault, and
:func:`open_offline`, give the payload back whole.
"""
from __future__ import annotations

from typing import Any

from myhibachi.core.models import offline_outbox

SEALED_PORTS = frozenset({"sms", "email", "llm"})
SEALED_FIELDS = ("to", "body", "subject", "text", "html", "messages")


def _aad(port: str, payload: dict[str, Any]) -> str:
    return f"offline_outbox:{port}:{payload.get('sid') or payload.get('id') or ''}"


def seal_offline(vault, port: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The stored form of ``payload``: its customer fields sealed on the ports that carry them."""
    private = {k: payload[k] for k in SEALED_FIELDS if k in payload}
    if port not in SEALED_PORTS or not private:
        return payload
    out = {k: v for k, v in payload.items() if k not in private}
    return {**out, **vault.seal_json(private, _aad(port, out))}


def open_offline(vault, port: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as the adapter was given it."""
    if "sealed" not in payload:
        return payload
    rest = {k: v for k, v in payload.items() if k not in ("sealed", "key_id")}
    return {**vault.open_json(payload, _aad(port, rest)), **rest}


async def record(conn, port: str, operation: str, payload: dict[str, Any], vault=None) -> None:
    if vault is not None:
        payload = seal_offline(vault, port, payload)
    await conn.run(offline_outbox.insert().values(port=port, operation=operation, payload=payload))


async def read(db, port: str | None = None, limit: int = 50, *, vault=None) -> list[dict[str, Any]]:
    """The newest ``limit`` records (of one port when given), oldest first; opened with ``vault``."""
    query = offline_outbox.select().order_by(offline_outbox.c.created_at.desc(), offline_outbox.c.id).limit(limit)
    if port:
        query = query.where(offline_outbox.c.port == port)
    async with db.read() as conn:
        rows = await conn.fetch_all(query)
    found = [dict(r) for r in reversed(rows)]
    if vault is not None:
        for r in found:
            r["payload"] = open_offline(vault, r["port"], r["payload"])
    return found
