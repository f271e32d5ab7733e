"""Strict mode on the command line: `db upgrade` and `up` refuse failed plugins, each failure
reported once, and `up` leaves no embedded PostgreSQL behind."""
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from tests.core.plugin_helpers import fake_distribution, site  # noqa: F401

BURNT = "raise ImportError('no wok')\n"
FLAKY = '''
from myhibachi.core import Plugin, hookimpl


class Flaky(Plugin):
    name = "flaky"
    version = "1.0.0"

    @hookimpl
    def migration_location(self):
        raise RuntimeError("lost the migrations")


plugin = Flaky()
'''


SOGGY = FLAKY.replace("Flaky", "Soggy").replace('"flaky"', '"soggy"').split("    @hookimpl")[0] + "plugin = Soggy()\n"


def run_cli(monkeypatch, *args: str) -> int:
    from myhibachi.core import cli

    monkeypatch.setattr(sys, "argv", ["myhibachi", *args])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    return exited.value.code


@pytest.fixture
def strict_env(site, home, monkeypatch, caplog):  # noqa: F811
    caplog.set_level(logging.DEBUG, logger="myhibachi.plugins")
    monkeypatch.setenv("MYHIBACHI_HOME", str(home))
    monkeypatch.setenv("MYHIBACHI_STRICT_PLUGINS", "1")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return site


def errors_about(caplog, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and text in r.getMessage()]


def test_strict_db_upgrade_exits_1_naming_every_failed_plugin_once(strict_env, db_url, monkeypatch, caplog,
                                                                    capsys):
    """Broken on purpose: the commands loading the plugins again instead of main()'s manager
    logged each failure twice (red); without the strict check `db upgrade` exited 0 (red); a
    plugin's models.py raising went out as a bare traceback naming no plugin (red)."""
    fake_distribution(strict_env, "broken", BURNT)
    fake_distribution(strict_env, "burnt", "raise RuntimeError('the grill caught fire')\n")
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert run_cli(monkeypatch, "db", "upgrade") == 1
    out, err = capsys.readouterr()
    assert err.splitlines()[-1] == "error: MYHIBACHI_STRICT_PLUGINS is set and 2 plugin(s) failed: broken, burnt"
    assert "database is up to date" not in out and "Traceback" not in out + err
    assert errors_about(caplog, "no wok") == ["plugin broken left out: ImportError: no wok"]
    assert errors_about(caplog, "caught fire") == ["plugin burnt left out: RuntimeError: the grill caught fire"]
    tracebacks = [r for r in caplog.records if r.levelno == logging.DEBUG and r.exc_info]
    assert sorted(r.getMessage() for r in tracebacks) == ["plugin broken failed here", "plugin burnt failed here"]

    caplog.clear()
    monkeypatch.setenv("MYHIBACHI_DISABLED_PLUGINS", "broken,burnt")
    fake_distribution(strict_env, "flaky", FLAKY)  # loads, then fails while migrating
    assert run_cli(monkeypatch, "db", "upgrade") == 1
    out, err = capsys.readouterr()
    assert err.splitlines()[-1] == "error: MYHIBACHI_STRICT_PLUGINS is set and 1 plugin(s) failed: flaky"
    assert "database is up to date" not in out
    assert errors_about(caplog, "lost the migrations") == [
        "plugin flaky left out: migration_location raised RuntimeError: lost the migrations"]

    caplog.clear()
    monkeypatch.setenv("MYHIBACHI_DISABLED_PLUGINS", "broken,burnt,flaky")
    package = fake_distribution(strict_env, "soggy", "")
    (strict_env / f"{package}.py").rename(strict_env / f"{package}.txt")
    (strict_env / package).mkdir()
    (strict_env / package / "__init__.py").write_text(SOGGY)
    (strict_env / package / "models.py").write_text("raise ValueError('the rice is wet')\n")
    assert run_cli(monkeypatch, "db", "upgrade") == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "error: MYHIBACHI_STRICT_PLUGINS is set and 1 plugin(s) failed: soggy")
    assert errors_about(caplog, "rice") == ["plugin soggy left out: models raised ValueError: the rice is wet"]

    monkeypatch.setenv("MYHIBACHI_STRICT_PLUGINS", "0")
    assert run_cli(monkeypatch, "db", "upgrade") == 0
    assert capsys.readouterr().out.strip() == "database is up to date"


@pytest.fixture
def home():
    """Not under pytest's temporary root: another pytest run as root resets that folder to 0700,
    and the embedded server's own system user would lose its data folder (and pg_ctl its stop)."""
    path = Path(tempfile.mkdtemp(prefix="myhibachi-strict-home-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


UNPLATED = '''
from myhibachi.core import Plugin, hookimpl


class Unplated(Plugin):
    name = "unplated"
    version = "1.0.0"

    @hookimpl
    def register_routes(self, router, ctx):
        raise RuntimeError("no plates")


plugin = Unplated()
'''


def test_strict_up_exits_1_and_leaves_no_embedded_postgresql(strict_env, home, monkeypatch, caplog, capsys):
    """Broken on purpose: without stopping the database it started, `up` left the embedded
    PostgreSQL running after a plugin failed to migrate (red)."""
    broken = fake_distribution(strict_env, "broken", BURNT)
    assert run_cli(monkeypatch, "up", "--port", "0") == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "error: MYHIBACHI_STRICT_PLUGINS is set and 1 plugin(s) failed: broken")
    assert not (home / "pgdata").exists()  # refused before the database started

    (strict_env / f"{broken}.py").unlink()
    monkeypatch.setenv("MYHIBACHI_DISABLED_PLUGINS", "broken")
    fake_distribution(strict_env, "flaky", FLAKY)
    try:
        assert run_cli(monkeypatch, "up", "--port", "0") == 1
        assert capsys.readouterr().err.splitlines()[-1] == (
            "error: MYHIBACHI_STRICT_PLUGINS is set and 1 plugin(s) failed: flaky")
        assert len(errors_about(caplog, "lost the migrations")) == 1
        assert (home / "pgdata").is_dir() and not (home / "pgdata" / "postmaster.pid").exists()
    finally:
        from myhibachi.core.db import stop_embedded

        stop_embedded(home)


def test_strict_up_exits_1_naming_each_plugin_whose_register_routes_fails(strict_env, home, monkeypatch, caplog,
                                                                          capsys):
    """Broken on purpose: without running the start-up hooks once before its API and worker
    processes, a failing register_routes was logged by each of them and `up` went on serving
    (red: `up` served on until it was stopped)."""
    fake_distribution(strict_env, "unplated", UNPLATED)
    fake_distribution(strict_env, "unserved", UNPLATED.replace("Unplated", "Unserved").replace(
        '"unplated"', '"unserved"'))
    try:
        assert run_cli(monkeypatch, "up", "--port", "0") == 1
        out, err = capsys.readouterr()
        assert err.splitlines()[-1] == (
            "error: MYHIBACHI_STRICT_PLUGINS is set and 2 plugin(s) failed: unplated, unserved")
        assert "My Hibachi is up" not in out
        assert sorted(errors_about(caplog, "no plates")) == [
            "plugin unplated left out: register_routes raised RuntimeError: no plates",
            "plugin unserved left out: register_routes raised RuntimeError: no plates"]
        assert (home / "pgdata").is_dir() and not (home / "pgdata" / "postmaster.pid").exists()
    finally:
        from myhibachi.core.db import stop_embedded

        stop_embedded(home)


SCORCHED = '''
from pathlib import Path

from myhibachi.core import Plugin, hookimpl


class Scorched(Plugin):
    name = "scorched"
    version = "1.0.0"

    @hookimpl
    def migration_location(self):
        return str(Path(__file__).parent / "scorched_migrations")


plugin = Scorched()
'''

SCORCHED_REVISION = '''
from alembic import op

revision = "scorched_0001"
down_revision = None
branch_labels = ("scorched",)
depends_on = "{core}"


def upgrade():
    op.execute("INSERT INTO no_such_grill VALUES (1)")


def downgrade():
    pass
'''


def postgres_of(home: Path) -> list[str]:
    import subprocess

    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()
    return [line for line in ps if "postgres" in line and str(home) in line]


def test_up_with_a_migration_failing_in_sql_names_the_plugin_once_and_stops_its_database(site, home):  # noqa: F811
    """`up` is the subject, so it runs as the operator runs it. Broken on purpose: without the
    branch found from the failing revision's frame, `up` ended in a 60-line SQLAlchemy traceback
    naming no plugin (red); without stop_embedded on a migration error, the embedded PostgreSQL
    kept running after `up` exited (red)."""
    import os
    import subprocess

    from myhibachi.core.scaffold import core_head

    fake_distribution(site, "scorched", SCORCHED)
    (site / "scorched_migrations").mkdir()
    (site / "scorched_migrations" / "scorched_0001.py").write_text(SCORCHED_REVISION.format(core=core_head()))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MYHIBACHI_STRICT_PLUGINS")}
    env |= {"MYHIBACHI_HOME": str(home), "PYTHONPATH": os.pathsep.join([str(site), env.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "myhibachi.core.cli", "up", "--port", "0"], env=env,
                          capture_output=True, text=True, timeout=60)
    try:
        output = done.stdout + done.stderr
        assert done.returncode == 1, output
        assert output.count("scorched") == 1 and "Traceback" not in output, output
        assert done.stderr.strip().splitlines()[-1] == (
            "error: the migration of plugin scorched failed, nothing was applied: "
            'UndefinedTable: relation "no_such_grill" does not exist')
        assert "My Hibachi is up" not in output
        assert (home / "pgdata").is_dir() and not (home / "pgdata" / "postmaster.pid").exists()
        assert postgres_of(home) == []
    finally:
        from myhibachi.core.db import stop_embedded

        stop_embedded(home)
