"""Audit logs (roadmap 4.3): every staff action, recorded automatically and tamper-evident.

The core hands each state-changing staff request to ``record_admin_action`` (see
``myhibachi.core.audit``); this plugin appends it to ``audit_logs`` in the same
transaction, each row HMAC-ed together with the previous row's hash. Triggers refuse
UPDATE, DELETE and TRUNCATE; the chain's head is anchored outside the database every 15
minutes (``myhibachi audit anchor``: a signed checkpoint file, a log line, and optionally an
HTTP endpoint or a command); ``myhibachi audit verify`` finds the first row whose
chain breaks, or the anchored tail that is gone.
"""
from __future__ import annotations

from pydantic import BaseModel, Field

from myhibachi.core import Plugin, hookimpl


class AuditSettings(BaseModel):
    """The plugin's own settings, read from ``MYHIBACHI_AUDIT_*``: where else each anchor goes."""

    anchor_url: str | None = Field(default=None, pattern=r"^https?://",
                                   description="HTTP(S) endpoint each signed checkpoint is POSTed to as JSON "
                                               "(an outside copy of the chain's head). Unset: none.")
    anchor_token: str | None = Field(default=None, description="Bearer token sent to `anchor_url`.")
    anchor_command: str | None = Field(default=None,
                                       description="Command (split like a shell's words, run without one) given "
                                                   "each signed checkpoint as JSON on its standard input. Unset: none.")
    anchor_timeout_seconds: float = Field(default=10.0, gt=0, le=120,
                                          description="How long the URL or the command may take before the "
                                                      "anchor counts as not published.")


class AuditPlugin(Plugin):
    name = "audit"
    version = "1.0.0"
    flag = "FEATURE_FLAG_AUDIT_LOGS"
    compliance = True  # staff actions must not go unaudited: `flags sync` creates and keeps it on
    description = "Audit logs of admin actions"
    features = {"4.3": ["test_admin_audit_logs"]}
    permissions = ("audit.read",)
    settings = AuditSettings

    @hookimpl
    async def record_admin_action(self, conn, action, ctx):
        from myhibachi.plugins.audit.service import append

        await append(conn, ctx, action)

    @hookimpl
    def register_cli(self, app):
        from myhibachi.plugins.audit.cli import cli

        app.add_typer(cli, name="audit")


plugin = AuditPlugin()
