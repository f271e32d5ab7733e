"""Audit logs (roadmap 4.3): recorded automatically, in the change's transaction, tamper-evident."""
from __future__ import annotations

import asyncio
import os
import sys
import uuid

import httpx
import pytest
import psycopg
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from myhibachi.core import Plugin, hookimpl
from myhibachi.core.audit import audited, note_change
from myhibachi.core.auth import authenticated, Principal, create_api_key, require
from myhibachi.core.db import Conn
from myhibachi.core.routing import Connection
from myhibachi.core.errors import Problem
from myhibachi.plugins.audit import service as audit_service
from myhibachi.plugins.audit.models import audit_logs
from tests.plugins.admin_rbac.helpers import PASSWORD, admin_headers
from tests.core.conftest import sign_up

FLAGS = {"FEATURE_FLAG_ADMIN_USERS": True, "FEATURE_FLAG_AUDIT_LOGS": True}



class Thing(BaseModel):
    label: str
    fail: bool = False


@audited("probe", action="probe.touch", id_arg="probe_id")
async def touch(conn, ctx, probe_id, actor=None):
    await conn.run(sa.text("INSERT INTO audit_probe (id, label) VALUES (:id, 'touched')"), {"id": probe_id})
    return {"id": probe_id}


class ProbePlugin(Plugin):
    """Routes that change a scratch table: noted, not noted, without get_conn, failing."""

    name = "probe"
    version = "1.0.0"
    permissions = ("probes.write",)

    @hookimpl
    def register_routes(self, router: APIRouter, ctx):
        @router.post("/probes/{probe_id}", status_code=201)
        async def create(probe_id: uuid.UUID, body: Thing, request: Request, conn: Conn = Connection,
                         _: Principal = Depends(require("probes.write"))):
            await conn.run(sa.text("INSERT INTO audit_probe (id, label) VALUES (:id, :label)"),
                               {"id": probe_id, "label": body.label})
            note_change(request, "probe", probe_id, {"label": {"old": None, "new": body.label},
                                                     "email": {"old": None, "new": "guest@example.com"}})
            if body.fail:
                raise Problem(409, "Conflict", "refused after writing", kind="conflict")
            return {"id": str(probe_id)}

        @router.put("/probes/{probe_id}")
        async def touch_route(probe_id: uuid.UUID, request: Request, conn: Conn = Connection,
                              _: Principal = Depends(require("probes.write"))):
            await touch(conn, request.app.state.ctx, probe_id)
            return {}

        @router.delete("/probes/{probe_id}")
        async def plain(probe_id: uuid.UUID, conn: Conn = Connection, _: Principal = Depends(require("probes.write"))):
            await conn.run(sa.text("DELETE FROM audit_probe WHERE id = :id"), {"id": probe_id})
            return {}

        @router.patch("/probes/{probe_id}")
        async def checked_in_service(probe_id: uuid.UUID, request: Request, conn: Conn = Connection,
                                     principal: Principal = Depends(authenticated)):
            # open to customers and staff; the permission is checked here, not declared
            if principal.is_staff and not principal.can("probes.write"):
                raise Problem(403, "Forbidden", "missing permission probes.write", kind="forbidden")
            await conn.run(sa.text("UPDATE audit_probe SET label = 'patched' WHERE id = :id"), {"id": probe_id})
            return {}

        @router.post("/probes/{probe_id}/ping")
        async def no_conn(probe_id: uuid.UUID, request: Request, _: Principal = Depends(require("probes.write"))):
            async with request.app.state.ctx.db.transaction() as conn:
                await conn.run(sa.text("INSERT INTO audit_probe (id, label) VALUES (:id, 'ping')"), {"id": probe_id})
            return {}


@pytest.fixture
async def probe_table(database):
    async with database.transaction() as conn:
        await conn.run(sa.text("CREATE TABLE IF NOT EXISTS audit_probe (id uuid PRIMARY KEY, label text)"))
    yield
    async with database.transaction() as conn:
        await conn.run(sa.text("DROP TABLE IF EXISTS audit_probe"))


async def rows(app, **where) -> list[dict]:
    async with app.state.ctx.db.read() as conn:
        query = sa.select(audit_logs).order_by(audit_logs.c.seq)
        for k, v in where.items():
            query = query.where(audit_logs.c[k] == v)
        return [dict(r) for r in await conn.fetch_all(query)]


async def probe_count(app, probe_id) -> int:
    async with app.state.ctx.db.read() as conn:
        return await conn.scalar(sa.text("SELECT count(*) FROM audit_probe WHERE id = :id"), {"id": probe_id})


async def test_admin_audit_logs(make_app, client_of, probe_table):
    app = make_app(["admin_rbac", "audit", ProbePlugin()], flags=FLAGS)
    async with client_of(app) as c:
        root, h = await admin_headers(app, c, "root@myhibachi.dev", ["super_admin"])
        h = {**h, "User-Agent": "pytest-admin/1.0", "X-Request-ID": "req-create-1"}

        # an admin route records who, what, old/new (PII masked), ip, agent and request id
        r = await c.post("/v1/admin/users", headers=h, json={
            "email": "kim@myhibachi.dev", "name": "Chef Kim", "password": PASSWORD, "roles": ["staff"]})
        assert r.status_code == 201, r.text
        kim = r.json()
        [created] = await rows(app, action="admin_user.create")
        assert created["actor_kind"] == "admin" and created["actor_id"] == str(root["id"])
        assert created["resource_type"] == "admin_user" and created["resource_id"] == kim["id"]
        assert created["changes"]["email"] == {"old": None, "new": "***"}
        assert created["changes"]["name"] == {"old": None, "new": "***"}
        assert created["changes"]["roles"] == {"old": None, "new": ["staff"]}
        assert "kim@myhibachi.dev" not in str(created) and PASSWORD not in str(created)
        assert created["ip"] == "127.0.0.1" and created["user_agent"] == "pytest-admin/1.0"
        assert created["request_id"] == "req-create-1" and created["permission"] == "admin_users.write"

        r = await c.put(f"/v1/admin/users/{kim['id']}/roles", headers=h, json={"roles": ["manager"]})
        assert r.status_code == 200
        r = await c.delete(f"/v1/admin/users/{kim['id']}", headers=h)
        assert r.status_code == 200
        [deactivated] = await rows(app, action="admin_user.deactivate")
        assert deactivated["changes"] == {"status": {"old": "active", "new": "inactive"}}
        [roles_set] = await rows(app, action="admin_user.set_roles")
        assert roles_set["changes"] == {"roles": {"old": ["staff"], "new": ["manager"]}}

        # reads, refused and failed requests record nothing
        before = len(await rows(app))
        await c.get("/v1/admin/users", headers=h)
        assert (await c.delete(f"/v1/admin/users/{root['id']}", headers=h)).status_code == 409
        assert (await c.post("/v1/admin/users", headers=h, json={"email": "bad"})).status_code == 422
        assert len(await rows(app)) == before

        # a route that notes nothing: method, path template, permission, path params
        pid = uuid.uuid4()
        await c.post(f"/v1/probes/{pid}", headers=h, json={"label": "x"})
        assert (await c.delete(f"/v1/probes/{pid}", headers=h)).status_code == 200
        [plain] = await rows(app, action="DELETE /v1/probes/{probe_id}")
        assert plain["resource_type"] == "probes" and plain["resource_id"] == str(pid)
        assert plain["permission"] == "probes.write" and plain["changes"] is None

        # a route without get_conn is still recorded (in its own transaction)
        pid2 = uuid.uuid4()
        assert (await c.post(f"/v1/probes/{pid2}/ping", headers=h)).status_code == 200
        assert len(await rows(app, action="POST /v1/probes/{probe_id}/ping", resource_id=str(pid2))) == 1

        # a service call marked @audited, inside a request
        pid3 = uuid.uuid4()
        assert (await c.put(f"/v1/probes/{pid3}", headers=h)).status_code == 200
        [touched] = await rows(app, action="probe.touch")
        assert touched["resource_id"] == str(pid3) and touched["actor_id"] == str(root["id"])

        # an API key is a staff actor too
        async with app.state.ctx.db.transaction() as conn:
            key, key_row = await create_api_key(conn, app.state.ctx.settings, name="ops", scopes=["probes.write"])
        pid4 = uuid.uuid4()
        r = await c.delete(f"/v1/probes/{pid4}", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200
        [by_key] = await rows(app, resource_id=str(pid4))
        assert by_key["actor_kind"] == "api_key" and by_key["actor_id"] == str(key_row["id"])

        # queries: by user, by resource, by action, by time, with a cursor
        r = await c.get(f"/v1/admin/audit-logs/user/{root['id']}", headers=h)
        assert r.status_code == 200
        mine = r.json()["items"]
        assert mine and all(x["actor_id"] == str(root["id"]) for x in mine)
        r = await c.get(f"/v1/admin/audit-logs/resource/admin_user/{kim['id']}", headers=h)
        assert [x["action"] for x in r.json()["items"]] == [
            "admin_user.deactivate", "admin_user.set_roles", "admin_user.create"]
        r = await c.get("/v1/admin/audit-logs", headers=h, params={"action": "admin_user.create", "user": str(root["id"])})
        assert [x["resource_id"] for x in r.json()["items"]] == [kim["id"]]
        r = await c.get("/v1/admin/audit-logs", headers=h, params={"resource_type": "probes"})
        assert {x["resource_id"] for x in r.json()["items"]} == {str(pid), str(pid2), str(pid4)}
        r = await c.get("/v1/admin/audit-logs", headers=h, params={"since": "2999-01-01T00:00:00Z"})
        assert r.json()["items"] == []
        all_rows, cursor = [], None
        while True:
            r = await c.get("/v1/admin/audit-logs", headers=h, params={"limit": 2, **({"cursor": cursor} if cursor else {})})
            all_rows += r.json()["items"]
            cursor = r.json()["next_cursor"]
            if not cursor:
                break
        assert [x["seq"] for x in all_rows] == sorted((x["seq"] for x in all_rows), reverse=True)
        assert len(all_rows) == len(await rows(app))
        assert (await c.get("/v1/admin/audit-logs", headers=h, params={"cursor": "x"})).status_code == 422

        # logins and lockouts are in the trail too
        assert len(await rows(app, action="admin_auth.login", actor_id=str(root["id"]))) == 1
        for _ in range(5):
            await c.post("/v1/auth/staff/login", json={"email": "root@myhibachi.dev", "password": "wrong-pass-123"})
        [locked] = await rows(app, action="admin_auth.lockout")
        assert locked["resource_id"] == str(root["id"]) and locked["actor_kind"] == "system"

        # only audit.read may look
        _, staff = await admin_headers(app, c, "staff@myhibachi.dev", ["staff"])
        _, viewer = await admin_headers(app, c, "viewer@myhibachi.dev", ["read_only"])
        assert (await c.get("/v1/admin/audit-logs", headers=staff)).status_code == 403
        assert (await c.get("/v1/admin/audit-logs", headers=viewer)).status_code == 200


async def test_rolled_back_change_leaves_no_audit_row(make_app, client_of, probe_table):
    app = make_app(["admin_rbac", "audit", ProbePlugin()], flags=FLAGS)
    async with client_of(app) as c:
        _, h = await admin_headers(app, c, "root@myhibachi.dev", ["super_admin"])
        failed, kept = uuid.uuid4(), uuid.uuid4()
        r = await c.post(f"/v1/probes/{failed}", headers=h, json={"label": "doomed", "fail": True})
        assert r.status_code == 409
        assert await probe_count(app, failed) == 0 and await rows(app, resource_id=str(failed)) == []
        r = await c.post(f"/v1/probes/{kept}", headers=h, json={"label": "kept"})
        assert r.status_code == 201
        assert await probe_count(app, kept) == 1
        [row] = await rows(app, resource_id=str(kept))
        assert row["action"] == "probe.create" and row["changes"] == {
            "label": {"old": None, "new": "kept"}, "email": {"old": None, "new": "***"}}

    # the audit write fails: the change it describes is rolled back with it
    class Broken(Plugin):
        name = "broken_recorder"
        version = "1.0.0"

        @hookimpl
        async def record_admin_action(self, conn, action):
            await conn.run(sa.text("SELECT 1/0"))

    app = make_app(["admin_rbac", "audit", ProbePlugin(), Broken()], flags=FLAGS)
    async with app.state.ctx.db.transaction() as conn:
        key, _ = await create_api_key(conn, app.state.ctx.settings, name="ops", scopes=["probes.write"])
    h = {"Authorization": f"Bearer {key}"}
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        lost = uuid.uuid4()
        r = await c.post(f"/v1/probes/{lost}", headers=h, json={"label": "lost"})
        assert r.status_code >= 500
    assert await probe_count(app, lost) == 0 and await rows(app, resource_id=str(lost)) == []


async def test_staff_writes_on_routes_open_to_customers_are_recorded(make_app, client_of, probe_table):
    """Seen failing when only routes declaring a permission were recorded: a staff refund on
    a route customers share (deposits) then left no trace."""
    from myhibachi.core.auth import issue_access_token

    app = make_app(["admin_rbac", "audit", ProbePlugin()], flags=FLAGS)
    async with client_of(app) as c:
        _, h = await admin_headers(app, c, "root@myhibachi.dev", ["super_admin"])
        pid = uuid.uuid4()
        await c.post(f"/v1/probes/{pid}", headers=h, json={"label": "hello"})
        assert (await c.patch(f"/v1/probes/{pid}", headers=h)).status_code == 200
        token, _ = issue_access_token(app.state.ctx.settings, subject=str(uuid.uuid4()), kind="customer")
        assert (await c.patch(f"/v1/probes/{pid}", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    patched = [r for r in await rows(app) if r["method"] == "PATCH"]
    assert len(patched) == 1 and patched[0]["resource_type"] == "probes" and patched[0]["permission"] is None


async def test_hook_record_admin_action(make_app, client_of, probe_table):
    seen = []

    class Recorder(Plugin):
        name = "recorder"
        version = "1.0.0"

        @hookimpl
        async def record_admin_action(self, conn, action):
            # rows written by this very transaction (xmin is the inserting transaction)
            in_tx = await conn.scalar(sa.text(
                "SELECT count(*) FROM audit_probe WHERE xmin::text = pg_current_xact_id()::text"))
            seen.append((action, in_tx))

    app = make_app(["admin_rbac", Recorder(), ProbePlugin()], flags=FLAGS)
    async with client_of(app) as c:
        _, h = await admin_headers(app, c, "root@myhibachi.dev", ["super_admin"])
        pid = uuid.uuid4()
        await c.post(f"/v1/probes/{pid}", headers=h, json={"label": "hello"})
    probe = [a for a, _ in seen if a["resource_id"] == str(pid)]
    assert len(probe) == 1 and probe[0]["action"] == "probe.create"
    # called in the request's own transaction, before its commit
    assert [n for a, n in seen if a["resource_id"] == str(pid)] == [1]


async def test_audit_rows_are_append_only_and_tampering_is_detected(make_app, client_of, settings, db_url):
    app = make_app(["admin_rbac", "audit"], flags=FLAGS)
    async with client_of(app) as c:
        _, h = await admin_headers(app, c, "root@myhibachi.dev", ["super_admin"])
        # concurrent appends still form one chain (the advisory lock orders them)
        results = await asyncio.gather(*(
            c.post("/v1/admin/roles", headers=h, json={"name": f"role_{i}", "permissions": ["roles.read"]})
            for i in range(12)))
        assert [r.status_code for r in results] == [201] * 12
    logged = await rows(app)
    assert len(logged) == 13  # the login and twelve role creations
    assert logged[0]["prev_hash"] == audit_service.GENESIS
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(logged, logged[1:]))

    for statement in ("UPDATE audit_logs SET action = 'nothing'", "DELETE FROM audit_logs"):
        with pytest.raises(psycopg.Error, match="append-only"):
            async with app.state.ctx.db.transaction() as conn:
                await conn.run(sa.text(statement))

    async def verify_cli() -> tuple[int, str]:
        env = {**os.environ, "DATABASE_URL": db_url, "MYHIBACHI_HOME": str(settings.home_dir),
               "MYHIBACHI_SECRET_KEY": settings.secret_key}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "myhibachi.core.cli", "audit", "verify", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode, out.decode() + err.decode()

    code, out = await verify_cli()
    assert code == 0 and f"ok: {len(logged)} rows verified" in out, out

    victim = logged[2]
    async with app.state.ctx.db.transaction() as conn:  # the test database's owner is a superuser
        await conn.run(sa.text("ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_append_only"))
        await conn.run(sa.text("UPDATE audit_logs SET actor_id = 'someone-else' WHERE seq = :s"), {"s": victim["seq"]})
        await conn.run(sa.text("ALTER TABLE audit_logs ENABLE TRIGGER audit_logs_append_only"))
    code, out = await verify_cli()
    assert code == 1 and f"seq={victim['seq']}" in out and "content does not match" in out, out

    # a removed row breaks the chain at the row after it
    async with app.state.ctx.db.transaction() as conn:
        await conn.run(sa.text("ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_append_only"))
        await conn.run(sa.text("UPDATE audit_logs SET actor_id = :a WHERE seq = :s"),
                           {"a": victim["actor_id"], "s": victim["seq"]})
        await conn.run(sa.text("DELETE FROM audit_logs WHERE seq = :s"), {"s": logged[1]["seq"]})
        await conn.run(sa.text("ALTER TABLE audit_logs ENABLE TRIGGER audit_logs_append_only"))
    async with app.state.ctx.db.read() as conn:
        result = await audit_service.verify(conn, app.state.ctx.settings)
    assert result["ok"] is False and result["seq"] == logged[2]["seq"] and "removed" in result["reason"]


async def test_audit_verify_detects_rehash_relink_tail_deletion_and_truncation(make_app, client_of):
    """Against the keyed chain and its last anchor, ``verify`` reports: a superuser's edit
    re-hashed with plain sha256 (the key is not in the database), a removed row whose
    successor is relinked to the row before it (the hash covers ``prev_hash``), the last rows
    deleted, and the table emptied; TRUNCATE itself is refused like UPDATE and DELETE.
    Broken on purpose by hashing with sha256 instead of the HMAC (the re-hash passed), by
    leaving ``prev_hash`` out of the hashed bytes (the relink passed), by dropping the anchor
    check from ``verify`` (the tail deletion passed) and by dropping the TRUNCATE trigger's
    migration (TRUNCATE went through): red."""
    import hashlib

    app = make_app(["admin_rbac", "audit"], flags=FLAGS)
    ctx = app.state.ctx
    async with client_of(app) as c:
        _, h = await admin_headers(app, c, "root@myhibachi.dev", ["super_admin"])
        for i in range(4):
            r = await c.post("/v1/admin/roles", headers=h, json={"name": f"role_{i}", "permissions": ["roles.read"]})
            assert r.status_code == 201, r.text
    logged = await rows(app)
    assert len(logged) == 5
    async with ctx.db.transaction() as conn:
        anchored = await audit_service.anchor(conn, ctx.settings)
    assert anchored["ok"] and (anchored["rows"], anchored["seq"]) == (5, logged[-1]["seq"])
    assert (ctx.settings.home_dir / audit_service.ANCHOR_FILE).stat().st_mode & 0o777 == 0o600

    async def verified() -> dict:
        async with ctx.db.read() as conn:
            return await audit_service.verify(conn, ctx.settings)

    async def as_superuser(*statements) -> None:
        async with ctx.db.transaction() as conn:  # the test database's owner is a superuser
            await conn.run(sa.text("SET LOCAL session_replication_role = replica"))  # triggers off
            for statement, binds in statements:
                await conn.run(sa.text(statement), binds)

    def restore(row) -> tuple:
        return ("UPDATE audit_logs SET actor_id = :a, prev_hash = :p, hash = :h WHERE seq = :s",
                {"a": row["actor_id"], "p": row["prev_hash"], "h": row["hash"], "s": row["seq"]})

    assert await verified() == {"ok": True, "rows": 5}
    with pytest.raises(psycopg.Error, match="append-only"):
        async with ctx.db.transaction() as conn:
            await conn.run(sa.text("TRUNCATE audit_logs"))

    # an edited row re-hashed, and the rows after it, with the unkeyed sha256
    forged, prev = [], logged[1]["hash"]
    for row in logged[2:]:
        row = {**row, "actor_id": "someone-else" if row is logged[2] else row["actor_id"], "prev_hash": prev}
        row["hash"] = prev = hashlib.sha256(row["prev_hash"].encode() + audit_service.canonical(row)).hexdigest()
        forged.append(restore(row))
    await as_superuser(*forged)
    broken = await verified()
    assert (broken["ok"], broken["seq"]) == (False, logged[2]["seq"]) and "re-hashed" in broken["reason"]
    await as_superuser(*map(restore, logged[2:]))
    assert (await verified())["ok"]

    # a removed row, its successor relinked to the row before it
    await as_superuser(("DELETE FROM audit_logs WHERE seq = :s", {"s": logged[2]["seq"]}),
                       restore({**logged[3], "prev_hash": logged[1]["hash"]}))
    broken = await verified()
    assert (broken["ok"], broken["seq"]) == (False, logged[3]["seq"]) and "content" in broken["reason"]

    # the last rows deleted: a valid, shorter chain, which the anchor tells
    await as_superuser(("DELETE FROM audit_logs WHERE seq >= :s", {"s": logged[2]["seq"]}))
    broken = await verified()
    assert broken["ok"] is False and broken["seq"] == logged[-1]["seq"] and "deleted" in broken["reason"]

    # truncated behind the trigger's back
    await as_superuser(("TRUNCATE audit_logs", {}))
    broken = await verified()
    assert broken["ok"] is False and broken["rows"] == 0 and "truncated" in broken["reason"]

    # a forged anchor is refused, not trusted
    path = ctx.settings.home_dir / audit_service.ANCHOR_FILE
    path.write_text(path.read_text().replace('"rows": 5', '"rows": 0'))
    assert "not signed" in (await verified())["reason"]


async def test_audit_rehash_migrates_an_old_sha256_chain_and_tampering_still_shows(make_app, client_of, settings,
                                                                                  db_url):
    """A chain written by earlier versions (unkeyed sha256 from the first row, keyed rows
    appended on it since) fails ``verify`` with a pointer to ``myhibachi audit rehash``; the
    re-hash refuses, changing nothing, when a row was edited before it; after it, ``verify``
    passes, the head is anchored, and an edit is reported again. Broken on purpose by
    re-hashing without checking each row against its old chain first (the edited row was
    laundered and ``verify`` passed): red."""
    app = make_app(["admin_rbac", "audit"], flags=FLAGS)
    ctx = app.state.ctx
    async with client_of(app) as c:
        _, h = await admin_headers(app, c, "root@myhibachi.dev", ["super_admin"])
        for i in range(4):
            r = await c.post("/v1/admin/roles", headers=h, json={"name": f"role_{i}", "permissions": ["roles.read"]})
            assert r.status_code == 201, r.text
    logged = await rows(app)
    key = audit_service.chain_key(ctx.settings)
    old, prev = [], audit_service.GENESIS
    for i, row in enumerate(logged):  # three rows of the old chain, then two keyed ones on top of them
        digest = (audit_service.legacy_hash(prev, row) if i < 3 else audit_service.chain_hash(key, prev, row))
        old.append({**row, "prev_hash": prev, "hash": digest})
        prev = digest

    async def write(*versions) -> None:
        async with ctx.db.transaction() as conn:  # the test database's owner is a superuser
            await conn.run(sa.text("SET LOCAL session_replication_role = replica"))
            for row in versions:
                await conn.run(sa.text("UPDATE audit_logs SET actor_id = :a, prev_hash = :p, hash = :h WHERE seq = :s"),
                               {"a": row["actor_id"], "p": row["prev_hash"], "h": row["hash"], "s": row["seq"]})

    async def verified() -> dict:
        async with ctx.db.read() as conn:
            return await audit_service.verify(conn, ctx.settings)

    async def stored() -> list[tuple]:
        return [(r["seq"], r["actor_id"], r["prev_hash"], r["hash"]) for r in await rows(app)]

    await write(*old)
    broken = await verified()
    assert (broken["ok"], broken["seq"]) == (False, logged[0]["seq"]) and "audit rehash" in broken["reason"]

    # an edit made before the migration: refused, nothing changed, verify still tells
    await write({**old[1], "actor_id": "someone-else"})
    before = await stored()
    async with ctx.db.transaction() as conn:
        refused = await audit_service.rehash(conn, ctx.settings)
    assert (refused["ok"], refused["seq"]) == (False, logged[1]["seq"]) and "changed" in refused["reason"]
    assert await stored() == before and not (ctx.settings.home_dir / audit_service.ANCHOR_FILE).exists()
    async with ctx.db.transaction() as conn:  # the trigger is back on: the refusal rolled its DDL back
        with pytest.raises(psycopg.Error, match="append-only"):
            await conn.run(sa.text("DELETE FROM audit_logs"))
    await write(old[1])

    env = {**os.environ, "DATABASE_URL": db_url, "MYHIBACHI_HOME": str(settings.home_dir),
           "MYHIBACHI_SECRET_KEY": settings.secret_key}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "myhibachi.core.cli", "audit", "rehash", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0 and "re-hashed 5 of 5 rows" in out.decode(), out.decode() + err.decode()
    assert await verified() == {"ok": True, "rows": 5}
    anchor = audit_service.read_anchor(ctx.settings, key)
    assert (anchor["rows"], anchor["seq"]) == (5, logged[-1]["seq"])
    async with ctx.db.transaction() as conn:
        assert await audit_service.rehash(conn, ctx.settings) == {"ok": True, "rows": 5, "rehashed": 0}

    migrated = await rows(app)
    await write({**migrated[1], "actor_id": "someone-else"})
    broken = await verified()
    assert (broken["ok"], broken["seq"]) == (False, logged[1]["seq"]) and "re-hashed" in broken["reason"]


@pytest.fixture
async def app_role(db_url, database):
    """A role of the app's kind on the session database, granted as ``db upgrade`` grants it;
    dropped after the test. ``(name, url)``."""
    from myhibachi.core import roles

    name = f"myhibachi_app_{uuid.uuid4().hex[:8]}"
    async with database.transaction() as conn:
        await conn.run(sa.text(f"CREATE ROLE {name} LOGIN PASSWORD 'app-role-pw'"))
    await asyncio.to_thread(roles.grant, db_url, name)
    url = sa.engine.make_url(db_url).set(username=name, password="app-role-pw").render_as_string(hide_password=False)
    yield name, url
    async with database.transaction() as conn:
        await conn.run(sa.text(f"DROP OWNED BY {name}"))
        await conn.run(sa.text(f"DROP ROLE {name}"))


async def test_the_app_role_cannot_rewrite_the_audit_trail_and_serves_a_journey(settings, clean_db, client_of,
                                                                                  drain, app_role):
    """As the app's role (granted by ``myhibachi.core.roles`` after migrating): a customer signs
    up and books, staff act, the worker delivers, the chain verifies and anchors; and UPDATE,
    DELETE, TRUNCATE, ALTER TABLE ... DISABLE TRIGGER and SET session_replication_role on the
    audit trail are each refused by the database's privileges, before any trigger. Broken on
    purpose by granting the role UPDATE, DELETE and TRUNCATE on every table, the audit trail
    included: red (the UPDATE got past the privileges, only the trigger stopped it)."""
    from myhibachi.core.app import create_app
    from myhibachi.core.db import Database
    from myhibachi.core.flags import TogglesFile
    from myhibachi.core.models import bookings
    from tests.core.conftest import booking_body

    name, url = app_role
    for flag in FLAGS:
        TogglesFile(settings.toggles_path).set(flag, enabled=True, rollout=100)
    db = Database(url, pool_size=4)
    app = create_app(["admin_rbac", "audit"], settings=settings, database=db)
    ctx = app.state.ctx
    ctx.flags.start()
    try:
        assert await _scalar(db, "SELECT current_user") == name
        assert await _scalar(db, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is False
        async with client_of(app) as c:
            signed = await sign_up(c, app, {"email": "ann@example.com", "password": "correct horse 1",
                                            "name": "Ann Lee", "phone": "(415) 555-2671"})
            auth = {"Authorization": f"Bearer {signed['access_token']}"}
            r = await c.post("/v1/bookings", json=booking_body(), headers=auth)
            assert r.status_code == 201, r.text
            _, h = await admin_headers(app, c, "root@myhibachi.dev", ["super_admin"])
            r = await c.post("/v1/admin/roles", headers=h, json={"name": "host", "permissions": ["roles.read"]})
            assert r.status_code == 201, r.text
        await drain(app)  # the worker's statements, as the app's role
        async with db.read() as conn:
            assert await conn.scalar(sa.select(sa.func.count()).select_from(bookings)) == 1
        logged = await rows(app)
        assert [r["action"] for r in logged][-1] == "role.create"
        async with db.transaction() as conn:
            assert (await audit_service.anchor(conn, settings))["ok"]

        for statement in ("UPDATE audit_logs SET actor_id = 'someone-else'", "DELETE FROM audit_logs",
                          "TRUNCATE audit_logs", "ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_append_only",
                          "ALTER TABLE audit_logs DISABLE TRIGGER ALL", "DROP TRIGGER audit_logs_append_only ON audit_logs",
                          "SET session_replication_role = replica"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied|must be owner"):
                async with db.transaction() as conn:
                    await conn.run(sa.text(statement))
        assert await rows(app) == logged
        async with db.read() as conn:
            assert await audit_service.verify(conn, settings) == {"ok": True, "rows": len(logged)}
    finally:
        ctx.flags.stop()
        await db.close()


async def test_tables_created_after_the_grant_are_open_to_the_app_role(database, app_role):
    """A plugin migrated later (its tables made by the owner) needs no new grant: the default
    privileges cover it, the append-only tables excepted, which the next upgrade's grant narrows."""
    from myhibachi.core.db import Database

    name, url = app_role
    async with database.transaction() as conn:
        await conn.run(sa.text("CREATE TABLE IF NOT EXISTS later_plugin_things (id int PRIMARY KEY, label text)"))
    db = Database(url, pool_size=1)
    try:
        async with db.transaction() as conn:
            await conn.run(sa.text("INSERT INTO later_plugin_things VALUES (1, 'x')"))
            await conn.run(sa.text("UPDATE later_plugin_things SET label = 'y'"))
            await conn.run(sa.text("DELETE FROM later_plugin_things"))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            async with db.transaction() as conn:
                await conn.run(sa.text("TRUNCATE later_plugin_things"))
    finally:
        await db.close()
        async with database.transaction() as conn:
            await conn.run(sa.text("DROP TABLE IF EXISTS later_plugin_things"))


async def _scalar(db, statement: str):
    async with db.read() as conn:
        return await conn.scalar(sa.text(statement))


async def test_each_anchor_is_posted_to_the_external_sink(make_app, client_of, tmp_path, monkeypatch):
    """With ``anchor_url`` (and ``anchor_command``) set, every anchor hands the signed
    checkpoint to an HTTP endpoint (a server in this test process) and to a command's standard
    input; the copy is the file's, signed, and an endpoint that refuses fails the anchor job
    while the file is still written. Broken on purpose by not calling ``publish`` from
    ``anchor``: red (the server received nothing)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from myhibachi.plugins.audit import AuditSettings
    from myhibachi.plugins.audit.tasks import BrokenChain, anchor_chain

    received, answer = [], [204]

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append((self.headers.get("Authorization"), json.loads(self.rfile.read(
                int(self.headers["Content-Length"])))))
            self.send_response(answer[0])
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    copied = tmp_path / "copied.json"
    sink = AuditSettings(anchor_url=f"http://127.0.0.1:{server.server_port}/anchors", anchor_token="sink-token",
                         anchor_command=f"{sys.executable} -c \"import sys; open({str(copied)!r}, 'w')"
                                        ".write(sys.stdin.read())\"")
    try:
        app = make_app(["admin_rbac", "audit"], flags=FLAGS)
        ctx = app.state.ctx
        async with client_of(app) as c:
            await admin_headers(app, c, "root@myhibachi.dev", ["super_admin"])
        async with ctx.db.transaction() as conn:
            result = await audit_service.anchor(conn, ctx.settings, sink)
        assert result["published"] == {"url": "ok", "command": "ok"}
        file_copy = json.loads((ctx.settings.home_dir / audit_service.ANCHOR_FILE).read_text())
        assert received == [("Bearer sink-token", file_copy)] and json.loads(copied.read_text()) == file_copy
        assert file_copy["rows"] == 1 and file_copy["mac"] == audit_service._mac(
            audit_service.chain_key(ctx.settings), file_copy)

        # the endpoint refuses: the periodic job fails (kept in last_error), the file is still written
        answer[0] = 503
        app = make_app(["admin_rbac", "audit"], flags=FLAGS)
        ctx = app.state.ctx
        monkeypatch.setattr(ctx.plugins.get("audit"), "settings", sink)
        async with client_of(app) as c:
            await c.post("/v1/auth/staff/login", json={"email": "root@myhibachi.dev", "password": PASSWORD})
        async with ctx.db.transaction() as conn:
            with pytest.raises(BrokenChain, match="url.*answered 503"):
                await anchor_chain(conn, ctx)
        assert len(received) == 2 and received[1][1]["rows"] == 2
        assert json.loads((ctx.settings.home_dir / audit_service.ANCHOR_FILE).read_text())["rows"] == 2
    finally:
        server.shutdown()
        server.server_close()


async def test_refused_staff_writes_and_escalations_are_audited(make_app, client_of):
    """A staff write refused 403 (a permission the caller lacks, or an escalation: granting a
    role with permissions the caller does not hold) leaves ``refused <action>`` with the actor,
    the route's permission and nothing it would have changed; a refused read, a customer's 403
    and a 422 leave nothing. Broken on purpose by returning early on every status >= 400 in
    ``after_response`` (as before): red."""
    app = make_app(["admin_rbac", "audit"], flags=FLAGS)
    async with client_of(app) as c:
        admin, as_admin = await admin_headers(app, c, "admin@myhibachi.dev", ["admin"])
        manager, as_manager = await admin_headers(app, c, "manager@myhibachi.dev", ["manager"])
        escalate = await c.post("/v1/admin/users", headers=as_admin, json={
            "email": "crony@myhibachi.dev", "name": "Crony", "password": PASSWORD, "roles": ["super_admin"]})
        missing = await c.post("/v1/admin/roles", headers=as_manager, json={"name": "x", "permissions": ["roles.read"]})
        _, as_staff = await admin_headers(app, c, "staff@myhibachi.dev", ["staff"])
        read = await c.get("/v1/admin/audit-logs", headers=as_staff)
        bad = await c.post("/v1/admin/users", headers=as_admin, json={"email": "nope"})
    assert (escalate.status_code, escalate.json()["type"].rsplit("/", 1)[-1]) == (403, "privilege-escalation")
    assert (missing.status_code, read.status_code, bad.status_code) == (403, 403, 422)
    refused = [r for r in await rows(app) if r["action"].startswith("refused ")]
    assert [(r["action"], r["actor_id"], r["permission"], r["changes"]) for r in refused] == [
        ("refused POST /v1/admin/users", str(admin["id"]), "admin_users.write", None),
        ("refused POST /v1/admin/roles", str(manager["id"]), "roles.write", None)]
    assert not await rows(app, action="admin_user.create")
