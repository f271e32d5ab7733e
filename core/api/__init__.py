"""The core's own routes: customers, auth, bookings, availability, quotes, admin."""
from __future__ import annotations

from fastapi import APIRouter

from myhibachi.core.api import apikeys, events

PERMISSIONS: list[str] = ["bookings.read", "bookings.write", "customers.read", "customers.write",
                          *events.PERMISSIONS, *apikeys.PERMISSIONS]


def routers(make, models) -> list[APIRouter]:
    """Built per app (``make`` is :func:`myhibachi.core.routing.api_router` for it), with the
    request and response models its plugins extended."""
    from myhibachi.core import webhooks
    from myhibachi.core.api import auth, bookings, customers

    return [auth.router(make), customers.router(make, models), customers.admin_router(make, models),
            bookings.router(make, models), events.router(make), webhooks.router(make),
            apikeys.router(make)]
