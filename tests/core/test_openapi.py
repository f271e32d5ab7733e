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


# One Idempotency-Key rule: required where the call itself charges, refunds or sends (or starts a
# job that does); optional where it creates a record (a retry then answers the first response).
KEY_REQUIRED = {
    "deposits_create", "deposits_balance", "deposits_refund", "disputes_bulk_start", "disputes_reconcile_start",
    "comms_send_sms", "comms_send_email", "campaigns_schedule", "campaigns_create_ab_test", "loyalty_redeem",
    "ml_ops_fine_tune_model", "group_reservations_pay",
}
# POSTs that take no key, each with its reason: they make nothing a retry could make twice.
NO_KEY = {
    "auth_refresh": "a session's token: a retry is a new token of the same session",
    "auth_logout": "ends the caller's session: ending it again changes nothing",
    "admin_rbac_login": "signs in: a stored replay would keep a live token in the key table",
    "admin_rbac_refresh": "a session's token: a retry is a new token of the same session",
    "admin_rbac_logout": "ends the caller's session: ending it again changes nothing",
    "customers_login": "signs in: a stored replay would keep a live token in the key table",
    "customers_signup": "emails a code and stores nothing: a retry sends another code for the same account",
    "customers_confirm_signup": "signs in too (tokens in the answer); the email is unique, a retry answers 409",
    "customers_confirm_email": "moves the account to the code's address: a retry leaves it there",
    "admin_rbac_create_user": "the email is unique: a retry answers 409 and makes no second user",
    "admin_rbac_create_role": "the name is unique: a retry answers 409 and makes no second role",
    "comm_templates_create": "the live key, channel and language are unique: a retry answers 409",
    "campaigns_decide_ab_test": "decides once (the remainder sent once): a decided test answers 409",
    "comm_templates_preview": "renders, stores nothing",
    "contact_lists_add": "adds members to a set: adding them again changes nothing",
    "contact_lists_opt_out": "sets a channel's opt-out: setting it again changes nothing",
    "customer_merge_merge": "the duplicate is gone after the first merge: a retry answers 404 or 409",
    "disputes_respond": "a dispute answered once answers 409 after (the provider takes one answer)",
    "events_replay": "requeues only dead deliveries: a retry finds none",
    "api_keys_create": "answers a secret once: a stored replay would keep a live key in the key table",
    "api_keys_revoke": "revoking again keeps the first revocation time",
    "bookings_quote": "prices, stores nothing",
    "group_reservations_cancel": "a state change of a group's stations: a retry finds them cancelled (409)",
    "embeddings_search": "reads, stores nothing",
    "embeddings_cluster": "a snapshot of the stored texts' groups: another run changes nothing else",
    "tip_jar_give": "sets the booking's one tip (an update): the same request again leaves the same row",
    "voice_ai_answer": "the provider's signed webhook: a retry of the same call is found by its call id",
    "voice_ai_ivr": "the provider's signed webhook: one step of the call found by its call id",
    "voice_ai_transcribe": "the same clip posted again answers the utterance stored the first time",
    "webhooks_receive": "the provider's signed event: deduplicated on the provider's event id",
}


async def test_every_post_that_makes_moves_money_or_sends_takes_an_idempotency_key(make_app, client_of, customer):
    """Every POST declares the ``Idempotency-Key`` header unless ``NO_KEY`` says why not; it is
    required exactly on ``KEY_REQUIRED`` (deposits and the balance among them, where a missing
    key is a 422 naming ``header.Idempotency-Key``) and optional everywhere else (bookings,
    waitlist, groups, reports, a voice transfer). Broken on purpose: ``@idempotent`` taken off
    the reminders route (red: it declared no key and had no reason); the balance's key made
    optional (red)."""
    from myhibachi.core.idempotency import HEADER

    spec, app = await served(make_app, client_of)
    declared = {}
    for path, method, op in operations(spec):
        if method != "post":
            continue
        header = [p for p in op.get("parameters", []) if p["in"] == "header" and p["name"] == HEADER]
        declared[op["operationId"]] = ("required" if header[0].get("required") else "optional") if header else None
    missing = sorted(name for name, how in declared.items() if how is None and name not in NO_KEY)
    assert missing == [], f"POSTs without an {HEADER} and no reason in NO_KEY: {missing}"
    assert sorted(name for name in NO_KEY if declared.get(name) is not None) == []  # an exception gone stale
    assert sorted(name for name in NO_KEY if name not in declared) == []
    assert sorted(name for name, how in declared.items() if how == "required") == sorted(KEY_REQUIRED)
    for name in ("bookings_create", "waitlist_join", "waitlist_convert", "group_reservations_create",
                 "payment_history_generate", "voice_ai_transfer", "reminders_create", "recurring_create"):
        assert declared[name] == "optional", name

    async with client_of(app, headers=(await customer()).headers) as c:
        for path, body in (("/v1/payments/deposits", {}), ("/v1/payments/balance", {"payment_method": "pm_card_visa"})):
            refused = await c.post(path, json={"booking_id": str(uuid.uuid4()), **body})
            assert refused.status_code == 422, (path, refused.text)
            assert [e["field"] for e in refused.json()["errors"]] == [f"header.{HEADER}"], (path, refused.text)
