"""Fixtures for plugin tests: core rows inserted directly, events published and delivered.

Customers and bookings are written straight into the core's tables so the plugins can be
tested on their own; ``Seed.booking`` returns the booking id.
"""
from __future__ import annotations

import uuid
from datetime import datetime

import pytest
import sqlalchemy as sa

from myhibachi.core import bookings as booking_service
from myhibachi.core.app import create_app
from myhibachi.core.auth import create_api_key, issue_access_token
from myhibachi.core.events import deliver_due, publish
from myhibachi.core.customers import create_customer
from myhibachi.core.models import bookings


class Seed:
    def __init__(self, database, settings) -> None:
        self.db, self.settings = database, settings
        self._ctx = None

    async def customer(self, *, email: str | None = None, phone: str | None = "+12025550000",
                       name: str = "Ana Cook") -> uuid.UUID:
        """A customer made through the core's service, so its PII is sealed as in production."""
        email = email or f"{uuid.uuid4().hex[:8]}@example.com"
        async with self.db.transaction() as conn:
            row = await create_customer(conn, self.ctx, email=email, name=name, phone=phone)
        return row["id"]

    @property
    def ctx(self):
        if self._ctx is None:
            self._ctx = create_app([], settings=self.settings, database=self.db).state.ctx
        return self._ctx

    async def booking(self, customer_id: uuid.UUID, starts_at: datetime, *, time_zone: str = "America/New_York",
                      party_size: int = 10, zip_code: str | None = "10001", address: str = "1 Main St, Springfield",
                      status: str = "confirmed") -> uuid.UUID:
        bid = uuid.uuid4()
        async with self.db.transaction() as conn:
            await conn.run(sa.insert(bookings).values(
                id=bid, customer_id=customer_id, starts_at=starts_at, time_zone=time_zone, duration_minutes=120,
                party_size=party_size, adults=party_size, zip_code=zip_code, status=status, total_cents=60000,
                slot_key=f"{starts_at:%Y-%m-%dT%H:%M}", **booking_service.sealed(self.ctx, bid, {"address": address})))
        return bid

    async def publish(self, ctx, name: str, payload: dict, *, actor: str | None = None) -> None:
        """Publish an event as the core's bookings API would, then deliver it."""
        async with self.db.transaction() as conn:
            await publish(conn, ctx, name, payload, actor=actor)
        while await deliver_due(ctx):
            pass

    def token(self, customer_id: uuid.UUID) -> dict[str, str]:
        token, _ = issue_access_token(self.settings, subject=str(customer_id), kind="customer")
        return {"Authorization": f"Bearer {token}"}

    async def staff(self, *scopes: str) -> dict[str, str]:
        async with self.db.transaction() as conn:
            key, _ = await create_api_key(conn, self.settings, name="staff", scopes=list(scopes))
        return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def seed(clean_db, settings) -> Seed:
    return Seed(clean_db, settings)
