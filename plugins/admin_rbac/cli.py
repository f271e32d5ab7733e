"""``myhibachi admin-users ...``: create the first staff login from the command line."""
from __future__ import annotations

import asyncio
import os
from typing import List

import typer

cli = typer.Typer(help="Admin users (staff logins).", no_args_is_help=True)

PASSWORD_ENV = "MYHIBACHI_ADMIN_PASSWORD"


@cli.command("create")
def create(
    email: str,
    role: List[str] = typer.Option(["super_admin"], "--role", help="Role name; repeat for several."),
    name: str = typer.Option("", help="Display name (default: the email's local part)."),
) -> None:
    """Create an admin user. The password comes from MYHIBACHI_ADMIN_PASSWORD or a prompt."""
    from myhibachi.core import Problem

    password = os.environ.get(PASSWORD_ENV) or typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = asyncio.run(_create(email, name or email.split("@", 1)[0], password, list(role)))
    except Problem as exc:
        typer.echo(f"error: {exc.detail or exc.title}", err=True)
        raise typer.Exit(1)
    typer.echo(f"created admin user {user['email']} ({user['id']}) with roles {', '.join(user['roles']) or 'none'}")


async def _create(email: str, name: str, password: str, roles: list[str]) -> dict:
    from myhibachi.core import audit, create_app
    from myhibachi.plugins.admin_rbac.service import create_user

    ctx = create_app().state.ctx
    ctx.flags.start()
    try:
        async with ctx.db.transaction() as conn:
            user = await create_user(conn, ctx, None, email=email, name=name, password=password, roles=roles)
            await audit.record(conn, ctx, action="admin_user.create", resource_type="admin_user",
                               resource_id=user["id"], changes={"roles": {"old": None, "new": user["roles"]}})
        return user
    finally:
        ctx.flags.stop()
        await ctx.db.close()
