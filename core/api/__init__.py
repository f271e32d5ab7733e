"""The core's own routes: customers, auth, bookings, availability, quotes, admin."""
from __future__ import annotations

from fastapi import APIRouter

from myhibachi.core.api import events

PERMISSIONS: list[str] = [*events.PERMISSIONS]


def routers() -> list[APIRouter]:
    return [events.router]
