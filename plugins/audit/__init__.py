"""Audit logs (roadmap 4.3): every staff action, recorded automatically and tamper-evident.

The core hands each state-changing staff request to ``record_admin_action`` (see
``myhibachi.core.audit``); this plugin appends it to ``audit_logs`` in the same
transaction, each row HMAC-ed together with the previous row's hash. Triggers refuse
UPDATE, DELETE and TRUNCATE; the chain's head is anchored outside the database every 15
minutes (``myhibachi audit anchor``); ``myhibachi audit verify`` finds the first row whose
chain breaks, or the anchored tail that is gone.
"""
from __future__ import annotations

from myhibachi.core import Plugin, hookimpl


class AuditPlugin(Plugin):
    name = "audit"
    version = "1.0.0"
    flag = "FEATURE_FLAG_AUDIT_LOGS"
    compliance = True  # staff actions must not go unaudited: `flags sync` creates and keeps it on
    description = "Audit logs of admin actions"
    features = {"4.3": ["test_admin_audit_logs"]}
    permissions = ("audit.read",)

    @hookimpl
    async def record_admin_action(self, conn, action, ctx):
        from myhibachi.plugins.audit.service import append

        await append(conn, ctx, action)

    @hookimpl
    def register_cli(self, app):
        from myhibachi.plugins.audit.cli import cli

        app.add_typer(cli, name="audit")


plugin = AuditPlugin()
