"""Communication preferences (roadmap 2.3): a customer's email and SMS opt-ins for marketing
and transactional messages, frequency, language and quiet hours, with a history of every
change as proof of consent. Honoured by every sender through the core's ``may_send``."""
from __future__ import annotations

from myhibachi.core import Plugin, hookimpl


class PreferencesPlugin(Plugin):
    name = "preferences"
    version = "1.0.0"
    flag = "FEATURE_FLAG_CUSTOMER_PREFERENCES"
    description = "Email/SMS opt-ins for marketing and transactional messages, language and quiet hours."
    features = {"2.3": ["test_customer_communication_preferences"]}
    permissions = ("preferences.read", "preferences.write")

    @hookimpl
    def register_events(self) -> list:
        from myhibachi.core import Event
        from myhibachi.plugins.preferences.schemas import PreferencesChanged

        return [Event("preferences.changed", PreferencesChanged)]

    @hookimpl
    async def may_send(self, customer_id, channel, kind, conn, ctx) -> str | None:
        from myhibachi.plugins.preferences.service import refusal

        return await refusal(conn, customer_id, channel, kind)

    @hookimpl
    async def customer_languages(self, customer_ids, conn, ctx):
        from myhibachi.plugins.preferences.service import languages

        return await languages(conn, customer_ids)

    @hookimpl
    async def customer_export_sections(self, customer_id, conn, ctx):
        from myhibachi.plugins.preferences.service import export_sections

        return await export_sections(conn, ctx, customer_id)

    @hookimpl
    async def customer_merge(self, source_id, target_id, conn, ctx):
        from myhibachi.plugins.preferences.service import merge_customer

        await merge_customer(conn, ctx, source_id, target_id)

    @hookimpl
    async def customer_erase(self, customer_id, conn, ctx):
        from myhibachi.plugins.preferences.service import erase_customer

        await erase_customer(conn, ctx, customer_id)


plugin = PreferencesPlugin()
