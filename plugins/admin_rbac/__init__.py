"""Admin users and roles (roadmap 4.1): staff accounts, password login, role-based permissions.

Staff sign in with ``POST /v1/auth/staff/login`` and get the core's access token (kind
``admin``) bound to a session row. Every request re-checks that session and the user
through ``resolve_principal`` and loads the user's current permissions from their roles,
so deactivating a user or changing roles takes effect on the next request.
"""
from __future__ import annotations

from myhibachi.core import Plugin, hookimpl


class AdminRbacPlugin(Plugin):
    name = "admin_rbac"
    version = "1.0.0"
    flag = "FEATURE_FLAG_ADMIN_USERS"
    description = "Admin users, roles and permissions"
    features = {"4.1": ["test_admin_user_management", "test_admin_role_permissions"]}
    permissions = ("admin_users.read", "admin_users.write", "roles.read", "roles.write")

    @hookimpl
    async def resolve_principal(self, claims, ctx):
        if claims.get("kind") != "admin":
            return None
        from myhibachi.plugins.admin_rbac.service import principal_for

        return await principal_for(ctx, claims)

    @hookimpl
    def register_cli(self, app):
        from myhibachi.plugins.admin_rbac.cli import cli

        app.add_typer(cli, name="admin-users")


plugin = AdminRbacPlugin()
