"""The core's own routes: customers, auth, bookings, availability, quotes, admin."""
from __future__ import annotations

from fastapi import APIRouter

from myhibachi.core.api import events

PERMISSIONS: list[str] = ["bookings.read", "bookings.write", *events.PERMISSIONS]


def routers() -> list[APIRouter]:
    from myhibachi.core.api import bookings

    return [bookings.router(), events.router]
