"""Per-request CPU of the hot endpoints in one process, without a server or a network.

Each app (the bare baseline, the core alone, every installed plugin) is called as an ASGI
application, one request at a time, on the same seeded embedded PostgreSQL. What it
measures is the Python work of a request (framework, dependencies, driver, mapping), the
part that separates the project from the bare app; ``bench/load.py`` measures the whole.

    python bench/inproc.py [--requests 2000] [--rounds 3] [--apps bare,core,all] [--endpoints ...]
    python bench/inproc.py --profile "core:create booking" [--all-frames]
    python bench/inproc.py --statements "all:create booking"

``--profile app:endpoint`` writes a pyinstrument report of that pair to stdout.
``--statements app:endpoint`` lists the statements one request of that pair sends, in order
(BEGIN and COMMIT included): a count that, unlike time, does not depend on the machine.
``--home DIR`` keeps the seeded database for the next run (each create round adds bookings).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load  # noqa: E402


def create_body(i: int) -> bytes:
    """A booking on the hour, spread over 160 days as the load benchmark's are."""
    start = datetime.combine(date.today() + timedelta(days=3 + i % 160), datetime.min.time()) + timedelta(
        hours=(i * 7) % 23)
    return json.dumps({"starts_at": f"{start.isoformat()}Z", "time_zone": "UTC", "adults": 10,
                       "children": 2, "address": "1 Market St", "zip_code": load.ZIP,
                       "duration_minutes": 60}).encode()


def requests_of(tokens: list[str], location: str, customers: list[uuid.UUID]) -> dict[str, tuple[str, object, object]]:
    """Each endpoint's method, target and body; a callable target takes the token's index."""
    day = (date.today() + timedelta(days=load.AVAILABILITY_DAYS_AHEAD)).isoformat()
    return {
        "create booking": ("POST", "/v1/bookings", create_body),
        "list bookings": ("GET", "/v1/bookings?limit=20", b""),
        "get customer": ("GET", "/v1/customers/me", b""),
        "availability": ("GET", f"/v1/availability?from={day}&to={day}&location_id={location}", b""),
        # a plugin's endpoint, each token asking its own balance; the core alone has no such route
        "loyalty balance": ("GET", lambda k: f"/v1/customers/{customers[k]}/loyalty", b""),
    }


async def call(app, method: str, target: str, body: bytes, token: str) -> int:
    path, _, query = target.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
             "root_path": "", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000),
             "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode()),
                         (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
             "state": {}, "app": app}
    sent = False
    status = 0

    async def receive():
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def measure(app, req, tokens: list[str], n: int) -> tuple[float, float, int]:
    method, target, body = req
    bad = 0
    bodies = [body(i) if callable(body) else body for i in range(n + 200)]
    k = len(tokens)
    targets = [target(i % k) if callable(target) else target for i in range(k)]
    for i in range(min(200, n)):  # warm-up: statement caches, pools
        await call(app, method, targets[i % k], bodies[n + i], tokens[i % k])
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(n):
        status = await call(app, method, targets[i % k], bodies[i], tokens[i % k])
        bad += status >= 300
    return 1000 * (time.process_time() - cpu) / n, 1000 * (time.perf_counter() - wall) / n, bad


async def sent_by(app, req, tokens: list[str]) -> list[str]:
    """The statements one request sends, in order (psycopg's, so BEGIN and COMMIT too)."""
    import psycopg

    method, target, body = req
    sent: list[str] = []
    original = psycopg.AsyncConnection._exec_command, psycopg.AsyncCursor.execute

    def command(self, command, *a, **k):  # a generator psycopg drives, as the original is
        sent.append(command.decode() if isinstance(command, bytes) else str(command))
        return original[0](self, command, *a, **k)

    async def execute(self, query, *a, **k):
        sent.append(query.decode() if isinstance(query, bytes) else str(query))
        return await original[1](self, query, *a, **k)

    psycopg.AsyncConnection._exec_command, psycopg.AsyncCursor.execute = command, execute
    try:
        await call(app, method, target(0) if callable(target) else target, body(10_007) if callable(body) else body,
                   tokens[0])
    finally:
        psycopg.AsyncConnection._exec_command, psycopg.AsyncCursor.execute = original
    return sent


def build(name: str, env: dict[str, str]):
    os.environ.update(env)
    if name == "bare":
        from baseline import app as bare
        return bare.create_app()
    from myhibachi.core.app import create_app
    from myhibachi.core.settings import Settings
    return create_app(None if name == "all" else [], settings=Settings())


async def run_apps(names: list[str], env: dict, reqs: dict, tokens: list[str], n: int, rounds: int,
                   profile: str | None = None,
                   show_all: bool = False, statements: bool = False) -> dict[str, dict[str, tuple[float, float, int]]]:
    """Every app up at once; rounds interleave them and the lowest CPU of each pair is kept
    (the machine's other jobs only ever add to a round)."""
    from contextlib import AsyncExitStack

    apps = {name: build(name, env) for name in names}
    best: dict[str, dict[str, tuple[float, float, int]]] = {name: {} for name in names}
    async with AsyncExitStack() as stack:
        for app in apps.values():
            await stack.enter_async_context(app.router.lifespan_context(app))
        if statements:
            (name, app), = apps.items()
            await measure(app, reqs[profile], tokens, 20)
            for sql in await sent_by(app, reqs[profile], tokens):
                print(" ".join(sql.split())[:160 if not os.environ.get("MYHIBACHI_BENCH_FULL_SQL") else None])
            return best
        if profile:
            from pyinstrument import Profiler

            (name, app), = apps.items()
            await measure(app, reqs[profile], tokens, 200)
            with Profiler(async_mode="disabled", interval=0.0002) as p:
                await measure(app, reqs[profile], tokens, n)
            print(p.output_text(unicode=False, color=False, show_all=show_all))
            return best
        for endpoint, req in reqs.items():
            for r in range(rounds):
                for name in names[r % len(names):] + names[:r % len(names)]:
                    if endpoint == "loyalty balance" and name == "core":
                        continue
                    got = await measure(apps[name], req, tokens, n)
                    if endpoint not in best[name] or got[0] < best[name][endpoint][0]:
                        best[name][endpoint] = got
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--profile", help="app:endpoint, e.g. core:get customer")
    parser.add_argument("--statements", help="app:endpoint: list the statements one request sends")
    parser.add_argument("--all-frames", action="store_true", help="with --profile: show library frames too")
    parser.add_argument("--apps", default="bare,core,all")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--endpoints", help="comma-separated subset, e.g. 'get customer,list bookings'")
    parser.add_argument("--home", help="keep the seeded database here and reuse it on the next run")
    args = parser.parse_args()
    home = Path(args.home or tempfile.mkdtemp(prefix="mh-inproc-"))
    seeded = home / "seeded.json"
    try:
        settings, url, plugin_names = load.prepare(home)
        load.all_flags_on(settings, plugin_names)
        from myhibachi.core.db import Database
        db = Database(url)

        async def seed():
            ids = await load.seed_customers(db, settings, 500)
            location = await load.seed_location(db)
            await load.seed_bookings(db, settings, 0, 10_000, 500, location=location)
            await db.close()
            return ids, location

        if seeded.exists():
            ids, location = json.loads(seeded.read_text())
            ids = [uuid.UUID(i) for i in ids]
        else:
            ids, location = asyncio.run(seed())
            if args.home:
                seeded.write_text(json.dumps([[str(i) for i in ids], str(location)]))
        tokens = load.tokens_for(settings, ids[:100])
        reqs = requests_of(tokens, location, ids[:100])
        if args.endpoints:
            reqs = {k: v for k, v in reqs.items() if k in args.endpoints.split(",")}
        env = {**load.server_env(home, url)}
        apps = args.apps.split(",")
        if args.profile or args.statements:
            app, endpoint = (args.profile or args.statements).split(":", 1)
            asyncio.run(run_apps([app], env, reqs, tokens, args.requests, 1, endpoint, args.all_frames,
                                 statements=bool(args.statements)))
            return
        results = asyncio.run(run_apps(apps, env, reqs, tokens, args.requests, args.rounds))
        print(f"{'endpoint':16}" + "".join(f"{a + ' cpu':>11}{a + ' wall':>11}" for a in apps) + "  non-2xx")
        for endpoint in reqs:
            got = [results[a].get(endpoint, (float("nan"),) * 2 + (0,)) for a in apps]
            row = "".join(f"{cpu:11.3f}{wall:11.3f}" for cpu, wall, _ in got)
            print(f"{endpoint:16}{row}  {[bad for _, _, bad in got]}")
    finally:
        if not args.home:
            from myhibachi.core.db import stop_embedded
            stop_embedded(home)
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
