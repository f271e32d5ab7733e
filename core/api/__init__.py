"""The core's own routes: customers, auth, bookings, availability, quotes, admin."""
from __future__ import annotations

from fastapi import APIRouter

PERMISSIONS: list[str] = []


def routers() -> list[APIRouter]:
    return []
