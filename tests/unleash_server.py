"""A real Unleash server (npm ``unleash-server`` 8.x) for the tests, on the session PostgreSQL.

``.ci/run`` installs it into ``.ci/unleash/node_modules``; ``.ci/unleash/start.mjs`` starts
it with an admin token and a backend (client) token for the ``development`` environment.
It gets its own database in the session's PostgreSQL server and a free port, and is always
stopped at the end of the session.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

UNLEASH_DIR = Path(__file__).resolve().parents[1] / ".ci" / "unleash"
START_TIMEOUT = 120.0  # the first start migrates an empty database


@dataclass
class UnleashServer:
    url: str  # the API URL clients use, ending in /api
    admin_token: str
    client_token: str
    started_in: float  # seconds from launch to a healthy /health
    environment: str = "development"

    _proc: subprocess.Popen | None = None
    _launch: tuple | None = None  # (node, config, log path)

    def start(self) -> None:
        """Start the server (again: same port, database and tokens) and wait until healthy."""
        node, config, log_path = self._launch
        env = {**os.environ, "UNLEASH_TEST_CONFIG": json.dumps(config), "SEND_TELEMETRY": "false",
               "CHECK_VERSION": "false", "NODE_NO_WARNINGS": "1"}
        started = time.monotonic()
        with open(log_path, "ab") as log:
            self._proc = proc = subprocess.Popen([node, str(UNLEASH_DIR / "start.mjs")], cwd=UNLEASH_DIR, env=env,
                                                 stdout=log, stderr=subprocess.STDOUT)
        base = self.url.removesuffix("/api")
        while True:
            if proc.poll() is not None:
                pytest.fail(f"unleash-server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() - started > START_TIMEOUT:
                pytest.fail(f"unleash-server not healthy after {START_TIMEOUT}s:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.started_in = time.monotonic() - started

    def stop(self) -> None:
        """Stop the server (an outage); ``start()`` brings it back."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url.removesuffix("/api"), headers={"Authorization": self.admin_token},
                            timeout=10)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _db_options(url: sa.engine.URL, database: str) -> dict:
    # The embedded PostgreSQL listens on a Unix socket: its directory is the URL's host query.
    host = url.query.get("host") or url.host or "127.0.0.1"
    return {"host": host, "port": url.port or 5432, "user": url.username or "postgres",
            "password": url.password or "", "database": database}


@pytest.fixture(scope="session")
def unleash_server(pg_server_url, tmp_path_factory):
    node = shutil.which("node")
    package = UNLEASH_DIR / "node_modules" / "unleash-server"
    if node is None or not package.is_dir():
        pytest.fail(f"unleash-server is not installed in {UNLEASH_DIR} (.ci/run installs it with npm)")

    url = sa.engine.make_url(pg_server_url)
    database = f"unleash_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{database}"'))

    port = _free_port()
    secret = uuid.uuid4().hex
    config = {
        "port": port,
        "db": _db_options(url, database),
        "adminToken": f"*:*.{secret}admin",
        "clientToken": f"*:development.{secret}client",
    }
    server = UnleashServer(url=f"http://127.0.0.1:{port}/api", admin_token=config["adminToken"],
                           client_token=config["clientToken"], started_in=0.0)
    server._launch = (node, config, tmp_path_factory.mktemp("unleash") / "unleash.log")
    try:
        server.start()
        yield server
    finally:
        server.stop()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()
