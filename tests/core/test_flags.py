"""Feature flags, embedded mode: the official Unleash client offline on the toggles file."""
from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid

from fastapi import APIRouter
from typer.testing import CliRunner

from myhibachi.core import Plugin, hookimpl
from myhibachi.core.auth import Principal, issue_access_token
from myhibachi.core.cli import app as cli
from myhibachi.core.flags import Flags, TogglesFile, feature
from myhibachi.core.settings import Settings

FLAG = "FEATURE_FLAG_FLAGGED"


def flagged_plugin(flag: str = FLAG, name: str = "flagged") -> Plugin:
    """A plugin with one route, ``GET /v1/<name>``, gated by ``flag``."""

    class Flagged(Plugin):
        version = "1.0.0"

        @hookimpl
        def register_routes(self, router: APIRouter, ctx):
            @router.get(f"/{name}")
            async def hello() -> dict:
                return {"plugin": name}

    Flagged.name, Flagged.flag = name, flag
    return Flagged()


def embedded_settings(tmp_path) -> Settings:
    return Settings(home=tmp_path, unleash_url=None, unleash_refresh_seconds=1, secret_key="k" * 32)


def started(settings: Settings) -> Flags:
    flags = Flags(settings)
    flags.start()
    return flags


def wait_until(check, timeout: float = 10.0) -> float:
    """Seconds until ``check()`` is true; fails after ``timeout``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, f"not true within {timeout}s"
        time.sleep(0.05)
    return time.monotonic() - start


def user_ids(n: int) -> list[str]:
    return [str(uuid.uuid5(uuid.NAMESPACE_URL, f"customer/{i}")) for i in range(n)]


# --- no network ---------------------------------------------------------------------------


def test_embedded_flags_open_no_socket(tmp_path, monkeypatch):
    connects: list = []

    def refuse(self, address, *args):
        connects.append(address)
        raise ConnectionRefusedError(f"the flag client tried to connect to {address}")

    def refuse_create(address, *args, **kwargs):
        connects.append(address)
        raise ConnectionRefusedError(f"the flag client tried to connect to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse_create)

    settings = embedded_settings(tmp_path)
    toggles = TogglesFile(settings.toggles_path)
    toggles.set(FLAG, enabled=True)
    flags = started(settings)
    try:
        assert flags.client.is_initialized and not flags.server_mode
        assert flags.enabled(FLAG, {"userId": "u1"})
        toggles.set(FLAG, enabled=False)
        # the client's own refresh job re-reads the file: it ran, and still made no connection
        wait_until(lambda: not flags.enabled(FLAG, {"userId": "u1"}), timeout=5)
    finally:
        flags.stop()
    assert connects == []


# --- sticky rollout -----------------------------------------------------------------------


def test_rollout_at_50_percent_is_sticky_by_user_id(tmp_path):
    settings = embedded_settings(tmp_path)
    toggles = TogglesFile(settings.toggles_path)
    toggles.set(FLAG, enabled=True, rollout=50)
    ids = user_ids(1000)
    flags = started(settings)
    try:
        first = {u: flags.enabled(FLAG, {"userId": u}) for u in ids}
        assert 450 <= sum(first.values()) <= 550, sum(first.values())
        assert {u: flags.enabled(FLAG, {"userId": u}) for u in ids} == first

        # the file rewritten (another flag edited) and read again: the same answers
        toggles.set("FEATURE_FLAG_OTHER", enabled=True)
        flags.reload()
        assert flags.enabled("FEATURE_FLAG_OTHER", {"userId": "x"})
        assert {u: flags.enabled(FLAG, {"userId": u}) for u in ids} == first

        # growing the rollout keeps everyone who had it: 10% within 50% within 100%
        toggles.set(FLAG, rollout=10)
        flags.reload()
        at_10 = {u for u in ids if flags.enabled(FLAG, {"userId": u})}
        toggles.set(FLAG, rollout=100)
        flags.reload()
        at_100 = {u for u in ids if flags.enabled(FLAG, {"userId": u})}
    finally:
        flags.stop()
    at_50 = {u for u, on in first.items() if on}
    assert 70 <= len(at_10) <= 130 and at_10 < at_50 < at_100 == set(ids)

    # a new process (a restart) on the same file answers the same for the same person
    toggles.set(FLAG, rollout=50)
    again = started(settings)
    try:
        assert {u: again.enabled(FLAG, {"userId": u}) for u in ids} == first
    finally:
        again.stop()


def test_toggles_file_with_bad_json_keeps_the_last_state(tmp_path):
    settings = embedded_settings(tmp_path)
    TogglesFile(settings.toggles_path).set(FLAG, enabled=True)
    flags = started(settings)
    try:
        settings.toggles_path.write_text('{"version": 2, "features": [')
        flags.reload()
        assert flags.enabled(FLAG, {"userId": "u"})
        TogglesFile(settings.toggles_path).write({"version": 2, "features": [feature(FLAG, enabled=False)]})
        flags.reload()
        assert not flags.enabled(FLAG, {"userId": "u"})
    finally:
        flags.stop()


# --- the flag context ---------------------------------------------------------------------


def test_flag_context_user_id_falls_back_to_session_then_remote():
    assert Principal("customer", "c-1", session="s-1", remote="10.0.0.9").flag_context() == {
        "userId": "c-1", "sessionId": "s-1", "remoteAddress": "10.0.0.9"}
    assert Principal("admin", "a-1", remote="10.0.0.9").flag_context()["userId"] == "a-1"
    assert Principal("anonymous", session="s-2", remote="10.0.0.9").flag_context()["userId"] == "s-2"
    assert Principal("anonymous", remote="10.0.0.9").flag_context()["userId"] == "10.0.0.9"


async def test_flag_gate_asks_with_customer_id_else_session_else_remote(make_app, client_of, settings):
    toggles = TogglesFile(settings.toggles_path)

    def only_for(*user_ids: str) -> None:
        toggle = feature(FLAG)
        toggle["strategies"] = [{"name": "userWithId", "constraints": [],
                                 "parameters": {"userIds": ",".join(user_ids)}}]
        toggles.write({"version": 2, "features": [toggle]})

    customer = str(uuid.uuid4())
    token, _ = issue_access_token(settings, subject=customer, kind="customer", session="token-session")
    only_for(customer, "browser-session")
    app = make_app([flagged_plugin()])
    flags = app.state.ctx.flags
    async with client_of(app) as c:
        async def status(**headers) -> int:
            return (await c.get("/v1/flagged", headers=headers)).status_code

        assert await status(authorization=f"Bearer {token}", **{"x-session-id": "other"}) == 200
        assert await status(**{"x-session-id": "browser-session"}) == 200
        assert await status(**{"x-session-id": "other"}) == 404
        assert await status() == 404

        only_for("127.0.0.1")  # the ASGI test client's address
        flags.reload()
        assert await status() == 200
        assert await status(authorization=f"Bearer {token}") == 404
        assert await status(**{"x-session-id": "browser-session"}) == 404
        off = await c.get("/v1/flagged", headers={"x-session-id": "browser-session"})
    assert off.json()["type"].endswith("/feature-disabled") and off.json()["flag"] == FLAG


# --- the CLI and a running app ------------------------------------------------------------


def flags_cli(home, *args: str):
    return CliRunner().invoke(cli, ["flags", *args], env={"MYHIBACHI_HOME": str(home), "UNLEASH_URL": None,
                                                          "MYHIBACHI_FLAGS_FILE": None})


def table(output: str) -> dict[str, list[str]]:
    lines = output.strip().splitlines()
    assert lines[0].split() == ["flag", "plugin", "enabled", "rollout"] and set(lines[1]) <= {"-", " "}
    return {row.split()[0]: row.split()[1:] for row in lines[2:]}


def test_flags_cli_edits_the_toggles_file(tmp_path):
    home = tmp_path / "home"
    assert flags_cli(home, "enable", FLAG).output.strip() == f"{FLAG} on"
    assert flags_cli(home, "disable", "FEATURE_FLAG_OTHER").exit_code == 0
    assert flags_cli(home, "rollout", FLAG, "30").output.strip() == f"{FLAG} rolled out to 30%"
    listed = flags_cli(home, "list")
    assert listed.exit_code == 0, listed.output
    rows = table(listed.output)
    assert rows[FLAG][-2:] == ["on", "30%"] and rows["FEATURE_FLAG_OTHER"][-2:] == ["off", "100%"]

    bad = flags_cli(home, "rollout", FLAG, "150")
    assert bad.exit_code == 2 and "between 0 and 100" in bad.output
    exported = json.loads(flags_cli(home, "export").output)
    assert exported == json.loads((home / "flags.json").read_text())
    toggle = {f["name"]: f for f in exported["features"]}[FLAG]
    assert toggle["enabled"] is True
    assert toggle["strategies"][0]["parameters"] == {"rollout": "30", "stickiness": "userId", "groupId": FLAG}


async def test_flags_cli_change_reaches_a_running_app_without_restart(make_app, client_of, settings):
    app = make_app([flagged_plugin()], flags={FLAG: True})
    async with client_of(app) as c:
        async def flips_to(status: int) -> float:
            start = time.monotonic()
            while (await c.get("/v1/flagged")).status_code != status:
                assert time.monotonic() - start < 10, f"the app did not answer {status} within 10 s"
                await asyncio.sleep(0.1)
            return time.monotonic() - start

        assert (await c.get("/v1/flagged")).status_code == 200
        assert flags_cli(settings.home, "disable", FLAG).exit_code == 0
        off_after = await flips_to(404)
        assert flags_cli(settings.home, "enable", FLAG).exit_code == 0
        on_after = await flips_to(200)
        assert flags_cli(settings.home, "rollout", FLAG, "0").exit_code == 0
        await flips_to(404)
    assert off_after < 5 and on_after < 5  # a 1 s refresh
