"""Feature flags, server mode: the official Unleash client polling a real Unleash 8 server."""
from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid

import pytest
from typer.testing import CliRunner

from myhibachi.core.cli import app as cli
from myhibachi.core.flags import TogglesFile, feature, server_state_path
from myhibachi.core.plugins import discover
from tests.core.test_flags import flagged_plugin

ENV = "development"  # the environment of the server fixture's backend token


def unique_flag() -> str:
    return f"FEATURE_FLAG_T{uuid.uuid4().hex[:10].upper()}"


async def flips_to(client, path: str, status: int, timeout: float = 10.0) -> float:
    start = time.monotonic()
    while (await client.get(path)).status_code != status:
        assert time.monotonic() - start < timeout, f"{path} did not answer {status} within {timeout}s"
        await asyncio.sleep(0.1)
    return time.monotonic() - start


# --- start-up never waits on the server ---------------------------------------------------


@pytest.fixture(params=["closed port", "silent server"])
def unreachable_url(request):
    """An Unleash URL nobody answers: a closed port, or a listener that never replies."""
    if request.param == "closed port":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        yield f"http://127.0.0.1:{port}/api"
        return
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # connections complete in the backlog; nothing is ever read or sent
        yield f"http://127.0.0.1:{silent.getsockname()[1]}/api"


async def test_unreachable_server_starts_at_once_on_the_servers_last_state(make_app, client_of, settings,
                                                                           unreachable_url, caplog):
    """Broken on purpose: bootstrapping server mode from the toggles file again (red: bootoff on)."""
    on, off = flagged_plugin("FEATURE_FLAG_BOOT_ON", "booton"), flagged_plugin("FEATURE_FLAG_BOOT_OFF", "bootoff")
    new = flagged_plugin("FEATURE_FLAG_BOOT_NEW", "bootnew")  # installed since: not on the server yet
    TogglesFile(server_state_path(settings)).write({"version": 2, "features": [
        feature("FEATURE_FLAG_BOOT_ON"), feature("FEATURE_FLAG_BOOT_OFF", enabled=False)]})
    start = time.monotonic()
    # the local toggles file says the opposite: server mode does not read it
    app = make_app([on, off, new], flags={"FEATURE_FLAG_BOOT_ON": False, "FEATURE_FLAG_BOOT_OFF": True},
                   unleash_url=unreachable_url, unleash_api_token="*:development.unused")
    async with client_of(app) as c:
        first = await c.get("/v1/booton")
        elapsed = time.monotonic() - start
        assert app.state.ctx.flags.server_mode
        assert first.status_code == 200 and (await c.get("/v1/bootoff")).status_code == 404
        assert elapsed < 1.5, f"start-up and first request took {elapsed:.2f}s"
        await asyncio.sleep(2.5)  # polls fail meanwhile: the last known state holds
        assert (await c.get("/v1/booton")).status_code == 200
        assert (await c.get("/v1/bootoff")).status_code == 404
        ready = await c.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["flags"] | {"age_seconds": 0, "reachable": None} == {
            "ok": True, "mode": "server", "age_seconds": 0, "reachable": None, "missing": ["FEATURE_FLAG_BOOT_NEW"]}
        while app.state.ctx.flags.reachable is None:  # a silent server: registration then fetch time out
            assert time.monotonic() - start < 10
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.2)  # one more failed poll
    # one line when the server goes, not a traceback per poll
    lines = [r for r in caplog.records if r.name.startswith(("UnleashClient", "myhibachi.flags"))
             and r.levelno >= logging.WARNING]
    assert [r.getMessage().split(" (")[0] for r in lines] == [f"Unleash server {unreachable_url} unreachable"]
    assert not any(r.exc_info for r in lines)


async def test_no_flag_state_anywhere_is_not_ready(make_app, client_of, unreachable_url):
    app = make_app([flagged_plugin()], flags={"FEATURE_FLAG_FLAGGED": True},
                   unleash_url=unreachable_url, unleash_api_token="*:development.unused")
    async with client_of(app) as c:
        ready = await c.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["flags"] | {"reachable": None} == {
            "ok": False, "mode": "server", "age_seconds": None, "reachable": None}
        assert (await c.get("/v1/flagged")).status_code == 404


# --- a flip on the server reaches a running app -------------------------------------------


async def test_server_flip_reaches_a_running_app(make_app, client_of, unleash_server):
    flag = unique_flag()
    with unleash_server.admin() as admin:
        features = "/api/admin/projects/default/features"
        assert admin.post(features, json={"name": flag, "type": "release"}).status_code == 201
        def rollout_of(percent: int) -> dict:
            return {"name": "flexibleRollout", "constraints": [],
                    "parameters": {"rollout": str(percent), "stickiness": "userId", "groupId": flag}}

        strategy = admin.post(f"{features}/{flag}/environments/{ENV}/strategies", json=rollout_of(100)).json()

        app = make_app([flagged_plugin(flag)], unleash_url=unleash_server.url,
                       unleash_api_token=unleash_server.client_token)
        async with client_of(app) as c:
            await flips_to(c, "/v1/flagged", 404)  # the environment is off
            assert admin.post(f"{features}/{flag}/environments/{ENV}/on").status_code == 200
            on_after = await flips_to(c, "/v1/flagged", 200)

            rollout = f"{features}/{flag}/environments/{ENV}/strategies/{strategy['id']}"
            assert admin.put(rollout, json=rollout_of(0)).status_code == 200
            await flips_to(c, "/v1/flagged", 404)

            assert admin.post(f"{features}/{flag}/environments/{ENV}/off").status_code == 200
            assert admin.put(rollout, json=rollout_of(100)).status_code == 200
            await asyncio.sleep(1.5)  # rollout back to 100% but the environment is off
            assert (await c.get("/v1/flagged")).status_code == 404
            assert admin.post(f"{features}/{flag}/environments/{ENV}/on").status_code == 200
            await flips_to(c, "/v1/flagged", 200)
    assert on_after < 5  # a 1 s poll


# --- an outage: a restart while the server is down ---------------------------------------


async def test_restart_with_unleash_down_keeps_the_servers_rollout(make_app, client_of, unleash_server, caplog):
    """The server rolls a flag out to 50%; the server stops; the app restarts: the same sessions
    still see it (the server's last state, kept on disk), not the toggles file's 10%.

    Broken on purpose: ServerStateCache.set not writing the file (red: every session 404 and
    /readyz 503 after the restart); server mode reading the toggles file again (red: 10%).
    """
    flag = unique_flag()
    features = "/api/admin/projects/default/features"
    with unleash_server.admin() as admin:
        assert admin.post(features, json={"name": flag, "type": "release"}).status_code == 201
        assert admin.post(f"{features}/{flag}/environments/{ENV}/strategies", json={
            "name": "flexibleRollout", "constraints": [],
            "parameters": {"rollout": "50", "stickiness": "userId", "groupId": flag}}).status_code == 200
        assert admin.post(f"{features}/{flag}/environments/{ENV}/on").status_code == 200
    sessions = [f"session-{i}" for i in range(80)]

    def start_app():
        return make_app([flagged_plugin(flag)], flags={flag: 10}, unleash_url=unleash_server.url,
                        unleash_api_token=unleash_server.client_token)

    async def who_sees_it(c) -> set[str]:
        return {s for s in sessions if (await c.get("/v1/flagged", headers={"x-session-id": s})).status_code == 200}

    app = start_app()
    flags = app.state.ctx.flags
    async with client_of(app) as c:
        start = time.monotonic()
        while flags.rollout(flag) != 50:
            assert time.monotonic() - start < 10, "the server's state never arrived"
            await asyncio.sleep(0.05)
        before, again = None, await who_sees_it(c)
        while again != before:  # the cache is written just before the engine takes the state
            before, again = again, await who_sees_it(c)
    flags.stop()
    assert 20 <= len(before) <= 60, len(before)  # about half, not the file's 10%

    unleash_server.stop()
    try:
        restarted = start_app()
        async with client_of(restarted) as c:
            assert await who_sees_it(c) == before
            ready = await c.get("/readyz")
            assert ready.status_code == 200 and ready.json()["checks"]["flags"]["ok"] is True
            await asyncio.sleep(1.5)  # polls fail meanwhile
            assert await who_sees_it(c) == before
            assert restarted.state.ctx.flags.reachable is False
            assert restarted.state.ctx.flags.age() >= 1.0
    finally:
        unleash_server.start()
    start = time.monotonic()
    while restarted.state.ctx.flags.reachable is not True:
        assert time.monotonic() - start < 10, "the client never noticed the server was back"
        await asyncio.sleep(0.1)
    assert restarted.state.ctx.flags.age() < 2
    said = [r.getMessage() for r in caplog.records if r.name == "myhibachi.flags"]
    assert len([m for m in said if "unreachable" in m]) == 1 and len([m for m in said if "reachable again" in m]) == 1
    assert not [r for r in caplog.records if r.name.startswith("UnleashClient") and r.levelno >= logging.WARNING]


# --- flags sync ---------------------------------------------------------------------------


@pytest.fixture
def installed_test_plugin(tmp_path, monkeypatch):
    """Installs a plugin (an entry point in a dist-info folder on sys.path) for the CLI to find."""
    dist = tmp_path / "site" / "myhibachi_synced_test-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myhibachi-synced-test\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[myhibachi.plugins]\nsynced = tests.core.test_flags_server:synced_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return synced_plugin


synced_plugin = flagged_plugin("FEATURE_FLAG_SYNCED_TEST", "synced")


def sync(home, unleash_server, token=None):
    return CliRunner().invoke(cli, ["flags", "sync"], env={
        "MYHIBACHI_HOME": str(home), "UNLEASH_URL": unleash_server.url,
        "UNLEASH_ADMIN_TOKEN": token or unleash_server.admin_token})


def test_flags_sync_creates_every_installed_plugins_flag(tmp_path, unleash_server, installed_test_plugin):
    flags = {ep().flag for ep in discover().values() if ep().flag}
    assert installed_test_plugin.flag in flags

    first = sync(tmp_path, unleash_server)
    assert first.exit_code == 0, first.output
    rows = {line.split()[0]: line.split()[1:] for line in first.output.splitlines()[2:-1]}
    assert rows[installed_test_plugin.flag] == ["synced", "created"]

    with unleash_server.admin() as admin:
        for flag in flags:
            got = admin.get(f"/api/admin/projects/default/features/{flag}")
            assert got.status_code == 200, flag
            for env in got.json()["environments"]:
                assert env["enabled"] is False  # created off: the dashboard turns it on
                [strategy] = env["strategies"]
                assert strategy["name"] == "flexibleRollout"
                assert strategy["parameters"] == {"rollout": "100", "stickiness": "userId", "groupId": flag}

    again = sync(tmp_path, unleash_server)
    assert again.exit_code == 0 and "created 0 flag(s)" in again.output
    assert "existing" in again.output

    refused = sync(tmp_path, unleash_server, token="*:*.not-a-token")
    assert refused.exit_code == 1 and "401" in refused.output
