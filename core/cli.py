"""The ``myhibachi`` command line."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from myhibachi.core.settings import Settings

app = typer.Typer(help="My Hibachi: run, migrate and manage the platform.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations (one Alembic branch per plugin).", no_args_is_help=True)
plugins_app = typer.Typer(help="Installed plugins.", no_args_is_help=True)
flags_app = typer.Typer(help="Feature flags (toggles file, or the Unleash server).", no_args_is_help=True)
events_app = typer.Typer(help="Domain events.", no_args_is_help=True)
admin_app = typer.Typer(help="Administration: the first credential, PII key rotation.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(plugins_app, name="plugins")
app.add_typer(flags_app, name="flags")
app.add_typer(events_app, name="events")
app.add_typer(admin_app, name="admin")
apikeys_app = typer.Typer(help="API keys: list, create with an expiry, revoke.", no_args_is_help=True)
app.add_typer(apikeys_app, name="apikeys")


def _settings() -> Settings:
    return Settings()


def _manager(ctx: typer.Context, settings: Settings):
    """The plugins main() loaded to register their commands (the root context's object), so
    each failure is reported once; loaded here when the app runs without main() (tests)."""
    from myhibachi.core.plugins import load_installed

    return ctx.find_root().obj or load_installed(settings, strict=False)


def _refuse_failed(settings: Settings, manager, stop_db: bool = False) -> None:
    """Under MYHIBACHI_STRICT_PLUGINS, exit 1 naming every failed plugin (each one's reason was
    logged once when it failed), stopping the embedded database this command started."""
    failed = sorted(r.name for r in manager.records.values() if r.state == "failed")
    if not (settings.strict_plugins and failed):
        return
    if stop_db:
        from myhibachi.core.db import stop_embedded

        stop_embedded(settings.home_dir)
    typer.echo(f"error: MYHIBACHI_STRICT_PLUGINS is set and {len(failed)} plugin(s) failed: {', '.join(failed)}",
               err=True)
    raise typer.Exit(1)


def _refuse_failed_start(settings: Settings, manager, url: str, stop_db: bool) -> None:
    """Under MYHIBACHI_STRICT_PLUGINS, run the start-up hooks (register_routes, ...) here once:
    each API and worker process would otherwise fail on them alone, and `up` would go on."""
    if not settings.strict_plugins:
        return
    from myhibachi.core.app import create_app
    from myhibachi.core.db import Database

    lenient = settings.model_copy(update={"strict_plugins": False})  # every failure, not the first
    built = create_app(list(manager.plugins), settings=lenient, database=Database(url))
    _refuse_failed(settings, built.state.ctx.plugins, stop_db=stop_db)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)] if rows else [len(h) for h in headers]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _production_ready(settings: Settings) -> None:
    """Exit 2 with the reason when this start would run without a shared secret key."""
    from myhibachi.core.settings import SecretKeyMissing

    try:
        settings.require_secret_key()
    except SecretKeyMissing as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)


def _url(settings: Settings, keep_running: bool = True) -> str:
    """The owner's URL: what migrations and the commands that change the schema connect with."""
    from myhibachi.core.roles import owner_url

    return owner_url(settings, keep_running=keep_running)


def _upgrade(url: str, manager, settings: Settings) -> None:
    from myhibachi.core import migrate
    from myhibachi.core.roles import app_role

    migrate.upgrade(url, manager, app_role=app_role(settings), settings=settings)


# --- running -------------------------------------------------------------------------------


@app.command()
def up(
    ctx: typer.Context,
    host: Optional[str] = typer.Option(None, help="Address to listen on."),
    port: Optional[int] = typer.Option(None, help="Port to listen on."),
    workers: Optional[int] = typer.Option(None, help="API worker processes."),
) -> None:
    """Migrate, then serve the API and run the worker until Ctrl-C (embedded defaults)."""
    from myhibachi.core import migrate
    from myhibachi.core.flags import TogglesFile

    settings = _settings()
    _production_ready(settings)
    host, port, workers = host or settings.host, port or settings.port, workers or settings.workers
    manager = _manager(ctx, settings)
    _refuse_failed(settings, manager)
    embedded = not settings.database_url and not (settings.home_dir / "pgdata" / "postmaster.pid").exists()
    url = _url(settings)
    started = time.perf_counter()
    try:
        _upgrade(url, manager, settings)
    except migrate.MigrationError as exc:
        if embedded:
            from myhibachi.core.db import stop_embedded

            stop_embedded(settings.home_dir)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1)
    _refuse_failed(settings, manager, stop_db=embedded)
    _refuse_failed_start(settings, manager, url, stop_db=embedded)
    if not settings.unleash_url:
        TogglesFile(settings.toggles_path).ensure([r.flag for r in manager.records.values() if r.flag])
    import sqlalchemy as sa

    from myhibachi.core.roles import app_url

    # the API and the worker connect as the app's role, and are not told the owner's URL
    served = app_url(settings, keep_running=True)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MYHIBACHI_DATABASE_OWNER_URL")},
           "DATABASE_URL": served, "MYHIBACHI_HOME": str(settings.home_dir)}
    served = sa.engine.make_url(served).render_as_string(hide_password=True)
    if not settings.secret_key:  # the embedded default: the home folder's key, the same for every child
        env["MYHIBACHI_SECRET_KEY"] = settings.signing_key
    if not env.get("PROMETHEUS_MULTIPROC_DIR"):  # one /metrics view over the API workers
        import shutil

        metrics_dir = settings.home_dir / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    api = subprocess.Popen(
        [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host", host, "--port", str(port),
         "--workers", str(workers), "--log-level", "warning", "myhibachi.core.app:serve"],
        env=env, process_group=0,  # Ctrl-C reaches up alone, which stops them in order (granian quietly)
    )
    worker_env = {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    worker_proc = subprocess.Popen([sys.executable, "-m", "myhibachi.core.cli", "worker"], env=worker_env,
                                   process_group=0)
    stopped = []

    def stop(*_):
        stopped.append(True)
        for proc in (api, worker_proc):
            if proc.poll() is None:
                proc.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)  # its terminal closed: the processes of their own groups stop too
    ended = None  # a child that exited on its own, with a failure
    try:  # from here a Ctrl-C stops the children, even one while the banner is made
        try:
            states = _states(settings, manager)
        except typer.Exit:  # the flag server unreachable, no state kept: the banner says so, the service waits
            states = manager.states()
        rows = [[r["name"], r["version"], r["flag"] or "-", r["state"]] for r in states]
        typer.echo(f"My Hibachi is up at http://{host}:{port}  (docs: http://{host}:{port}/docs)")
        typer.echo(f"data: {settings.home_dir}   database: "
                   f"{'embedded PostgreSQL' if not settings.database_url else served}")
        typer.echo(f"flags: {settings.unleash_url or settings.toggles_path}   queue: "
                   f"{settings.redis_url or 'SQLite'}   migrated in {time.perf_counter() - started:.2f}s")
        typer.echo(_table(["plugin", "version", "flag", "state"], rows) if rows else "no plugins installed")
        typer.echo("Ctrl-C stops everything; `myhibachi down` stops a database left running.")
        while api.poll() is None and worker_proc.poll() is None:
            time.sleep(0.5)
        if not stopped:
            ended = next((name, proc.returncode) for name, proc in (("API", api), ("worker", worker_proc))
                         if proc.returncode is not None)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        stop()
        for proc in (api, worker_proc):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if not settings.database_url:
            from myhibachi.core.db import stop_embedded

            stop_embedded(settings.home_dir)
    if ended:
        typer.echo(f"error: the {ended[0]} process exited with code {ended[1]}; everything was stopped", err=True)
        raise typer.Exit(1)


@app.command()
def serve(
    host: Optional[str] = typer.Option(None, help="Address to listen on."),
    port: Optional[int] = typer.Option(None, help="Port to listen on."),
    workers: Optional[int] = typer.Option(None, help="API worker processes."),
) -> None:
    """Serve the API only, in the foreground (containers, systemd): no migration, no worker,
    no embedded database. Refuses to start without MYHIBACHI_SECRET_KEY when DATABASE_URL is set."""
    settings = _settings()
    _production_ready(settings)
    host, port, workers = host or settings.host, port or settings.port, workers or settings.workers
    env = dict(os.environ)
    if workers > 1 and not env.get("PROMETHEUS_MULTIPROC_DIR"):
        import tempfile

        env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="myhibachi-metrics-")
    args = [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host", host, "--port", str(port),
            "--workers", str(workers), "--log-level", "warning", "myhibachi.core.app:serve"]
    os.execve(sys.executable, args, env)  # granian gets the signals of the container or unit


@app.command()
def down() -> None:
    """Stop an embedded PostgreSQL left running by a killed process."""
    from myhibachi.core.db import stop_embedded

    settings = _settings()
    typer.echo("stopped" if stop_embedded(settings.home_dir) else "nothing running")


@app.command()
def worker(interval: float = typer.Option(1.0, help="Seconds between polls when no event arrives.")) -> None:
    """Run background tasks, event delivery and scheduled work until stopped."""
    early: list[int] = []  # a SIGTERM during start-up, before huey's handlers: kept, then handed to huey
    consumer = None
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: consumer._handle_signal(signum, frame)
                             if consumer else early.append(signum))
    try:
        import gc
        import logging

        from huey.consumer import Consumer

        from myhibachi.core.app import create_app
        from myhibachi.core.tasks import _worker_loop, dispatch_forever

        from myhibachi.core.metrics import configure_logging

        settings = _settings()
        _production_ready(settings)
        configure_logging(settings.log_format)
        application = create_app(settings=settings)
        ctx = application.state.ctx
        ctx.flags.start()
        loop = _worker_loop()
        stop = asyncio.Event()
        future = asyncio.run_coroutine_threadsafe(dispatch_forever(ctx, interval=interval, stop=stop), loop)
        consumer = Consumer(ctx.huey, workers=2, worker_type="thread", periodic=False)  # periodic work: core.scheduled
        if early:
            consumer._handle_signal(early[0], None)  # huey starts, then stops at once as on any SIGTERM
        gc.freeze()  # like the API: what start-up made stays out of the collector's full scans
        try:
            consumer.run()  # returns on SIGTERM (at once) or SIGINT (after running tasks finish)
        finally:
            loop.call_soon_threadsafe(stop.set)
            try:
                future.result(30)
            except Exception:
                logging.getLogger("myhibachi.worker").exception("dispatch loop did not stop cleanly")
            ctx.flags.stop()  # its scheduler thread would keep the process alive after Ctrl-C
            asyncio.run_coroutine_threadsafe(ctx.db.close(), loop).result(10)
            typer.echo("worker stopped")
    finally:
        signal.signal(signal.SIGTERM, previous)  # in-process callers (tests) get theirs back


# --- database ------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Apply every installed plugin's migrations (all heads)."""
    from myhibachi.core import migrate

    settings = _settings()
    manager = _manager(ctx, settings)
    _refuse_failed(settings, manager)
    try:
        _upgrade(_url(settings), manager, settings)
    except migrate.MigrationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1)
    _refuse_failed(settings, manager)
    typer.echo("database is up to date")


@db_app.command("downgrade")
def db_downgrade(ctx: typer.Context, plugin: str, cascade: bool = typer.Option(False, help="Also remove plugins that depend on it.")) -> None:
    """Remove one plugin's tables (its whole branch)."""
    from myhibachi.core import migrate

    settings = _settings()
    try:
        migrate.downgrade_plugin(_url(settings), _manager(ctx, settings), plugin, cascade=cascade, settings=settings)
    except migrate.MigrationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1)
    typer.echo(f"removed the tables of {plugin}")


@db_app.command("current")
def db_current(ctx: typer.Context) -> None:
    """The applied revision of each branch."""
    from myhibachi.core import migrate

    settings = _settings()
    try:
        rows = sorted(migrate.current(_url(settings), _manager(ctx, settings)).items())
    except migrate.MigrationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1)
    typer.echo(_table(["branch", "revision"], [list(r) for r in rows]))


@db_app.command("revision")
def db_revision(ctx: typer.Context, owner: str, message: str = typer.Option(..., "-m", help="What the revision does.")) -> None:
    """Autogenerate a revision of OWNER's tables (a plugin name or 'core') into its branch."""
    from myhibachi.core import migrate

    settings = _settings()
    rev = migrate.new_revision(_url(settings), _manager(ctx, settings), owner, message)
    typer.echo(f"wrote {rev.path if rev else 'nothing'}")


# --- plugins -------------------------------------------------------------------------------


def _flag_state(settings: Settings):
    """The flags the running service evaluates (toggles file, else the Unleash server); exits 1
    when the server is unreachable and none of its state is kept."""
    from myhibachi.core.flags import SyncError, current_state

    try:
        return current_state(settings)
    except SyncError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1)


def _states(settings: Settings, manager) -> list[dict]:
    if not settings.unleash_url:
        from myhibachi.core.flags import TogglesFile

        TogglesFile(settings.toggles_path).ensure([r.flag for r in manager.records.values() if r.flag])
    state = _flag_state(settings)
    if state.source != settings.unleash_url and settings.unleash_url:
        typer.echo(f"warning: {state.source}", err=True)
    return manager.states(state)


def plugin_rows(ctx: typer.Context, settings: Settings) -> list[dict]:
    return _states(settings, _manager(ctx, settings))


@plugins_app.command("list")
def plugins_list(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    check: bool = typer.Option(False, "--check", help="Exit 1 when a plugin failed (deploy checks, CI)."),
) -> None:
    """Installed plugins: version, flag, state, requirements and features."""
    rows = plugin_rows(ctx, _settings())
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        typer.echo(_table(
            ["name", "version", "flag", "state", "requires", "features"],
            [[r["name"], r["version"], r["flag"] or "-", r["state"], ",".join(r["requires"]) or "-",
              " ".join(sorted(r["features"])) or "-"] for r in rows],
        ))
    failed = [r["name"] for r in rows if r["state"].startswith("failed")]
    if check and failed:
        typer.echo(f"error: {len(failed)} plugin(s) failed: {', '.join(failed)}", err=True)
        raise typer.Exit(1)


@plugins_app.command("new")
def plugins_new(
    name: str,
    directory: Path = typer.Option(Path("plugins"), help="Folder to create the plugin (or its distribution) in."),
    flag: Optional[str] = typer.Option(None, help="Its Unleash flag (default FEATURE_FLAG_<NAME>)."),
    package: Optional[str] = typer.Option(None, help="Its import package (default myhibachi.plugins.<name>, "
                                                     "or <name> for a third-party distribution)."),
    distribution: Optional[str] = typer.Option(None, help="Make a third-party distribution of this name "
                                                          "(its own pyproject.toml) instead of a built-in."),
    tests: Optional[Path] = typer.Option(None, help="Folder of its first test (default tests/plugins/<name>, "
                                                             "or <distribution>/tests)."),
) -> None:
    """Scaffold a plugin of the standard shape: manifest, models, schemas, service, routes,
    a first migration and a first test."""
    from myhibachi.core.scaffold import scaffold

    try:
        folder = scaffold(name, directory, flag=flag, package=package, distribution=distribution, tests=tests)
    except (ValueError, FileExistsError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(f"created {folder}")
    if distribution:
        typer.echo(f"install it: pip install -e {folder.parent}")
    else:
        typer.echo(f'add its entry point to pyproject.toml: {name} = "myhibachi.plugins.{name}:plugin", '
                   "then pip install -e .")


# --- flags ---------------------------------------------------------------------------------


@flags_app.command("list")
def flags_list(ctx: typer.Context) -> None:
    """Every flag: enabled, rollout percentage (from the Unleash server in server mode)."""
    from myhibachi.core.flags import rollout_of

    settings = _settings()
    state = _flag_state(settings)
    toggles = state.toggles
    owners = {r.flag: r.name for r in _manager(ctx, settings).records.values() if r.flag}
    names = sorted(set(toggles) | set(owners))
    rows = []
    for name in names:
        t = toggles.get(name)
        rows.append([name, owners.get(name, "-"), "-" if t is None else ("on" if t["enabled"] else "off"),
                     "-" if t is None else f"{rollout_of(t)}%"])
    typer.echo(_table(["flag", "plugin", "enabled", "rollout"], rows))
    if settings.unleash_url:
        typer.echo(f"from {state.source}")


def _change(flag: str, *, enabled: bool | None = None, rollout: int | None = None) -> None:
    """Change a flag where the running service reads it: the toggles file, or the Unleash server."""
    from myhibachi.core.flags import SyncError, TogglesFile, change_on_server

    settings = _settings()
    try:
        if settings.unleash_url:
            change_on_server(settings, flag, enabled=enabled, rollout=rollout)
        else:
            TogglesFile(settings.toggles_path).set(flag, enabled=enabled, rollout=rollout)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    except SyncError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2 if "is not set" in str(exc) or "set UNLEASH_ENVIRONMENT" in str(exc) else 1)


@flags_app.command("enable")
def flags_enable(flag: str) -> None:
    """Turn a flag on (for its rollout percentage)."""
    _change(flag, enabled=True)
    typer.echo(f"{flag} on")


@flags_app.command("disable")
def flags_disable(flag: str) -> None:
    """Turn a flag off for everyone."""
    _change(flag, enabled=False)
    typer.echo(f"{flag} off")


@flags_app.command("rollout")
def flags_rollout(flag: str, percent: int) -> None:
    """Roll a flag out to PERCENT of users (sticky by user id)."""
    _change(flag, rollout=percent)
    typer.echo(f"{flag} rolled out to {percent}%")


@flags_app.command("export")
def flags_export() -> None:
    """Print the toggles in Unleash's client features format."""
    from myhibachi.core.flags import TogglesFile

    typer.echo(json.dumps(TogglesFile(_settings().toggles_path).read(), indent=2))


@flags_app.command("sync")
def flags_sync(ctx: typer.Context) -> None:
    """Create every installed plugin's flag on the Unleash server (UNLEASH_ADMIN_TOKEN)."""
    from myhibachi.core.flags import SyncError, sync_to_server

    settings = _settings()
    if not settings.unleash_url:
        typer.echo("error: UNLEASH_URL is not set", err=True)
        raise typer.Exit(2)
    records = [r for r in _manager(ctx, settings).records.values() if r.flag]
    plugins = sorted({r.flag: f"plugin {r.name}" for r in records}.items())
    try:
        result = sync_to_server(settings, plugins, keep_on={r.flag for r in records if r.compliance})
    except SyncError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1)
    state = {name: kind for kind in ("created", "existing", "archived") for name in result[kind]}
    for name in result["turned_on"]:
        state[name] += ", turned on"
    typer.echo(_table(["flag", "plugin", "on the server"],
                      [[flag, desc.removeprefix("plugin "), state[flag]] for flag, desc in plugins]))
    typer.echo(f"created {len(result['created'])} flag(s)")
    if result["turned_on"]:
        typer.echo(f"compliance flag(s) turned on: {', '.join(result['turned_on'])}")
    if result["archived"]:
        typer.echo(f"archived on the server (revive them there): {', '.join(result['archived'])}", err=True)


# --- events --------------------------------------------------------------------------------


def _ctx():
    from myhibachi.core.app import create_app

    return create_app(settings=_settings()).state.ctx


def _with_ctx(work):
    """Run ``await work(ctx)`` on a fresh app context, closing its pools after."""
    ctx = _ctx()

    async def run():
        try:
            return await work(ctx)
        finally:
            await ctx.db.close()

    return asyncio.run(run())


@events_app.command("catalogue")
def events_catalogue(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON."),
                     markdown: bool = typer.Option(False, "--markdown", help="Print the list of docs/plugins.md.")
                     ) -> None:
    """Every event the core and the installed plugins declare: owner, payload fields, doc."""
    from types import SimpleNamespace

    from myhibachi.core import events

    declared = SimpleNamespace(events={}, plugins=_manager(ctx, _settings()))
    events.declare_all(declared)
    rows = events.catalogue(declared)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    elif markdown:
        typer.echo(events.catalogue_markdown(rows))
    else:
        typer.echo(_table(["event", "owner", "payload", "doc"],
                          [[r["name"], r["owner"], ", ".join(f["name"] for f in r["fields"]) or "-",
                            r["doc"].splitlines()[0] if r["doc"] else ""] for r in rows]))


@events_app.command("failed")
def events_failed(limit: int = typer.Option(100, help="Most recent N.")) -> None:
    """Deliveries parked after their last retry."""
    from myhibachi.core import events

    rows, _ = _with_ctx(lambda ctx: events.failed(ctx, limit=limit))
    typer.echo(_table(["event", "name", "subscriber", "attempts", "failed at", "error"],
                      [[str(r["event_id"]), r["name"], r["subscriber"], str(r["attempts"]),
                        r["done_at"].isoformat(timespec="seconds") if r["done_at"] else "-",
                        (r["last_error"] or "")[:60]] for r in rows]))


@events_app.command("replay")
def events_replay(event_id: str, subscriber: Optional[str] = typer.Option(None)) -> None:
    """Queue the dead deliveries of an event again."""
    import uuid

    from myhibachi.core import events

    count = _with_ctx(lambda ctx: events.replay(ctx, uuid.UUID(event_id), subscriber))
    typer.echo(f"requeued {count} delivery(ies)")


# --- offline outbox ------------------------------------------------------------------------


@app.command()
def outbox(
    port: Optional[str] = typer.Option(None, help="Only this port (sms, email, payments, ...)."),
    limit: int = typer.Option(20, help="How many of the newest records."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """What the offline adapters would have sent (newest last)."""
    from myhibachi.core.db import Database
    from myhibachi.core.ports import outbox as records

    async def read():
        from myhibachi.core.crypto import Vault

        settings = _settings()
        db = Database(_url(settings))
        try:
            return await records.read(db, port, limit, vault=Vault.from_settings(settings))
        finally:
            await db.close()

    rows = asyncio.run(read())
    if as_json:
        typer.echo(json.dumps([{**r, "id": str(r["id"]), "created_at": r["created_at"].isoformat()} for r in rows],
                              indent=2))
        return
    typer.echo(_table(["time", "port", "operation", "payload"],
                      [[r["created_at"].strftime("%Y-%m-%d %H:%M:%S"), r["port"], r["operation"],
                        json.dumps(r["payload"], ensure_ascii=False)[:100]] for r in rows]))


# --- admin ---------------------------------------------------------------------------------

BOOTSTRAP_LOCK = 0x6D796862  # "myhb": two bootstraps at once create one key


async def _bootstrap(url: str, settings: Settings, name: str, force: bool, expires_days: int = 90) -> str | None:
    import sqlalchemy as sa

    from myhibachi.core.auth import create_api_key
    from myhibachi.core.db import Database
    from myhibachi.core.models import api_keys

    db = Database(url, pool_size=1)
    try:
        async with db.transaction() as conn:
            await conn.run(sa.select(sa.func.pg_advisory_xact_lock(BOOTSTRAP_LOCK)))
            existing = await conn.scalar(sa.select(api_keys.c.name).where(
                api_keys.c.scopes.contains(["*"]), api_keys.c.revoked_at.is_(None)))
            if existing is not None and not force:
                return None
            from datetime import datetime, timedelta, timezone

            key, _ = await create_api_key(conn, settings, name=name, scopes=["*"], created_by="cli:bootstrap",
                                          expires_at=datetime.now(timezone.utc) + timedelta(days=expires_days))
            return key
    finally:
        await db.close()


@admin_app.command("bootstrap")
def admin_bootstrap(
    ctx: typer.Context,
    name: str = typer.Option("super-admin (bootstrap)", help="Name of the key."),
    force: bool = typer.Option(False, help="Create another even when an unrevoked super-admin key exists."),
    expires: int = typer.Option(90, "--expires", min=1, max=3650, help="Days until the key is refused."),
) -> None:
    """Create the first super-admin credential: an API key with scope * printed once (use as Bearer).
    It expires after --expires days: before then, create its successor (`bootstrap --force` or
    `apikeys create`) and `apikeys revoke` the old one."""

    settings = _settings()
    url = _url(settings)
    _upgrade(url, _manager(ctx, settings), settings)
    key = asyncio.run(_bootstrap(url, settings, name, force, expires))
    if key is None:
        typer.echo("error: a super-admin key exists already; revoke it or pass --force", err=True)
        raise typer.Exit(1)
    typer.echo("Store this key now, it is not shown again:", err=True)
    typer.echo(key)


@admin_app.command("new-pii-key")
def admin_new_pii_key(key_id: str) -> None:
    """Print a fresh key entry to put first in MYHIBACHI_PII_KEYS."""
    from myhibachi.core.crypto import new_key_spec

    typer.echo(new_key_spec(key_id))


@admin_app.command("rotate-pii")
def admin_rotate_pii(batch: int = typer.Option(500, help="Rows per statement batch.")) -> None:
    """Seal every customer, booking, received webhook and plugin row again under the current
    PII key, in one transaction, so retired keys can be dropped."""
    counts = _with_ctx(lambda ctx: rotate_pii(ctx, batch=batch))
    typer.echo("re-sealed " + ", ".join(f"{n} {what}" for what, n in counts.items()))


async def rotate_pii(ctx, *, batch: int = 500) -> dict[str, int]:
    """What ``myhibachi admin rotate-pii`` does: how many rows of each kind were sealed again."""
    from myhibachi.core import bookings, customers, webhooks

    async with ctx.db.transaction() as conn:
        return {"customer(s)": await customers.rotate_keys(conn, ctx, batch=batch),
                "booking(s)": await bookings.rotate_keys(conn, ctx, batch=batch),
                "webhook event(s)": await webhooks.rotate_keys(conn, ctx, batch=batch),
                "plugin row(s)": sum(await ctx.hooks().rotate_keys(batch=batch, conn=conn))}


# --- API keys ------------------------------------------------------------------------------


async def apikeys_run(settings: Settings, action: str, **kw):
    """What ``myhibachi apikeys`` does, on the app's database: ``list`` -> rows, ``create``
    (name, scopes, expires_days) -> (key, row), ``revoke`` (key_id) -> row or None."""
    from datetime import datetime, timedelta, timezone

    from myhibachi.core import auth
    from myhibachi.core.db import Database
    from myhibachi.core.roles import app_url

    db = Database(app_url(settings, keep_running=True), pool_size=1)
    try:
        async with db.transaction() as conn:
            if action == "list":
                rows, cursor = [], None
                while True:
                    page, cursor = await auth.list_api_keys(conn, limit=200, cursor=cursor)
                    rows += page
                    if cursor is None:
                        return rows
            if action == "create":
                expires = datetime.now(timezone.utc) + timedelta(days=kw["expires_days"])
                return await auth.create_api_key(conn, settings, name=kw["name"], scopes=kw["scopes"],
                                                 created_by="cli", expires_at=expires)
            return await auth.revoke_api_key(conn, kw["key_id"])
    finally:
        await db.close()


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


@apikeys_app.command("list")
def apikeys_list() -> None:
    """Every key: id, name, scopes, expiry, revocation, last use (never the key)."""
    rows = asyncio.run(apikeys_run(_settings(), "list"))
    typer.echo(_table(["id", "name", "scopes", "expires", "revoked", "last used"],
                      [[str(r["id"]), r["name"], ",".join(r["scopes"]), _when(r["expires_at"]),
                        _when(r["revoked_at"]), _when(r["last_used_at"])] for r in rows]))


@apikeys_app.command("create")
def apikeys_create(
    name: str = typer.Argument(..., help="What the key is for."),
    scope: list[str] = typer.Option(..., "--scope", help="A permission (or area.*, *); repeat for more."),
    expires: int = typer.Option(90, "--expires", min=1, max=3650, help="Days until the key is refused."),
) -> None:
    """Create a key, printed once; it expires after --expires days."""
    key, row = asyncio.run(apikeys_run(_settings(), "create", name=name, scopes=scope, expires_days=expires))
    typer.echo(f"Store this key now, it is not shown again (id {row['id']}, expires {_when(row['expires_at'])}):",
               err=True)
    typer.echo(key)


@apikeys_app.command("revoke")
def apikeys_revoke(key_id: str) -> None:
    """Revoke a key: refused from its next request on."""
    import uuid

    try:
        parsed = uuid.UUID(key_id)
    except ValueError:
        typer.echo(f"error: {key_id!r} is not a key id (see apikeys list)", err=True)
        raise typer.Exit(2)
    row = asyncio.run(apikeys_run(_settings(), "revoke", key_id=parsed))
    if row is None:
        typer.echo(f"error: no API key {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {row['name']} ({key_id})")


def main() -> None:
    from myhibachi.core.plugins import load_installed

    manager = load_installed(_settings(), strict=False)
    manager.setup_call("register_cli", app=app)
    app(obj=manager)  # the commands' root context carries it (see _manager)


if __name__ == "__main__":
    main()
