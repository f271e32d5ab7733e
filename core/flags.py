"""Feature flags through the official Unleash client, embedded (toggles file) or server mode.

Embedded default: the client runs offline on a cache that reads the toggles file (the
format of Unleash's ``/api/client/features``), with registration and metrics off, so it
opens no connection; the file is re-read every ``unleash_refresh_seconds`` so
``myhibachi flags ...`` edits reach a running app.

Server mode (``UNLEASH_URL``): the client polls the server; the toggles file is not read.
Every state the server sends is kept on disk (``<home>/unleash-features.json``, the
client's cache) and bootstraps the next start, so a restart while the server is down
starts from the server's last state. Initialisation runs in the background, so start-up
never waits; with no state at all yet the flags are not ready (``/readyz`` answers 503).
An unreachable server is logged once when it goes and once when it is back.

Rollout is ``flexibleRollout`` with ``stickiness: userId``; the caller always provides a
``userId`` (customer/admin id, else session, else remote address), so answers are sticky.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from UnleashClient import UnleashClient
from UnleashClient.cache import BaseCache
from UnleashClient.constants import FEATURES_URL
from UnleashClient.utils import InstanceAllowType

log = logging.getLogger("myhibachi.flags")

APP_NAME = "myhibachi"


# --- the toggles file --------------------------------------------------------------------


def feature(name: str, *, enabled: bool = True, rollout: int = 100, description: str = "") -> dict[str, Any]:
    """One toggle in Unleash's client features format."""
    return {
        "name": name,
        "description": description,
        "type": "release",
        "project": "default",
        "enabled": enabled,
        "stale": False,
        "impressionData": False,
        "strategies": [
            {
                "name": "flexibleRollout",
                "constraints": [],
                "parameters": {"rollout": str(rollout), "stickiness": "userId", "groupId": name},
            }
        ],
        "variants": [],
    }


def rollout_of(toggle: dict[str, Any]) -> int:
    for strategy in toggle.get("strategies", []):
        if strategy.get("name") == "flexibleRollout":
            return int(strategy.get("parameters", {}).get("rollout", 100))
        if strategy.get("name") == "default":
            return 100
    return 100 if not toggle.get("strategies") else 0


class TogglesFile:
    """Reads and atomically rewrites the toggles file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"version": 2, "features": []}
        return json.loads(self.path.read_text() or '{"version": 2, "features": []}')

    def write(self, doc: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".flags-")
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=2)
        os.replace(tmp, self.path)

    def toggles(self) -> dict[str, dict[str, Any]]:
        return {f["name"]: f for f in self.read().get("features", [])}

    def set(self, name: str, *, enabled: bool | None = None, rollout: int | None = None) -> dict[str, Any]:
        """Change one toggle (creating it), keeping every other toggle as it is."""
        if rollout is not None and not 0 <= rollout <= 100:
            raise ValueError("rollout must be between 0 and 100")
        doc = self.read()
        features = doc.setdefault("features", [])
        current = next((f for f in features if f["name"] == name), None)
        if current is None:
            current = feature(name, enabled=bool(enabled), rollout=100 if rollout is None else rollout)
            features.append(current)
        else:
            if enabled is not None:
                current["enabled"] = enabled
            if rollout is not None:
                current["strategies"] = feature(name, rollout=rollout)["strategies"]
        self.write(doc)
        return current

    def ensure(self, names: list[str], *, enabled: bool = True) -> None:
        """Add the toggles that are missing (a plugin installed since the file was written)."""
        doc = self.read()
        have = {f["name"] for f in doc.get("features", [])}
        missing = [n for n in names if n not in have]
        if missing or not self.path.exists():
            doc.setdefault("features", []).extend(feature(n, enabled=enabled) for n in missing)
            self.write(doc)


class TogglesFileCache(BaseCache):
    """An Unleash cache whose feature state is the toggles file, re-read when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._values: dict[str, Any] = {}
        self._body: str | None = None
        self.bootstrapped = self.path.exists()

    def _features(self) -> str | None:
        # Read on every refresh and compared by content: the file is small, and an mtime
        # can stay the same across two quick edits (coarse filesystem timestamps).
        try:
            body = self.path.read_text()
        except FileNotFoundError:
            return self._body
        except OSError:
            log.warning("toggles file %s unreadable; keeping the last state", self.path)
            return self._body
        if body != self._body:
            try:
                json.loads(body)
            except ValueError:
                log.warning("toggles file %s is not valid JSON; keeping the last state", self.path)
                return self._body
            self._body = body
        return self._body

    def set(self, key: str, value: Any) -> None:
        if key != FEATURES_URL:  # the file is the state: nothing else writes it
            self._values[key] = value

    def mset(self, data: dict) -> None:
        for k, v in data.items():
            self.set(k, v)

    def get(self, key: str, default: Any = None) -> Any:
        if key == FEATURES_URL:
            body = self._features()
            return body if body is not None else default
        return self._values.get(key, default)

    def exists(self, key: str) -> bool:
        return self.get(key) is not None

    def destroy(self) -> None:
        self._values.clear()


class ServerStateCache(TogglesFileCache):
    """Server mode's cache: the last state the server sent, written to disk when it changes.

    It bootstraps the client at start-up, so a restart while the server is unreachable
    evaluates the server's last state (the toggles file is not used in server mode).
    ``fresh_at`` is when that state was last confirmed (the file's time at start-up).
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._body = self._features()
        self.bootstrapped = self._body is not None
        self.fresh_at: float | None = self.path.stat().st_mtime if self.bootstrapped else None

    def _features(self) -> str | None:
        return self._body if self._body is not None else super()._features()

    def set(self, key: str, value: Any) -> None:
        if key != FEATURES_URL:
            self._values[key] = value
            return
        body = value if isinstance(value, str) else json.dumps(value)
        self.fresh_at = time.time()
        if body != self._body:
            self._body = body
            try:
                TogglesFile(self.path).write(json.loads(body))
            except (OSError, ValueError) as exc:
                log.warning("could not keep the flag state in %s: %s", self.path, exc)


# The client logs a traceback for every failed poll, registration and metrics post; those
# are dropped here, and Flags logs one line when the server goes and one when it is back.
_QUIET = ("Unleash Client feature fetch failed", "Unleash Client registration failed",
          "Unleash Client metrics submission failed", "Unleash client does not have cached features")
_last_failure = threading.local()


def _quiet_poll_failures(record: logging.LogRecord) -> bool:
    message = str(record.msg)
    if not message.startswith(_QUIET):
        return True
    if message.startswith("Unleash Client feature fetch failed"):
        reason = record.exc_info[1] if record.exc_info and record.exc_info[1] else record.getMessage()
        _last_failure.reason = str(reason).splitlines()[0][:200] if str(reason) else type(reason).__name__
    return False


logging.getLogger("UnleashClient").addFilter(_quiet_poll_failures)


# --- the flag service --------------------------------------------------------------------


class Flags:
    """The app's flag checks: ``enabled(flag, context)``; never does network I/O."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self.path = settings.toggles_path
        self.server_mode = bool(settings.unleash_url)
        self.cache = ServerStateCache(server_state_path(settings)) if self.server_mode else TogglesFileCache(self.path)
        self.toggles = TogglesFile(self.path)
        self.reachable: bool | None = None  # server mode: did the last poll reach the server
        options: dict[str, Any] = dict(
            app_name=APP_NAME,
            instance_id=f"{APP_NAME}-{os.getpid()}",
            refresh_interval=settings.unleash_refresh_seconds,
            cache=self.cache,
            multiple_instance_mode=InstanceAllowType.SILENTLY_ALLOW,
            request_timeout=2,
            request_retries=0,
        )
        if self.server_mode:
            headers = {"Authorization": settings.unleash_api_token} if settings.unleash_api_token else {}
            self.client = UnleashClient(url=settings.unleash_url, custom_headers=headers, **options)
        else:
            self.client = UnleashClient(
                url="http://127.0.0.1:1/api",  # never contacted: offline connector, no metrics
                disable_metrics=True,
                disable_registration=True,
                **options,
            )
        self._started = False
        # Answers are remembered per (flag, context) until the engine takes new definitions:
        # a check then costs a dict lookup instead of ~27 us in the engine, on every request.
        # (In server mode the client's usage metrics then count first evaluations only.)
        self._memo: dict[tuple, tuple[int, bool]] = {}
        self._generation = 0
        self._state: Any = None
        engine = self.client._engine
        take_state = engine.take_state

        def take_state_and_forget(state):
            try:
                return take_state(state)
            finally:
                if state != self._state:
                    self._state = state
                    self._generation += 1

        engine.take_state = take_state_and_forget
        if self.server_mode:
            fetch = self.client._transport.fetch_features

            def fetch_and_watch(etag: str = ""):
                _last_failure.reason = "no answer"
                result = fetch(etag)
                if result.not_modified:
                    self.cache.fresh_at = time.time()
                self._reached(result.raw_state is not None or result.not_modified)
                return result

            self.client._transport.fetch_features = fetch_and_watch

    def _reached(self, ok: bool) -> None:
        """Log a change of the server's reachability, once per change."""
        if ok == self.reachable:
            return
        url = self.settings.unleash_url
        if ok and self.reachable is not None:
            log.warning("Unleash server %s reachable again; flags are current", url)
        elif not ok:
            age = self.age()
            held = (f"flags keep the server's state of {age:.0f}s ago" if age is not None
                    else "no flag state yet: /readyz answers 503 until the server answers")
            log.warning("Unleash server %s unreachable (%s); %s", url, getattr(_last_failure, "reason", "?"), held)
        self.reachable = ok

    def age(self) -> float | None:
        """Seconds since the flag state was last confirmed (server mode), 0 for the file; None: no state."""
        if not self.ready:
            return None
        if not self.server_mode:
            return 0.0
        return max(0.0, time.time() - self.cache.fresh_at) if self.cache.fresh_at else None

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        if self.server_mode:
            threading.Thread(target=self._init_server, name="unleash-init", daemon=True).start()
        else:
            self.client.initialize_client(fetch_toggles=False)

    def _init_server(self) -> None:
        try:
            self.client.initialize_client()
        except Exception as exc:  # a malformed URL: the bootstrapped state holds
            _last_failure.reason = f"{type(exc).__name__}: {exc}"
            self._reached(False)

    def reload(self) -> None:
        """Re-read the toggles now instead of at the next refresh (CLI and tests)."""
        # UnleashClient has no public reload; this is what its own refresh job runs.
        self.client._store.load_from_cache()

    def rollout(self, flag: str) -> int:
        """Share of users (0-100) ``flag`` is on for, from the definitions the client holds."""
        body = self.cache.get(FEATURES_URL)
        doc = json.loads(body) if isinstance(body, str) else (body or {})
        for toggle in doc.get("features", []):
            if toggle.get("name") == flag:
                return rollout_of(toggle) if toggle.get("enabled") else 0
        return 0

    def enabled(self, flag: str, context: dict[str, Any] | None = None) -> bool:
        generation = self._generation
        try:
            key = (flag, *context.items()) if context else (flag,)
            known = self._memo.get(key)
        except TypeError:  # an unhashable context value (properties): ask the engine
            return self.client.is_enabled(flag, context)
        if known is not None and known[0] == generation:
            return known[1]
        answer = self.client.is_enabled(flag, context)
        if len(self._memo) >= 100_000:
            self._memo.clear()
        # stored with the generation it was computed under, so a reload racing this call
        # leaves an entry that is never used.
        self._memo[key] = (generation, answer)
        return answer

    @property
    def ready(self) -> bool:
        return bool(self.cache.get(FEATURES_URL))

    def definitions(self) -> dict[str, Any]:
        return self.client.feature_definitions()

    def stop(self) -> None:
        try:
            self.client.destroy()
        except Exception:
            pass


def server_state_path(settings) -> Path:
    """Where server mode keeps the last state the Unleash server sent."""
    return settings.home_dir / "unleash-features.json"


# --- the Unleash admin API (flags sync) ---------------------------------------------------


class SyncError(RuntimeError):
    """The Unleash admin API refused a request (wrong token, unreachable server ...)."""


class FlagState:
    """A read-only view of one features document: what the CLI shows and reports."""

    def __init__(self, doc: dict[str, Any], source: str) -> None:
        self.toggles = {f["name"]: f for f in doc.get("features", [])}
        self.source = source

    def rollout(self, flag: str) -> int:
        toggle = self.toggles.get(flag)
        return rollout_of(toggle) if toggle and toggle.get("enabled") else 0


def current_state(settings) -> FlagState:
    """The flags as the running service sees them: the toggles file (embedded), else the
    Unleash server's client API, else (server down) the last state it sent."""
    if not settings.unleash_url:
        return FlagState(TogglesFile(settings.toggles_path).read(), str(settings.toggles_path))
    import httpx

    headers = {"Authorization": settings.unleash_api_token} if settings.unleash_api_token else {}
    try:
        resp = httpx.get(settings.unleash_url.rstrip("/") + FEATURES_URL, headers=headers, timeout=5)
        if resp.status_code == 200:
            return FlagState(resp.json(), settings.unleash_url)
        reason = f"{resp.status_code} {resp.text[:200]}"
    except (httpx.HTTPError, ValueError) as exc:
        reason = str(exc) or type(exc).__name__
    kept = server_state_path(settings)
    if kept.exists():
        age = time.time() - kept.stat().st_mtime
        return FlagState(TogglesFile(kept).read(), f"{settings.unleash_url} unreachable ({reason}): "
                                                   f"its last state, {age:.0f}s old")
    raise SyncError(f"Unleash server {settings.unleash_url} unreachable ({reason}) and no state of it is kept")


def _admin(settings):
    import httpx

    if not settings.unleash_admin_token:
        raise SyncError("UNLEASH_ADMIN_TOKEN is not set: the server's flags change in the Unleash dashboard "
                        "or with an admin token")
    base = settings.unleash_url.rstrip("/").removesuffix("/api")
    return httpx.Client(base_url=base, headers={"Authorization": settings.unleash_admin_token}, timeout=10)


def server_environment(settings) -> str:
    """The Unleash environment the service evaluates: its client token's (``project:env.secret``)."""
    if settings.unleash_environment:
        return settings.unleash_environment
    token = settings.unleash_api_token or ""
    if ":" in token and "." in token:
        return token.split(":", 1)[1].split(".", 1)[0]
    raise SyncError("set UNLEASH_ENVIRONMENT (or UNLEASH_API_TOKEN) to say which Unleash environment to change")


def change_on_server(settings, flag: str, *, enabled: bool | None = None, rollout: int | None = None,
                     project: str = "default") -> None:
    """Turn ``flag`` on/off or set its rollout in the service's environment, through the admin API."""
    import httpx

    if rollout is not None and not 0 <= rollout <= 100:
        raise ValueError("rollout must be between 0 and 100")
    env = server_environment(settings)
    path = f"/api/admin/projects/{project}/features/{flag}"
    try:
        with _admin(settings) as http:
            got = http.get(path)
            if got.status_code == 404:
                raise SyncError(f"{flag} is not on the Unleash server: `myhibachi flags sync` creates it")
            _check(got)
            if rollout is not None:
                [environment] = [e for e in got.json().get("environments", []) if e["name"] == env] or [{}]
                strategy = next((s for s in environment.get("strategies", []) if s["name"] == "flexibleRollout"), None)
                body = {"name": "flexibleRollout", "constraints": [],
                        "parameters": feature(flag, rollout=rollout)["strategies"][0]["parameters"]}
                if strategy is None:
                    _check(http.post(f"{path}/environments/{env}/strategies", json=body))
                else:
                    body["constraints"] = strategy.get("constraints", [])
                    _check(http.put(f"{path}/environments/{env}/strategies/{strategy['id']}", json=body))
            if enabled is not None:
                _check(http.post(f"{path}/environments/{env}/{'on' if enabled else 'off'}"))
    except httpx.HTTPError as exc:
        raise SyncError(f"Unleash server {settings.unleash_url} unreachable: {exc}") from exc


def sync_to_server(settings, flags: list[tuple[str, str]], *, project: str = "default",
                   keep_on: frozenset[str] | set[str] = frozenset()) -> dict[str, list[str]]:
    """Create every missing flag on the Unleash server through its admin API (Unleash 8).

    A new flag gets the same ``flexibleRollout`` (100%, sticky by ``userId``) in every
    environment as the toggles file uses, and is left off there: turning an environment
    on in the dashboard then rolls it out exactly as the embedded default does. Returns
    the names ``created``, the ones already ``existing`` and the ones only ``archived``
    (an archived flag keeps its name; revive it in the dashboard). A flag in ``keep_on`` (a
    compliance plugin's, such as audit logs) is turned on in every environment where it is
    off, new or not, and listed in ``turned_on``.
    """
    import httpx

    base = settings.unleash_url.rstrip("/")
    if base.endswith("/api"):
        base = base[: -len("/api")]
    headers = {"Authorization": settings.unleash_admin_token or ""}
    result: dict[str, list[str]] = {"created": [], "existing": [], "archived": [], "turned_on": []}
    features = f"/api/admin/projects/{project}/features"
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=10) as http:
            for name, description in flags:
                resp = http.post(features, json={"name": name, "description": description, "type": "release"})
                if resp.status_code == 409:
                    archived = "archived" in resp.json().get("message", "")
                    result["archived" if archived else "existing"].append(name)
                    if archived or name not in keep_on:
                        continue
                else:
                    _check(resp)
                    result["created"].append(name)
                got = http.get(f"{features}/{name}")
                _check(got)
                for env in got.json().get("environments", []):
                    if not env.get("strategies"):
                        _check(http.post(f"{features}/{name}/environments/{env['name']}/strategies",
                                         json={"name": "flexibleRollout", "constraints": [],
                                               "parameters": feature(name)["strategies"][0]["parameters"]}))
                    if name in keep_on and not env.get("enabled"):
                        _check(http.post(f"{features}/{name}/environments/{env['name']}/on"))
                        if name not in result["turned_on"]:
                            result["turned_on"].append(name)
    except httpx.HTTPError as exc:
        raise SyncError(f"Unleash server {base} unreachable: {exc}") from exc
    return result


def _check(resp) -> None:
    if resp.status_code >= 400:
        try:
            message = resp.json().get("message", resp.text)
        except ValueError:
            message = resp.text
        raise SyncError(f"{resp.request.method} {resp.request.url.path}: {resp.status_code} {message}")
