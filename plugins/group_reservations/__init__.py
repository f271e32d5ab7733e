"""Group reservations (roadmap 1.5): a named guest list over one or more chef stations of a
location, a group menu, and split billing; each station is a core booking, and each payer pays
their own share's deposit through the deposits plugin's service."""
from __future__ import annotations

from pydantic import BaseModel, Field

from myhibachi.core import Plugin, hookimpl


class GroupSettings(BaseModel):
    """Read from ``MYHIBACHI_GROUP_RESERVATIONS_*``."""

    menu_deadline_hours: int = Field(default=72, ge=0, description="Guest list and menu changes close this long "
                                                                   "before the event.")


class GroupReservationsPlugin(Plugin):
    name = "group_reservations"
    version = "0.1.0"
    flag = "FEATURE_FLAG_GROUP_RESERVATIONS"
    description = ("Group bookings with named guests, a group menu, split billing (a deposit per payer) and several "
                   "chef stations.")
    features = {"1.5": ["test_booking_group_reservations"]}
    requires = ("locations", "deposits")
    core = ">=0.1,<1"
    permissions = ("groups.read", "groups.write")
    settings = GroupSettings

    @hookimpl
    def register_event_handlers(self) -> dict[str, list]:
        from myhibachi.plugins.group_reservations import service

        return {"payment.succeeded": [service.on_payment_succeeded]}

    @hookimpl
    async def customer_merge(self, source_id, target_id, conn, ctx):
        from myhibachi.plugins.group_reservations.service import merge_customer

        await merge_customer(conn, source_id, target_id)

    @hookimpl
    def register_fields(self):
        from myhibachi.plugins.group_reservations.schemas import GroupTable

        return {"booking_create": GroupTable, "booking_update": GroupTable}

    @hookimpl
    async def validate_booking(self, booking, conn):
        from myhibachi.plugins.group_reservations import service

        return await service.validate(conn, booking)

    @hookimpl
    async def price_booking(self, booking, conn):
        from myhibachi.plugins.group_reservations import service

        return await service.menu_lines(conn, booking)

    @hookimpl
    async def rotate_keys(self, batch, conn, ctx):
        from myhibachi.plugins.group_reservations.service import rotate_keys

        return await rotate_keys(conn, ctx, batch=batch)


plugin = GroupReservationsPlugin()
