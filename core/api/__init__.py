"""The core's own routes: customers, auth, bookings, availability, quotes, admin."""
from __future__ import annotations

from fastapi import APIRouter

from myhibachi.core.api import events

PERMISSIONS: list[str] = ["bookings.read", "bookings.write", "customers.read", "customers.write",
                          *events.PERMISSIONS]


def routers() -> list[APIRouter]:
    from myhibachi.core import webhooks
    from myhibachi.core.api import auth, bookings, customers

    return [auth.router(), customers.router(), customers.admin_router(), bookings.router(), events.router,
            webhooks.router]
