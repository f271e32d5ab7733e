"""Message templates (roadmap 6.2): versioned SMS and email templates with variables, per language.

Senders get a rendered template through the ``render_messages`` hook, by key; rendering
substitutes only known ``{variable}`` names (no attribute access, no expressions), escapes
HTML, and refuses unknown variables when a template is saved.
"""
from __future__ import annotations

from myhibachi.core import Plugin, hookimpl


class CommTemplatesPlugin(Plugin):
    name = "comm_templates"
    version = "1.0.0"
    flag = "FEATURE_FLAG_COMMUNICATION_TEMPLATES"
    description = "Versioned SMS and email templates with variables, per language, rendered safely."
    features = {"6.2": ["test_template_management"]}
    permissions = ("templates.read", "templates.write")
    requires = ("comms",)  # previews count SMS segments through its Messaging service

    @hookimpl
    async def render_messages(self, key, channel, recipients, conn, ctx):
        from myhibachi.plugins.comm_templates import service

        return await service.render_by_key(conn, ctx, key, channel, recipients)


plugin = CommTemplatesPlugin()
