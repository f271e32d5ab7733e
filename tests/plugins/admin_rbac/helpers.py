"""Staff accounts for tests: created through the service (as the CLI does), signed in over HTTP."""
from __future__ import annotations

from myhibachi.plugins.admin_rbac import service

PASSWORD = "Grill-master-2024!"


async def make_admin(app, email: str, roles: list[str], password: str = PASSWORD) -> dict:
    ctx = app.state.ctx
    async with ctx.db.transaction() as conn:
        return await service.create_user(conn, ctx, None, email=email, name=email.split("@")[0], password=password,
                                         roles=roles)


async def login(client, email: str, password: str = PASSWORD) -> dict[str, str]:
    r = await client.post("/v1/auth/staff/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def admin_headers(app, client, email: str, roles: list[str]) -> tuple[dict, dict[str, str]]:
    user = await make_admin(app, email, roles)
    return user, await login(client, email)
