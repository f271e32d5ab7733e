"""Multi-location support (roadmap 1.2): locations, their capacity, and bookings carrying one."""
from __future__ import annotations

from typing import Any

from myhibachi.core import Plugin, hookimpl


class LocationsPlugin(Plugin):
    name = "locations"
    version = "1.0.0"
    flag = "FEATURE_FLAG_MULTI_LOCATION"
    description = "Locations with capacity, service area and hours; bookings are assigned one."
    features = {"1.2": ["test_booking_multi_location"]}
    permissions = ("locations.read", "locations.write")

    @hookimpl
    def register_routes(self, router, ctx) -> None:
        from myhibachi.plugins.locations.routes import add_routes

        add_routes(router)

    @hookimpl
    def register_event_handlers(self) -> dict[str, list]:
        from myhibachi.plugins.locations import service

        return {"booking.created": [service.on_booking_created], "booking.updated": [service.on_booking_updated]}

    @hookimpl
    async def validate_booking(self, booking: dict[str, Any], conn, ctx) -> str | None:
        from myhibachi.plugins.locations import service

        return await service.validate_booking(conn, ctx, booking)

    @hookimpl
    def booking_query_filters(self, params: dict[str, str], ctx) -> list[Any] | None:
        from myhibachi.plugins.locations import service

        return service.query_filters(params)

    @hookimpl
    async def booking_capacity(self, booking: dict[str, Any], conn, ctx) -> int | None:
        from myhibachi.plugins.locations import service

        return await service.slot_capacity(conn, ctx, booking)

    @hookimpl
    async def booking_slots(self, booking: dict[str, Any], starts: list, conn, ctx) -> list:
        from myhibachi.plugins.locations import service

        return await service.slot_answers(conn, ctx, booking, starts)

    @hookimpl
    async def booking_slot_scope(self, booking: dict[str, Any], conn, ctx) -> str | None:
        from myhibachi.plugins.locations import service

        return await service.slot_scope(conn, ctx, booking)


plugin = LocationsPlugin()
