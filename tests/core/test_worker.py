"""`myhibachi worker` end to end: events, pollers and huey tasks on Redis, clean shutdown."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from myhibachi.core.models import event_deliveries
from tests.core.probe import DUE_DDL, ProbePlugin, create_effects_table, effects, publish_many

ROOT = Path(__file__).resolve().parents[2]


def third_party_path(tmp_path: Path) -> Path:
    """A folder that installs the probe plugin as an entry point, as a separate distribution would."""
    site = tmp_path / "site"
    dist = site / "myhibachi_probe-1.0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myhibachi-probe\nVersion: 1.0.0\n")
    (dist / "entry_points.txt").write_text("[myhibachi.plugins]\nprobe = tests.core.probe:ProbePlugin\n")
    return site


@pytest.fixture
def worker(tmp_path, db_url, redis_url, settings):
    procs = []

    def start(interval: float = 0.5) -> subprocess.Popen:
        env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": redis_url,
               "MYHIBACHI_HOME": str(tmp_path / "worker-home"), "MYHIBACHI_PLUGINS": "probe",
               "MYHIBACHI_SECRET_KEY": settings.secret_key, "MYHIBACHI_STRICT_PLUGINS": "true",
               "PYTHONPATH": os.pathsep.join([str(third_party_path(tmp_path)), str(ROOT)])}
        proc = subprocess.Popen([sys.executable, "-m", "myhibachi.core.cli", "worker", "--interval", str(interval)],
                                env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


async def eventually(check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError("not seen in time")


async def test_worker_delivers_events_runs_pollers_and_huey_tasks(make_app, database, redis_url, worker):
    await create_effects_table(database)
    async with database.transaction() as conn:
        await conn.run(sa.text(DUE_DDL))
        await conn.run(sa.text("TRUNCATE probe_due RESTART IDENTITY"))
    plugin = ProbePlugin()
    ctx = make_app([plugin], flags={"FEATURE_FLAG_PROBE": True}, redis_url=redis_url).state.ctx
    [early] = await publish_many(ctx, 1)
    # A long poll interval: what is published while it runs must arrive by NOTIFY.
    proc = worker(interval=60)

    async def handled():
        async with database.read() as conn:
            return await effects(conn, "handled")

    assert await eventually(handled, timeout=20) == {early: 1}
    async with database.transaction() as conn:
        await conn.run(sa.text("INSERT INTO probe_due (status, scheduled_at) VALUES ('pending', now())"))
    started = time.monotonic()
    later = await publish_many(ctx, 3)
    assert await eventually(lambda: _has(handled, 4), timeout=10) == {early: 1, **{i: 1 for i in later}}
    assert time.monotonic() - started < 8  # far below the 60 s poll: woken by NOTIFY

    async def sent():
        async with database.read() as conn:
            return await effects(conn, "sent")

    assert await eventually(sent, timeout=5) == {"1": 1}  # pollers run on the same wake-up

    ref = uuid.uuid4().hex
    plugin.task(ref)  # enqueued on Redis by this process, run by the worker

    async def ran():
        async with database.read() as conn:
            return await effects(conn, "task")

    assert await eventually(ran) == {ref: 1}
    async with database.read() as conn:
        pids = set(await conn.scalars(sa.text("SELECT DISTINCT pid FROM probe_effects")))
        statuses = set(await conn.scalars(sa.select(event_deliveries.c.status)))
    assert pids == {proc.pid}
    assert statuses == {"done"}

    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert "worker stopped" in out
    assert "Traceback" not in out and "dispatch loop failed" not in out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_worker_stops_cleanly_on_signal_while_a_handler_runs(make_app, database, worker, sig):
    """A stop signal mid-handler: the worker exits 0, and the delivery is done once or still pending."""
    await create_effects_table(database)
    ctx = make_app([ProbePlugin()], flags={"FEATURE_FLAG_PROBE": True}).state.ctx
    os.environ["PROBE_HANDLER_SLEEP"] = "1.0"
    try:
        proc = worker()
    finally:
        del os.environ["PROBE_HANDLER_SLEEP"]
    ids = await publish_many(ctx, 3)

    async def handled():
        async with database.read() as conn:
            return await conn.scalar(sa.text("SELECT count(*) FROM pg_stat_activity WHERE state = "
                                               "'idle in transaction' AND datname = current_database()"))

    await eventually(handled)  # a handler is sleeping inside its transaction
    stopped_at = time.monotonic()
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "worker stopped" in out and "Traceback" not in out
    assert time.monotonic() - stopped_at < 10
    async with database.read() as conn:
        got = await effects(conn, "handled")
        st = dict([tuple(r.values()) for r in await conn.fetch_all(sa.select(event_deliveries.c.event_id, event_deliveries.c.status))])
    assert set(got.values()) <= {1}
    assert {str(k) for k, v in st.items() if v == "done"} == set(got)
    assert set(map(str, st)) == set(ids)


async def _has(check, n):
    got = await check()
    return got if len(got) >= n else None


def _catches_sigterm(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught & 1 << (signal.SIGTERM - 1))


def test_a_sigterm_during_start_up_stops_the_worker_cleanly(worker):
    """SIGTERM as soon as the worker catches it, seconds before huey installs its own handlers
    (the app is still being built): huey starts, stops at once and the worker says it stopped,
    exit 0. Broken on purpose: without the worker's first-line handler the signal kills it
    silently (exit -15, no "worker stopped") (red)."""
    import threading

    proc = worker()
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 15
    while proc.poll() is None and not _catches_sigterm(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.005)
    before = "".join(lines)
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    reader.join(10)
    out = "".join(lines)
    assert "consumer started" not in before, before  # sent before huey had its handlers
    assert proc.returncode == 0, out
    assert out.index("consumer started") < out.index("Received SIGTERM") < out.index("worker stopped"), out
    assert "Traceback" not in out


def test_the_worker_freezes_what_start_up_made(db_url, settings, tmp_path, monkeypatch):
    """Like the API's lifespan, the worker moves its start-up objects out of the collector's
    sight before it consumes (gc.freeze). Broken on purpose: without it, nothing is frozen (red)."""
    import gc

    from huey.consumer import Consumer
    from typer.testing import CliRunner

    from myhibachi.core import metrics
    from myhibachi.core.cli import app as cli

    seen = []
    monkeypatch.setattr(metrics, "configure_logging", lambda fmt: None)  # this process's logging stays pytest's
    monkeypatch.setattr(Consumer, "run", lambda self: seen.append(gc.get_freeze_count()))
    gc.unfreeze()
    env = {"DATABASE_URL": db_url, "MYHIBACHI_HOME": str(tmp_path / "home"), "MYHIBACHI_PLUGINS": "",
           "MYHIBACHI_SECRET_KEY": settings.secret_key, "REDIS_URL": None}
    try:
        done = CliRunner().invoke(cli, ["worker"], env=env)
    finally:
        gc.unfreeze()
    assert done.exit_code == 0 and done.output.endswith("worker stopped\n"), done.output
    assert seen and seen[0] > 10_000, seen
