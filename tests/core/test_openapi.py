"""The OpenAPI document a client team generates from: stable ``<tag>_<verb>`` operation ids,
declared security schemes on every operation, and declarations that match what the routes
enforce (an operation that says it needs a credential refuses an anonymous caller)."""
from __future__ import annotations

import re
import uuid

from myhibachi.core.plugins import discover


async def served(make_app, client_of) -> tuple[dict, object]:
    plugins = [load() for load in discover().values()]
    app = make_app(plugins, flags={p.flag: True for p in plugins if p.flag})
    async with client_of(app) as c:
        return (await c.get("/openapi.json")).json(), app


def operations(spec: dict):
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            yield path, method, op


async def test_operation_ids_are_unique_tag_and_verb(make_app, client_of):
    spec, _ = await served(make_app, client_of)
    ids = {}
    for path, method, op in operations(spec):
        tag = op["tags"][0].replace(" ", "_").lower()
        assert re.fullmatch(rf"{re.escape(tag)}_[a-z0-9_]+", op["operationId"]), (method, path, op["operationId"])
        assert op["operationId"] not in ids, (op["operationId"], (method, path), ids.get(op["operationId"]))
        ids[op["operationId"]] = (method, path)
    assert ids["bookings_create"] == ("post", "/v1/bookings")
    assert ids["bookings_get"] == ("get", "/v1/bookings/{booking_id}")
    assert ids["comms_sms_history"] == ("get", "/v1/communications/sms/history")
    assert ids["comms_email_history"] == ("get", "/v1/communications/email/history")


async def test_every_operation_declares_its_security(make_app, client_of):
    spec, _ = await served(make_app, client_of)
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["apiKey"]["in"] == "header" and schemes["apiKey"]["name"] == "Authorization"
    declared = {(method, path): op["security"] for path, method, op in operations(spec)}
    assert all(isinstance(s, list) for s in declared.values())
    assert declared[("get", "/healthz")] == []  # anonymous, said so explicitly
    assert declared[("post", "/v1/customers/login")] == []
    assert declared[("get", "/v1/customers/me")] == [{"bearer": []}]  # a customer's own: no API key
    assert declared[("post", "/v1/bookings")] == [{"bearer": []}, {"apiKey": []}]
    assert declared[("get", "/v1/admin/customers")] == [{"bearer": []}, {"apiKey": []}]
    # signing in is optional: a quote or the free slots for anyone, a signed-in caller's own otherwise
    assert declared[("post", "/v1/bookings/quote")] == [{}, {"bearer": []}, {"apiKey": []}]
    assert declared[("get", "/v1/availability")] == [{}, {"bearer": []}, {"apiKey": []}]


async def test_an_operation_that_declares_a_credential_refuses_an_anonymous_caller(make_app, client_of):
    """Broken on purpose once: with ``security_of`` answering [] for routes that require a
    permission, the admin routes were declared anonymous and this went red."""
    spec, app = await served(make_app, client_of)
    signed_in = [(method, path) for path, method, op in operations(spec) if op["security"] and {} not in op["security"]]
    assert len(signed_in) > 60
    async with client_of(app) as c:
        for method, path in signed_in:
            url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
            answer = await c.request(method.upper(), url, json={})
            assert answer.status_code == 401, (method, path, answer.status_code, answer.text)


async def test_a_created_resource_says_where_it_is_read(make_app, client_of, customer):
    """A 201 carries ``Location`` when the thing made is read at the path plus its id, and the
    document declares the header there (and only there)."""
    from tests.core.conftest import booking_body, local_start

    spec, _ = await served(make_app, client_of)
    app = make_app([])
    created = spec["paths"]["/v1/bookings"]["post"]["responses"]["201"]
    assert created["headers"]["Location"]["schema"] == {"type": "string"}
    assert "headers" not in spec["paths"]["/v1/bookings/{booking_id}/reminders"]["post"]["responses"]["201"]
    async with client_of(app, headers=(await customer()).headers) as c:
        made = await c.post("/v1/bookings", json=booking_body(starts_at=local_start(9)))
        assert made.status_code == 201, made.text
        assert made.headers["location"] == f"/v1/bookings/{made.json()['id']}"
        read = await c.get(made.headers["location"])
        assert read.status_code == 200 and read.json()["id"] == made.json()["id"]
        refused = await c.post("/v1/bookings", json=booking_body(adults=0))
        assert refused.status_code == 422 and "location" not in refused.headers


def _schema(spec: dict, ref_or_schema: dict) -> dict:
    while "$ref" in ref_or_schema:
        ref_or_schema = spec["components"]["schemas"][ref_or_schema["$ref"].rsplit("/", 1)[1]]
    return ref_or_schema


async def test_every_list_is_one_page_shape_with_one_limit(make_app, client_of):
    """Every list answers ``{items, next_cursor}`` (``next_cursor`` always present, null on the
    last page) and takes ``limit`` with one default and maximum and an opaque ``cursor``; no
    operation answers a bare array. Broken on purpose: the refunds of a deposit as a bare
    array (red); a plugin's ``limit`` of 20 (red)."""
    spec, _ = await served(make_app, client_of)
    pages = 0
    for path, method, op in operations(spec):
        for status, answer in op["responses"].items():
            if not status.startswith("2"):
                continue
            for content in answer.get("content", {}).values():
                schema = _schema(spec, content.get("schema", {}))
                assert schema.get("type") != "array", (method, path, "answers a bare array")
                if "items" in schema.get("properties", {}):
                    pages += 1
                    assert set(schema["properties"]) >= {"items", "next_cursor"}, (method, path)
                    assert {"items", "next_cursor"} <= set(schema.get("required", [])), (method, path, schema)
        params = {p["name"]: p for p in op.get("parameters", [])}
        if "limit" in params:
            limit = params["limit"]["schema"]
            assert (limit.get("default"), limit.get("maximum"), limit.get("minimum")) == (50, 200, 1), (method, path)
            assert "cursor" in params, (method, path, "pages without a cursor")
    assert pages > 20
