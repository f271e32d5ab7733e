"""The core's own routes: customers, auth, bookings, availability, quotes, admin."""
from __future__ import annotations

from fastapi import APIRouter

from myhibachi.core.api import events

PERMISSIONS: list[str] = ["bookings.read", "bookings.write", "customers.read", "customers.write",
                          *events.PERMISSIONS]


def routers(models) -> list[APIRouter]:
    """Built per app, with the request and response models its plugins extended."""
    from myhibachi.core import webhooks
    from myhibachi.core.api import auth, bookings, customers

    return [auth.router(), customers.router(models), customers.admin_router(models), bookings.router(models), events.router,
            webhooks.router]
