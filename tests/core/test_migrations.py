"""Alembic branches per plugin, each test on a database of its own on the session's server."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from myhibachi.core import Plugin, migrate
from myhibachi.core.plugins import PluginManager, discover
from myhibachi.core.scaffold import core_head


@pytest.fixture
def fresh_url(pg_server_url):
    """An empty database next to the session's (which stays as it is)."""
    name = f"mh_mig_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield sa.engine.make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def installed(*, without: tuple[str, ...] = ()) -> PluginManager:
    manager = PluginManager()
    manager.load(discover(), deny=without, strict=True)
    return manager


def test_plugin_installed_later_gets_its_tables_on_the_next_upgrade(fresh_url):
    migrate.upgrade(fresh_url, installed(without=("tip_jar",)))
    before = tables(fresh_url)
    assert {"customers", "bookings", "outbox_events"} <= before and "tip_jar_tips" not in before
    assert "tip_jar" not in migrate.current(fresh_url, installed())

    migrate.upgrade(fresh_url, installed())
    assert tables(fresh_url) - before == {"tip_jar_tips"}
    assert migrate.current(fresh_url, installed())["tip_jar"] == "tip_jar_0001"
    migrate.upgrade(fresh_url, installed())  # up to date: nothing happens, nothing fails


def test_a_plugin_removed_without_downgrade_is_named_not_a_traceback(fresh_url, tmp_path):
    from myhibachi.core.cli import app

    migrate.upgrade(fresh_url, installed())
    with pytest.raises(migrate.MigrationError, match="revision tip_jar_0001 of a plugin that is not installed"):
        migrate.upgrade(fresh_url, installed(without=("tip_jar",)))
    env = {"DATABASE_URL": fresh_url, "MYHIBACHI_HOME": str(tmp_path), "MYHIBACHI_DISABLED_PLUGINS": "tip_jar",
           "MYHIBACHI_PLUGINS": None}
    refused = CliRunner().invoke(app, ["db", "upgrade"], env=env)
    assert refused.exit_code == 1 and "myhibachi db downgrade <plugin>" in refused.output
    migrate.upgrade(fresh_url, installed())  # back with it: fine again


def test_downgrade_of_a_branch_removes_only_its_tables(fresh_url):
    manager = installed()
    migrate.upgrade(fresh_url, manager)
    before = tables(fresh_url)
    migrate.downgrade_plugin(fresh_url, manager, "tip_jar")
    assert before - tables(fresh_url) == {"tip_jar_tips"}
    assert "tip_jar" not in migrate.current(fresh_url, manager)
    with pytest.raises(migrate.MigrationError, match="core branch"):
        migrate.downgrade_plugin(fresh_url, manager, "core")
    with pytest.raises(migrate.MigrationError, match="no migration branch"):
        migrate.downgrade_plugin(fresh_url, manager, "nonexistent")


REVISION = '''
import sqlalchemy as sa
from alembic import op

revision = "{name}_0001"
down_revision = None
branch_labels = ("{name}",)
depends_on = {depends!r}


def upgrade():
    op.create_table("{name}_rows", sa.Column("id", sa.Integer, primary_key=True){fk})


def downgrade():
    op.drop_table("{name}_rows")
'''


def branch_plugin(root: Path, name: str, *, depends: str, requires: tuple[str, ...] = (), fk: str = "") -> Plugin:
    folder = root / name / "migrations"
    folder.mkdir(parents=True)
    (folder / f"{name}_0001.py").write_text(textwrap.dedent(REVISION).format(name=name, depends=depends, fk=fk))

    def migration_location(self):
        return str(folder)

    from myhibachi.core import hookimpl

    cls = type(name.title(), (Plugin,), {"name": name, "version": "1.0.0", "requires": requires,
                                        "migration_location": hookimpl(migration_location)})
    return cls()


def test_downgrading_a_required_plugin_is_refused_unless_cascade(fresh_url, tmp_path):
    sauce = branch_plugin(tmp_path, "sauce", depends=core_head())
    pairing = branch_plugin(tmp_path, "pairing", depends="sauce_0001", requires=("sauce",),
                            fk=', sa.Column("sauce_id", sa.Integer, sa.ForeignKey("sauce_rows.id"))')
    garnish = branch_plugin(tmp_path, "garnish", depends=core_head(), requires=("sauce",))
    manager = PluginManager()
    manager.load([sauce, pairing, garnish, *installed().plugins], strict=True)
    migrate.upgrade(fresh_url, manager)
    assert {"sauce_rows", "pairing_rows", "garnish_rows", "tip_jar_tips"} <= tables(fresh_url)

    with pytest.raises(migrate.MigrationError, match="plugins garnish, pairing depend on sauce"):
        migrate.downgrade_plugin(fresh_url, manager, "sauce")
    assert {"sauce_rows", "pairing_rows", "garnish_rows"} <= tables(fresh_url)

    migrate.downgrade_plugin(fresh_url, manager, "garnish")
    assert "garnish_rows" not in tables(fresh_url) and "sauce_rows" in tables(fresh_url)
    before = tables(fresh_url)
    migrate.downgrade_plugin(fresh_url, manager, "sauce", cascade=True)
    assert before - tables(fresh_url) == {"sauce_rows", "pairing_rows"}
    applied = migrate.current(fresh_url, manager)
    assert {"core", "tip_jar"} <= set(applied) and not {"sauce", "pairing", "garnish"} & set(applied)


RACER = '''
import sys, time
from myhibachi.core import migrate
from myhibachi.core.plugins import PluginManager, discover

manager = PluginManager()
manager.load(discover(), strict=True)
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
migrate.upgrade(sys.argv[1], manager)
'''


def test_processes_upgrading_at_once_do_not_collide(pg_server_url):
    """Four processes start the same fresh upgrade at the same instant, three rounds."""
    for _ in range(3):
        name = f"mh_race_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = sa.engine.make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
        try:
            start = str(time.time() + 4)
            procs = [subprocess.Popen([sys.executable, "-c", RACER, url, start], stderr=subprocess.PIPE, text=True)
                     for _ in range(4)]
            errors = [p.communicate(timeout=120)[1] for p in procs]
            assert [p.returncode for p in procs] == [0, 0, 0, 0], "\n".join(errors)
            assert "tip_jar_tips" in tables(url)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def test_db_current_shows_each_branch(fresh_url, tmp_path):
    from myhibachi.core.cli import app

    migrate.upgrade(fresh_url, installed(without=("tip_jar",)))
    env = {"DATABASE_URL": fresh_url, "MYHIBACHI_HOME": str(tmp_path), "MYHIBACHI_PLUGINS": None,
           "MYHIBACHI_DISABLED_PLUGINS": None}
    runner = CliRunner()
    first = runner.invoke(app, ["db", "current"], env=env)
    assert first.exit_code == 0, first.output
    rows = [line.split() for line in first.output.splitlines()[2:]]
    assert ["core", core_head()] in rows and not any(r[0] == "tip_jar" for r in rows)

    upgraded = runner.invoke(app, ["db", "upgrade"], env=env)
    assert upgraded.exit_code == 0, upgraded.output
    rows = [line.split() for line in runner.invoke(app, ["db", "current"], env=env).output.splitlines()[2:]]
    assert ["tip_jar", "tip_jar_0001"] in rows and ["core", core_head()] in rows


def test_the_pii_migrations_seal_existing_rows_with_the_apps_key_and_a_downgrade_opens_them(fresh_url, tmp_path,
                                                                                             settings):
    """Bookings, recurring patterns, group guests and ml_ops texts stored before they were sealed:
    ``myhibachi db upgrade`` (the app's key from its environment) seals them and drops the
    plaintext columns; the services open them; downgrading each branch puts the plain values
    back. Broken on purpose by leaving the rows out of the core migration's upgrade: red (the
    NOT NULL on address_enc refuses the upgrade)."""
    import json
    from types import SimpleNamespace

    from alembic import command

    from myhibachi.core import bookings
    from myhibachi.core.cli import app
    from myhibachi.core.crypto import Vault
    from myhibachi.plugins.recurring import service as recurring

    manager = installed()
    cfg = migrate.config(fresh_url, manager, settings=settings)
    for target in ("core_booking_holds", "recurring_0001", "group_reservations_0001", "ml_ops_0001"):
        command.upgrade(cfg, target)
    v = Vault.from_settings(settings)
    cid, bid, pid, gid, mid = (uuid.uuid4() for _ in range(5))
    engine = sa.create_engine(fresh_url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO customers (id, email_hash, email_enc, name_enc, key_id) "
                             "VALUES (:id, '\\x00', 'x', 'x', 'x')"), {"id": cid})
        conn.execute(sa.text(
            "INSERT INTO bookings (id, customer_id, starts_at, time_zone, duration_minutes, party_size, adults, "
            "address, menu, notes, total_cents, slot_key) VALUES (:id, :c, now(), 'UTC', 120, 10, 10, "
            "'5 Old Mill Rd', NULL, 'side door', 0, 's') , (gen_random_uuid(), :c, now(), 'UTC', 120, 10, 10, "
            "'6 Old Mill Rd', 'teriyaki', NULL, 0, 't')"), {"id": bid, "c": cid})
        conn.execute(sa.text(
            "INSERT INTO recurring_event_patterns (id, customer_id, recurrence_rule, start_date, local_time, "
            "time_zone, adults, address, special_requests, materialised_until) VALUES (:id, :c, 'FREQ=WEEKLY;COUNT=2', "
            "current_date, '18:00', 'UTC', 10, '7 Old Mill Rd', 'extra rice', current_date)"), {"id": pid, "c": cid})
        conn.execute(sa.text("INSERT INTO group_reservations (id, customer_id, starts_at, time_zone, menu, billing, "
                             "key_id) VALUES (:id, :c, now(), 'UTC', '[]', '{}', :k)"), {"id": gid, "c": cid,
                                                                                          "k": v.current_id})
        conn.execute(sa.text(
            "INSERT INTO group_reservation_guests (id, group_id, position, table_no, name_enc, dietary, allergens, "
            "menu_choice, payer) VALUES (gen_random_uuid(), :g, 0, 1, :name, 'vegan', '{sesame}', 'x', 'Ana')"),
            {"g": gid, "name": v.encrypt("Ana", f"group_reservations:{gid}:name")})
        for statement in (
            "INSERT INTO ml_ops_conversations (id, principal, summary) VALUES (:id, 'staff:1', 'Old Mill summary');"
            "INSERT INTO ml_ops_turns (conversation_id, seq, role, content, tokens) VALUES (:id, 1, 'user', "
            "'Old Mill turn', 3);"
            "INSERT INTO ml_ops_models (id, name, kind, requested_by) VALUES (:id, 'faq', 'fine_tune', 'staff:1');"
            "INSERT INTO ml_ops_examples (model_id, seq, text, messages) VALUES (:id, 0, 'Old Mill example', "
            "'[{\"role\": \"user\", \"content\": \"Old Mill chat\"}]'), (:id, 1, 'Old Mill two', NULL);"
            "INSERT INTO ml_ops_batches (id, feature, template_key, template_version, variable, chunk_size, total, "
            "requested_by) VALUES (:id, 'default', 'reply', 1, 'text', 10, 1, 'staff:1');"
            "INSERT INTO ml_ops_batch_items (batch_id, seq, text, output) VALUES (:id, 1, 'Old Mill item', "
            "'Old Mill output');"
            "INSERT INTO ml_ops_cache (key, model, content, prompt_tokens, completion_tokens, expires_at) VALUES "
            "('k', 'offline', 'Old Mill cached', 1, 1, now() + interval '1 hour')").split(";"):
            conn.execute(sa.text(statement), {"id": mid})

    upgraded = CliRunner().invoke(app, ["db", "upgrade"], env={
        "DATABASE_URL": fresh_url, "MYHIBACHI_HOME": str(tmp_path), "MYHIBACHI_SECRET_KEY": settings.secret_key,
        "MYHIBACHI_PLUGINS": None, "MYHIBACHI_DISABLED_PLUGINS": None})
    assert upgraded.exit_code == 0, upgraded.output
    ctx = SimpleNamespace(settings=settings, extra={})
    with engine.connect() as conn:
        stored = [dict(r) for r in conn.execute(sa.text("SELECT * FROM bookings ORDER BY slot_key")).mappings()]
        pattern = dict(conn.execute(sa.text("SELECT * FROM recurring_event_patterns")).mappings().one())
        guest = dict(conn.execute(sa.text("SELECT * FROM group_reservation_guests")).mappings().one())
    assert not {"address", "menu", "notes"} & set(stored[0]) and "Old Mill" not in str(stored)
    assert [(b["address"], b["menu"], b["notes"]) for b in map(lambda r: bookings.opened(ctx, r), stored)] == [
        ("5 Old Mill Rd", None, "side door"), ("6 Old Mill Rd", "teriyaki", None)]
    assert "Old Mill" not in str(pattern) and "vegan" not in str(guest) and "sesame" not in str(guest)
    opened = recurring.opened(ctx, pattern)
    assert (opened["address"], opened["special_requests"]) == ("7 Old Mill Rd", "extra rice")
    assert v.decrypt(guest["dietary_enc"], v.current_id, f"group_reservations:{gid}:dietary") == "vegan"
    assert json.loads(v.decrypt(guest["allergens_enc"], v.current_id, f"group_reservations:{gid}:allergens")) == [
        "sesame"]
    with engine.connect() as conn:
        ml_ops = {t: [dict(r) for r in conn.execute(sa.text(f"SELECT * FROM ml_ops_{t}")).mappings()]
                  for t in ("conversations", "turns", "examples", "batch_items", "cache")}
    assert "Old Mill" not in str(ml_ops) and ml_ops["cache"] == []  # a cache is emptied, not sealed
    [conversation], [turn], [item] = ml_ops["conversations"], ml_ops["turns"], ml_ops["batch_items"]
    assert v.decrypt(conversation["summary_enc"], v.current_id, f"ml_ops_conversations.summary:{mid}") == (
        "Old Mill summary")
    assert v.decrypt(turn["content_enc"], turn["key_id"], f"ml_ops_turns.content:{mid}:1") == "Old Mill turn"
    assert [(v.decrypt(e["text_enc"], e["key_id"], f"ml_ops_examples.text:{mid}:{e['seq']}"),
             v.decrypt(e["messages_enc"], e["key_id"], f"ml_ops_examples.messages:{mid}:{e['seq']}"))
            for e in sorted(ml_ops["examples"], key=lambda e: e["seq"])] == [
        ("Old Mill example", '[{"role": "user", "content": "Old Mill chat"}]'), ("Old Mill two", None)]
    assert [v.decrypt(item[f"{f}_enc"], item["key_id"], f"ml_ops_batch_items.{f}:{mid}:1")
            for f in ("text", "output")] == ["Old Mill item", "Old Mill output"]

    for target in ("core_booking_holds", "recurring_0001", "group_reservations_0001", "ml_ops_0001"):
        command.downgrade(cfg, target)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT address, menu, notes FROM bookings ORDER BY slot_key")).all() == [
            ("5 Old Mill Rd", None, "side door"), ("6 Old Mill Rd", "teriyaki", None)]
        assert conn.execute(sa.text("SELECT address, special_requests FROM recurring_event_patterns")).one() == (
            "7 Old Mill Rd", "extra rice")
        assert conn.execute(sa.text("SELECT dietary, allergens FROM group_reservation_guests")).one() == (
            "vegan", ["sesame"])
        assert conn.execute(sa.text("SELECT summary FROM ml_ops_conversations")).one() == ("Old Mill summary",)
        assert conn.execute(sa.text("SELECT content FROM ml_ops_turns")).one() == ("Old Mill turn",)
        assert conn.execute(sa.text("SELECT text, messages FROM ml_ops_examples ORDER BY seq")).all() == [
            ("Old Mill example", [{"role": "user", "content": "Old Mill chat"}]), ("Old Mill two", None)]
        assert conn.execute(sa.text("SELECT text, output FROM ml_ops_batch_items")).one() == (
            "Old Mill item", "Old Mill output")
    engine.dispose()


def _plan_settings(url: str) -> dict[str, list[str] | None]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return dict(conn.execute(sa.text("SELECT proname, proconfig FROM pg_proc "
                                             "WHERE proname IN ('booking_busy', 'booking_busy_locked')")).all())
    finally:
        engine.dispose()


def test_the_capacity_functions_keep_their_generic_plan_and_a_downgrade_lets_it_go(fresh_url):
    """core_busy_generic_plan: both functions plan their query once per connection (their
    custom plans always look cheaper, so the plan cache re-planned every create)."""
    from alembic import command

    manager = installed(without=tuple(discover()))
    migrate.upgrade(fresh_url, manager)
    kept = ["plan_cache_mode=force_generic_plan"]
    assert _plan_settings(fresh_url) == {"booking_busy": kept, "booking_busy_locked": kept}
    command.downgrade(migrate.config(fresh_url, manager), "core_booking_pii")
    assert _plan_settings(fresh_url) == {"booking_busy": None, "booking_busy_locked": None}
