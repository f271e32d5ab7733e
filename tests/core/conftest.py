"""Fixtures for the core's booking tests: customers as plain rows with tokens (``staff`` is
myhibachi.testing's)."""
from __future__ import annotations

import os
import uuid
from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa

from myhibachi.core.auth import issue_access_token
from myhibachi.core.models import customers


@pytest.fixture
def add_customer(clean_db, settings):
    """``await add_customer()`` -> (customer id, auth headers of that customer)."""

    async def add() -> tuple[uuid.UUID, dict[str, str]]:
        cid = uuid.uuid4()
        async with clean_db.transaction() as conn:
            # Placeholder hashes and ciphertext: these tests never read the PII back.
            await conn.run(sa.insert(customers).values(
                id=cid, email_hash=os.urandom(32), email_enc="x", name_enc="x", key_id="test"))
        token, _ = issue_access_token(settings, subject=str(cid), kind="customer")
        return cid, {"Authorization": f"Bearer {token}"}

    return add


def local_day(days_ahead: int) -> date:
    return date.today() + timedelta(days=days_ahead)


def local_start(days_ahead: int = 7, hour: int = 17, minute: int = 0) -> str:
    """A naive local start time ``days_ahead`` days from today, well past the default lead time."""
    return datetime.combine(local_day(days_ahead), datetime.min.time()).replace(hour=hour, minute=minute).isoformat()


def booking_body(**over) -> dict:
    body = {"starts_at": local_start(), "time_zone": "America/New_York", "adults": 8, "children": 2,
            "address": "12 Grill Street, Springfield", "zip_code": "12345", "menu": "chicken, shrimp"}
    body.update(over)
    return body


async def emailed_code(app, to: str) -> str:
    """The code of the newest email to ``to`` that the offline email adapter recorded."""
    import re

    from myhibachi.core.crypto import vault
    from myhibachi.core.ports import outbox

    ctx = app.state.ctx
    sent = [r["payload"] for r in await outbox.read(ctx.db, "email", limit=500, vault=vault(ctx))
            if r["payload"]["to"] == to]
    assert sent, f"no email to {to}"
    found = re.search(r"code[^:]*:\s+(\S+)", sent[-1]["text"])
    assert found, sent[-1]["text"]
    return found.group(1)


async def sign_up(c, app, body: dict) -> dict:
    """A customer signed up through the API as a person would: ask, read the emailed code,
    confirm it with the password; the confirmation's answer (tokens and customer)."""
    from myhibachi.core.customers import normalise_email

    r = await c.post("/v1/customers", json=body)
    assert r.status_code == 202, r.text
    code = await emailed_code(app, normalise_email(body["email"]))
    r = await c.post("/v1/customers/confirm", json={"code": code, "password": body["password"]})
    assert r.status_code == 201, r.text
    return r.json()
