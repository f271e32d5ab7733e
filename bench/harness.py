"""Shared pieces of the benchmarks: servers under granian, and wrk at saturation or at an evenly paced rate."""
from __future__ import annotations

import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}"


@contextmanager
def serve(target: str, env: dict[str, str], *, workers: int = 2, factory: bool = True):
    """Run ``target`` under granian on a free port; yields the base URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers), "--log-level", "error", "--no-ws"]
    if factory:
        cmd.append("--factory")
    cmd.append(target)
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{target} exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{target} did not become healthy")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass
class Result:
    rps: float
    p50: float
    p95: float
    p99: float
    errors: int = 0
    non2xx: int = 0

    def row(self) -> list[str]:
        return [f"{self.rps:,.0f}", f"{self.p50:.1f}", f"{self.p95:.1f}", f"{self.p99:.1f}",
                str(self.errors + self.non2xx)]


WRK_LUA = """
wrk.method = "{method}"
wrk.headers["Content-Type"] = "application/json"
{headers}
{body}
local shown = 0
response = function(status, headers, body)
  if status >= 300 and shown < 2 then
    shown = shown + 1
    io.write("BAD " .. status .. " " .. string.sub(body or "", 1, 300) .. "\\n")
  end
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %f %f %f %f\\n", summary.requests,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
"""


# Each wrk thread sends on a schedule of its own, one request every ``interval`` ms from a
# random phase: whichever of its connections is free takes the next slot (wrk calls
# ``delay`` before each request), so requests arrive evenly at the rate asked. A fixed
# delay per connection, or hey's per-worker tickers, send every connection at the same
# instant: bursts as large as the connection count, each far above the rate asked (on
# the list at 70%, p50 14 ms and p95 23 ms against 2.8 and 6.1 ms evenly paced).
PACED_LUA = """
local ffi = require("ffi")
ffi.cdef[[ typedef struct {{ long tv_sec; long tv_nsec; }} paced_ts; int clock_gettime(int, paced_ts *); ]]
local paced_now = ffi.new("paced_ts")
local interval, slot = {interval}, nil
delay = function()
  ffi.C.clock_gettime(1, paced_now)
  local now = tonumber(paced_now.tv_sec) * 1000 + tonumber(paced_now.tv_nsec) / 1e6
  slot = (slot or now + interval * math.random()) + interval
  return math.max(0, math.floor(slot - now + 0.5))
end
"""


def wrk(url: str, *, method: str = "GET", headers: dict[str, str] | None = None, body: str | None = None,
        lua: str | None = None, seconds: int = 10, connections: int = 32, threads: int = 2,
        rate: float | None = None) -> Result:
    """wrk with ``connections`` keep-alive connections for ``seconds``: at saturation, or
    with ``rate`` (req/s in all) evenly paced; latency percentiles in ms from each send."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    header_lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in (headers or {}).items())
    body_line = lua or (f"wrk.body = [[{body}]]" if body else "")
    script = WRK_LUA.format(method=method, headers=header_lines, body=body_line)
    if rate:
        script += PACED_LUA.format(interval=1000 * threads / rate)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
    try:
        out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "-s", fh.name,
                              url], capture_output=True, text=True, timeout=seconds + 60).stdout
    finally:
        os.unlink(fh.name)
    match = re.search(r"RESULT (\d+) (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+)", out)
    if not match:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    n, non2xx, errors, dur, p50, p95, p99 = match.groups()
    for line in re.findall(r"^BAD .*$", out, re.M)[:2]:
        print(f"  {url}: {line}", flush=True)
    return Result(int(n) / float(dur), float(p50), float(p95), float(p99), int(errors), int(non2xx))


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def record(section: str, text: str) -> None:
    """Replace (or append) ``## section`` in bench/RESULTS.md."""
    path = ROOT / "bench" / "RESULTS.md"
    doc = path.read_text() if path.exists() else "# Benchmark results\n"
    header = f"## {section}"
    start = doc.find(header)
    block = f"{header}\n\n{text.strip()}\n\n"
    if start == -1:
        doc = doc.rstrip() + "\n\n" + block
    else:
        end = doc.find("\n## ", start + len(header))
        doc = doc[:start] + block + (doc[end + 1:] if end != -1 else "")
    path.write_text(doc)


def scratch_database(only: set[str] | None = None, home: Path | None = None):
    """A throwaway home with its embedded PostgreSQL (or ``DATABASE_URL``), migrated with every
    installed plugin (or those in ``only``): ``(settings, url, db)``. The folder goes when the process exits, after
    the embedded server has stopped (its clean-up is registered first, so it runs last); a
    ``home`` given is kept, with its data, for the next run."""
    import atexit

    from myhibachi.core import migrate
    from myhibachi.core.db import Database, resolve_url
    from myhibachi.core.plugins import PluginManager, discover
    from myhibachi.core.settings import Settings

    if home is None:
        home = Path(tempfile.mkdtemp(prefix="mh-bench-"))
        atexit.register(shutil.rmtree, home, ignore_errors=True)
    settings = Settings(home=home, database_url=os.environ.get("DATABASE_URL"), secret_key="bench-" + "k" * 32)
    url = resolve_url(settings)
    manager = PluginManager()
    manager.load(discover(), allow=only, strict=True)
    migrate.upgrade(url, manager)
    return settings, url, Database(url)
