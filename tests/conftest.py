"""Test fixtures of this repository: the servers only its own tests need (Redis, localstripe,
Unleash). The app, database and client fixtures (``make_app``, ``client_of``, ``database``,
``clean_db``, ``settings``, ``customer``, ``staff``, ``drain``) come from ``myhibachi.testing``,
the pytest plugin that third-party plugins test with too.

Every test builds its app with ``make_app(plugins=[...], flags={...})``: the plugins it
names, not whatever is installed. The database is migrated once per session with every
installed plugin's branch; tables are emptied after each test that used them.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from myhibachi.testing import all_installed, client_for  # noqa: F401  (imported from here by tests)
from tests.stripe_server import localstripe_url  # noqa: F401  (session fixture: localstripe)
from tests.unleash_server import unleash_server  # noqa: F401  (session fixture: a real Unleash server)

os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A real redis-server on a free port for this session (REDIS_URL overrides)."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (.ci/run installs it)")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(autouse=True)
async def close_databases(monkeypatch):
    """An app built without the session's database opens pools of its own on first use;
    close those a test made (its server's connection slots are few)."""
    from myhibachi.core import db

    made = []
    init = db.Database.__init__

    def recording(self, *args, **kwargs):
        init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(db.Database, "__init__", recording)
    yield
    for database in made:
        await database.close()
