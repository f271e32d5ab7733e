"""The production kit in deploy/ parses and says what the operations guide says: an image
built from a multi-stage Dockerfile, run as a non-root user through the `myhibachi` entry
point; compose with PostgreSQL + pgvector, Redis, Unleash 8, the migration, two APIs and two
workers; Kubernetes Deployments probed on /healthz and /readyz and a migration Job; systemd
units. Secrets come from files (*_FILE) everywhere. No daemon is needed for any of it."""
from __future__ import annotations

import configparser
from pathlib import Path

import dockerfile
import yaml

from myhibachi.core.cli import app as cli

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
                "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}
COMMANDS = {c.name or c.callback.__name__.replace("_", "-") for c in cli.registered_commands} | {
    g.name for g in cli.registered_groups}


def myhibachi_command(args: list[str]) -> None:
    assert args and args[0] in COMMANDS, f"not a myhibachi command: {args}"


def test_the_image_is_multi_stage_non_root_on_the_myhibachi_entry_point():
    commands = dockerfile.parse_file(str(DEPLOY / "Dockerfile"))
    assert {c.cmd for c in commands} <= INSTRUCTIONS
    stages = [c for c in commands if c.cmd == "FROM"]
    assert commands[0].cmd == "FROM" and len(stages) >= 2
    names = {c.value[2] for c in stages if len(c.value) == 3 and c.value[1].upper() == "AS"}
    for copy in (c for c in commands if c.cmd == "COPY"):
        source = next((f.split("=", 1)[1] for f in copy.flags if f.startswith("--from=")), None)
        assert source is None or source in names, copy.original
        if source is None:  # from the build context (the repository root): the path exists
            assert all((DEPLOY.parent / p).exists() for p in copy.value[:-1]), copy.original
    final = commands[commands.index(stages[-1]):]
    [user] = [c.value[0] for c in final if c.cmd == "USER"]
    assert user.split(":")[0] not in {"0", "root"}
    [entry] = [c for c in final if c.cmd == "ENTRYPOINT"]
    assert entry.json and entry.value == ("myhibachi",)
    [cmd] = [c for c in final if c.cmd == "CMD"]
    myhibachi_command(list(cmd.value))


def test_compose_runs_the_stack_with_two_apis_and_two_workers():
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = doc["services"]
    assert services["postgres"]["image"].startswith("pgvector/pgvector:")
    assert services["redis"]["image"].startswith("redis:")
    assert services["unleash"]["image"].startswith("unleashorg/unleash-server:8")
    apis = [s for s in services.values() if s.get("command", [None])[0] == "serve"]
    workers = [s for s in services.values() if s.get("command") == ["worker"]]
    assert len(apis) == 2 and len(workers) == 2
    assert services["migrate"]["command"] == ["db", "upgrade"]
    for service in [*apis, *workers, services["migrate"]]:
        myhibachi_command(service["command"])
        env = service["environment"]
        assert "MYHIBACHI_SECRET_KEY" not in env and "DATABASE_URL" not in env  # files, not values
        for var in ("MYHIBACHI_SECRET_KEY_FILE", "DATABASE_URL_FILE"):
            assert Path(env[var]).name in service["secrets"]
        assert set(service["secrets"]) <= set(doc["secrets"])
    for api in apis:
        assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert (DEPLOY / "compose" / "initdb.sql").exists()


def test_kubernetes_deployments_probe_health_and_a_job_migrates():
    docs = [d for f in sorted((DEPLOY / "k8s").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    kinds = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    config = kinds[("ConfigMap", "myhibachi")]["data"]
    assert config["MYHIBACHI_SECRET_KEY_FILE"].startswith("/run/secrets/myhibachi/")
    api = kinds[("Deployment", "myhibachi-api")]["spec"]["template"]["spec"]
    worker = kinds[("Deployment", "myhibachi-worker")]["spec"]["template"]["spec"]
    job = kinds[("Job", "myhibachi-migrate")]["spec"]["template"]["spec"]
    [api_c], [worker_c], [job_c] = api["containers"], worker["containers"], job["containers"]
    assert api_c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api_c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert worker_c["args"] == ["worker"] and job_c["args"] == ["db", "upgrade"]
    for spec, container in ((api, api_c), (worker, worker_c), (job, job_c)):
        myhibachi_command(container["args"])
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert container["envFrom"] == [{"configMapRef": {"name": "myhibachi"}}]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts["secrets"] == "/run/secrets/myhibachi"
        assert {"name": "secrets", "secret": {"secretName": "myhibachi"}} in spec["volumes"]
    selector = kinds[("Service", "myhibachi-api")]["spec"]["selector"]
    assert selector.items() <= kinds[("Deployment", "myhibachi-api")]["spec"]["template"]["metadata"]["labels"].items()


def test_systemd_units_run_the_entry_point_with_credentials():
    units = {}
    for path in (DEPLOY / "systemd").glob("*.service"):
        unit = configparser.ConfigParser(strict=False, interpolation=None)
        unit.optionxform = str
        unit.read_string(path.read_text())
        units[path.name] = unit
    assert set(units) == {"myhibachi-api.service", "myhibachi-worker@.service", "myhibachi-migrate.service"}
    for name, unit in units.items():
        service = unit["Service"]
        exe, *args = service["ExecStart"].split()
        assert exe.endswith("/myhibachi"), name
        myhibachi_command(args)
        assert service["User"] == "myhibachi" and "DATABASE_URL_FILE=%d/database_url" in service["Environment"]
    assert units["myhibachi-api.service"]["Service"]["ExecStart"].split()[1] == "serve"


def test_only_the_migration_gets_the_owner_url():
    """Every kit's migration runs as the tables' owner (MYHIBACHI_DATABASE_OWNER_URL from a
    file) while the API and the workers know only DATABASE_URL, the app's role."""
    owner = "MYHIBACHI_DATABASE_OWNER_URL_FILE"
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    assert Path(services["migrate"]["environment"][owner]).name in services["migrate"]["secrets"]
    for name in ("api1", "api2", "worker1", "worker2"):
        assert owner not in services[name]["environment"] and "database_owner_url" not in services[name]["secrets"]
    assert "myhibachi_app" in (DEPLOY / "compose" / "app-role.sh").read_text()

    docs = [d for f in sorted((DEPLOY / "k8s").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    kinds = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    assert owner not in kinds[("ConfigMap", "myhibachi")]["data"]
    job = kinds[("Job", "myhibachi-migrate")]["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in job["containers"][0]["env"]}
    mounts = {m["mountPath"] for m in job["containers"][0]["volumeMounts"]}
    assert str(Path(env[owner]).parent) in mounts
    for name in ("myhibachi-api", "myhibachi-worker"):
        spec = kinds[("Deployment", name)]["spec"]["template"]["spec"]
        assert "myhibachi-owner" not in str(spec)

    units = {p.name: p.read_text() for p in (DEPLOY / "systemd").glob("*.service")}
    assert f"{owner}=%d/database_owner_url" in units["myhibachi-migrate.service"]
    assert "database_owner_url" in units["myhibachi-migrate.service"]
    for name in ("myhibachi-api.service", "myhibachi-worker@.service"):
        assert "OWNER_URL" not in units[name] and "database_owner_url" not in units[name]
