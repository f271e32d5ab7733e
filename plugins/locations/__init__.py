"""Multi-location support (roadmap 1.2): locations, their capacity, and bookings carrying one."""
from __future__ import annotations

from myhibachi.core import Plugin, hookimpl


class LocationsPlugin(Plugin):
    name = "locations"
    version = "1.0.0"
    flag = "FEATURE_FLAG_MULTI_LOCATION"
    description = "Locations with capacity, service area and hours; bookings are assigned one."
    features = {"1.2": ["test_booking_multi_location"]}
    permissions = ("locations.read", "locations.write")

    @hookimpl
    def register_fields(self):
        from myhibachi.plugins.locations.schemas import BookingLocation, LocationChoice

        return {"booking_create": LocationChoice, "booking_update": LocationChoice, "quote": LocationChoice,
                "availability": LocationChoice, "booking": BookingLocation, "slot": BookingLocation}

    @hookimpl
    def booking_fields(self, rows):
        from myhibachi.plugins.locations import service

        return {self.name: [service.location_in(row["pools"]) for row in rows]}

    @hookimpl
    async def validate_booking(self, booking, conn, ctx):
        from myhibachi.plugins.locations import service

        return await service.validate_booking(conn, ctx, booking)

    @hookimpl
    async def booking_limits(self, booking, starts, conn, ctx):
        from myhibachi.plugins.locations import service

        return await service.limits(conn, ctx, booking, starts)

    @hookimpl
    def booking_query_filters(self, params, ctx):
        from myhibachi.plugins.locations import service

        return service.query_filters(params)


plugin = LocationsPlugin()
