"""Start-up time with every installed plugin, and the cost of one flag check.

    python bench/startup.py [--runs 7] [--requests 3000]

1. Start-up: a fresh interpreter per run (cold imports, warm bytecode cache) times ``import myhibachi.core.app``
   plus ``create_app()`` with every installed plugin; the median of the runs, and the
   whole process's wall time beside it. Budget: under 1.5 s.
2. Gating: the cost of ``Flags.enabled`` (the answer remembered per flag and context,
   and the Unleash engine itself), then one simple request served in-process through the
   ASGI app to a plugin route behind a flag and to the same route without one. The share
   is the flag check's cost over the request's time; an in-process request is cheaper
   than one over a socket, so the share over the network is smaller still. Budget: 2%.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STARTUP = """
import json, time
t0 = time.perf_counter()
from myhibachi.core.app import create_app
t1 = time.perf_counter()
app = create_app()
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "create_app": t2 - t1,
                  "plugins": len(app.state.ctx.plugins.plugins)}))
"""


def startup(runs: int, home: Path) -> dict:
    env = {**os.environ, "MYHIBACHI_HOME": str(home), "DATABASE_URL": "postgresql://bench@127.0.0.1:1/none"}
    # A deployed service starts from its bytecode cache: write it once, untimed, so no
    # run compiles the sources.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-c", STARTUP], env=env, capture_output=True, check=True)
    results, walls = [], []
    for _ in range(runs):
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", STARTUP], env=env, capture_output=True, text=True, check=True)
        walls.append(time.perf_counter() - started)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    inside = [r["import"] + r["create_app"] for r in results]
    return {
        "plugins": results[0]["plugins"],
        "import_s": statistics.median(r["import"] for r in results),
        "create_app_s": statistics.median(r["create_app"] for r in results),
        "startup_s": statistics.median(inside),
        "process_wall_s": statistics.median(walls),
        "runs": runs,
    }


def per_call_us(fn, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6


async def gating(requests: int, home: Path) -> dict:
    from fastapi import Depends
    from pydantic import BaseModel

    from myhibachi.core import Plugin, hookimpl
    from myhibachi.core.app import create_app
    from myhibachi.core.auth import Principal, current_principal
    from myhibachi.core.flags import TogglesFile
    from myhibachi.core.settings import Settings

    class Pong(BaseModel):
        pong: int

    def bench_plugin(name: str, flag: str | None):
        def register_routes(self, router, ctx):
            @router.get(f"/{name}/ping", response_model=Pong)
            async def ping(principal: Principal = Depends(current_principal)) -> Pong:
                return Pong(pong=1)

        return type(name, (Plugin,), {"name": name, "version": "1.0.0", "flag": flag,
                                      "register_routes": hookimpl(register_routes)})()

    flag = "FEATURE_FLAG_BENCH"
    TogglesFile(home / "flags.json").set(flag, enabled=True, rollout=100)
    settings = Settings(home=home, database_url="postgresql://bench@127.0.0.1:1/none", secret_key="bench" * 8,
                        rate_limit_ip=0, rate_limit_principal=0)
    app = create_app([bench_plugin("gated", flag), bench_plugin("open", None)], settings=settings)
    flags = app.state.ctx.flags
    flags.start()
    context = {"userId": "customer-42", "remoteAddress": "127.0.0.1"}
    assert flags.enabled(flag, context)
    check_us = per_call_us(lambda: flags.enabled(flag, context), 200_000)
    engine_us = per_call_us(lambda: flags.client.is_enabled(flag, context), 20_000)

    async def call(path: str) -> None:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
                 "root_path": "", "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 5000),
                 "server": ("bench", 80)}
        status = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(scope, receive, send)
        assert status == [200], (path, status)

    async def batch(path: str) -> float:
        started = time.perf_counter()
        for _ in range(requests):
            await call(path)
        return (time.perf_counter() - started) / requests * 1e6

    for path in ("/v1/gated/ping", "/v1/open/ping"):
        await batch(path)  # warm up
    gated, opened = [], []
    for _ in range(7):
        gated.append(await batch("/v1/gated/ping"))
        opened.append(await batch("/v1/open/ping"))
    flags.stop()
    request_us = statistics.median(gated)
    return {
        "flag_check_us": check_us,
        "engine_check_us": engine_us,
        "request_gated_us": request_us,
        "request_open_us": statistics.median(opened),
        "share_of_request": check_us / request_us,
        "engine_share_of_request": engine_us / request_us,
        "requests_per_batch": requests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        start = startup(args.runs, Path(tmp) / "startup")
        gate = asyncio.run(gating(args.requests, Path(tmp) / "gating"))
    report = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average_before": [round(x, 2) for x in load],
        **start, **gate,
    }
    print(json.dumps(report, indent=2))
    ok_start = start["startup_s"] < 1.5
    ok_gate = gate["share_of_request"] < 0.02
    print(f"start-up {start['startup_s']:.2f} s with {start['plugins']} plugin(s): "
          f"{'within' if ok_start else 'OVER'} the 1.5 s budget")
    print(f"flag check {gate['flag_check_us']:.2f} us = {gate['share_of_request']:.2%} of a "
          f"{gate['request_gated_us']:.0f} us request: {'within' if ok_gate else 'OVER'} the 2% budget")


if __name__ == "__main__":
    main()
