"""A client generated from the served OpenAPI document (openapi-python-client, as an API
consumer would run it) types the plugins' fields: ``locations.location_id`` is a UUID
attribute of the booking create request and of the booking view, and the generated client
books at a location and reads the location back from the running app."""
from __future__ import annotations

import importlib
import json
import subprocess
import sys
import typing
import uuid
from datetime import datetime

from myhibachi.core.plugins import discover
from tests.core.conftest import booking_body, local_start

PACKAGE = "hibachi_generated_client"


def generate(doc: dict, tmp_path) -> None:
    """Generate the client package into ``tmp_path``, as its CLI does."""
    (tmp_path / "openapi.json").write_text(json.dumps(doc))
    (tmp_path / "config.yaml").write_text(f"package_name_override: {PACKAGE}\npost_hooks: []\n")
    done = subprocess.run([sys.executable, "-m", "openapi_python_client", "generate", "--path", "openapi.json",
                           "--output-path", PACKAGE, "--meta", "none", "--config", "config.yaml"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warning" not in done.stdout.lower(), done.stdout  # a schema it could not read is left out


def members(hint) -> set:
    """The types a field's annotation allows (``LocationChoice | None | Unset`` -> its three)."""
    return set(typing.get_args(hint)) or {hint}


async def test_generated_client_types_location_id(make_app, client_of, customer, staff, tmp_path, monkeypatch):
    plugins = [load() for load in discover().values()]
    app = make_app(plugins, flags={p.flag: True for p in plugins if p.flag})
    async with client_of(app) as c:
        doc = (await c.get("/openapi.json")).json()

    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        generate(doc, tmp_path)
        models = importlib.import_module(f"{PACKAGE}.models")
        create = importlib.import_module(f"{PACKAGE}.api.bookings.bookings_create")
        view = importlib.import_module(f"{PACKAGE}.api.bookings.bookings_get")
        client_module = importlib.import_module(f"{PACKAGE}.client")

        def hints(model) -> dict:
            return typing.get_type_hints(model, localns=vars(models))  # models import each other lazily

        # the plugin's field is a model of its own with a UUID attribute, not a free-form dict
        for outer in (models.BookingCreate, models.Booking):
            inner = [m for m in members(hints(outer)["locations"]) if isinstance(m, type) and hasattr(m, "to_dict")]
            assert len(inner) == 1, (outer, hints(outer)["locations"])
            assert uuid.UUID in members(hints(inner[0])["location_id"]), (inner[0], hints(inner[0]))
        assert "extra" not in hints(models.BookingCreate)

        admin = await staff(["locations.*"])
        async with client_of(app, headers=admin) as c:
            made = await c.post("/v1/locations", json={
                "name": "Astoria", "address": "1 Grill Ave", "city": "New York", "state": "NY", "zip_code": "11102",
                "time_zone": "America/New_York", "capacity": 30, "service_area": {"zip_codes": ["11102"]}})
        assert made.status_code == 201, made.text
        location = uuid.UUID(made.json()["id"])

        body = booking_body(zip_code="11102", starts_at=local_start(9))
        async with client_of(app, headers=(await customer()).headers) as http:
            client = client_module.Client(base_url="http://test").set_async_httpx_client(http)
            booked = await create.asyncio_detailed(client=client, body=models.BookingCreate(
                starts_at=datetime.fromisoformat(body["starts_at"]), time_zone=body["time_zone"], adults=body["adults"],
                address=body["address"], zip_code=body["zip_code"],
                locations=models.LocationChoice(location_id=location)))
            assert booked.status_code == 201, booked.content
            got = await view.asyncio(booking_id=booked.parsed.id, client=client)
    finally:
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]
    assert isinstance(got, models.Booking), got
    assert got.locations.location_id == booked.parsed.locations.location_id == location
