"""The core's own routes: customers, auth, bookings, availability, quotes, admin."""
from __future__ import annotations

from fastapi import APIRouter

PERMISSIONS: list[str] = ["customers.read", "customers.write"]


def routers() -> list[APIRouter]:
    from myhibachi.core.api import auth, customers

    return [auth.router(), customers.router(), customers.admin_router()]
