"""Message templates through the HTTP API: versions, safe rendering, previews, and senders
using a template by key through the ``render_messages`` hook."""
from __future__ import annotations

import sqlalchemy as sa

from myhibachi.plugins.comm_templates import CommTemplatesPlugin
from myhibachi.plugins.comm_templates.models import comm_template_versions, comm_templates
from myhibachi.plugins.comms import CommsPlugin

BASE = "/v1/admin/templates"
FLAGS = {"FEATURE_FLAG_DIRECT_COMMUNICATIONS": True, "FEATURE_FLAG_COMMUNICATION_TEMPLATES": True}


def app_of(make_app, *extra, flags=None):
    return make_app([CommsPlugin(), CommTemplatesPlugin(), *extra], flags={**FLAGS, **(flags or {})})


async def stored(db, template_id):
    async with db.read() as conn:
        head = await conn.fetch_one(sa.select(comm_templates).where(comm_templates.c.id == template_id))
        versions = await conn.fetch_all(sa.select(comm_template_versions).where(
            comm_template_versions.c.template_id == template_id).order_by(comm_template_versions.c.version))
    return dict(head), [dict(v) for v in versions]


def problem_field(response) -> str:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return response.json()["errors"][0]["field"] if "errors" in response.json() else response.json().get("field")


async def test_template_management(make_app, client_of, seed):
    app = app_of(make_app)
    ctx = app.state.ctx
    staff = await seed.staff("templates.read", "templates.write")
    async with client_of(app, headers=staff) as c:
        sms = await c.post(BASE, json={"key": "reminders.24h", "channel": "sms",
                                       "text": "Hi {customer_name}, your chef arrives {booking_date} at {booking_time}."})
        assert sms.status_code == 201, sms.text
        sms = sms.json()
        assert (sms["version"], sms["language"], sms["variables"]) == \
            (1, "en", ["customer_name", "booking_date", "booking_time"])
        email = await c.post(BASE, json={
            "key": "reminders.24h", "channel": "email", "language": "es", "subject": "Hola {first_name}",
            "text": "Su evento es el {booking_date}.", "html": "<p>Hola <b>{customer_name}</b></p>"})
        assert email.status_code == 201, email.text
        email = email.json()

        # an unknown variable is refused at save time, naming the part and the variable; nothing is stored
        bad = await c.post(BASE, json={"key": "promo", "channel": "sms", "text": "Hi {customer_nme}"})
        assert bad.status_code == 422 and problem_field(bad) == "body.text"
        assert "{customer_nme}" in bad.text
        async with ctx.db.read() as conn:
            assert await conn.scalar(sa.select(sa.func.count()).select_from(comm_templates)) == 2
        # one live template per key, channel and language
        again = await c.post(BASE, json={"key": "reminders.24h", "channel": "sms", "text": "x"})
        assert again.status_code == 409, again.text
        no_subject = await c.post(BASE, json={"key": "x", "channel": "email", "text": "x"})
        assert no_subject.status_code == 422 and problem_field(no_subject) == "body.subject"

        # an edit is a new version; the old one is kept
        edited = await c.put(f"{BASE}/{sms['id']}", json={"text": "{first_name}, see you {booking_date}! 🎉"})
        assert edited.status_code == 200, edited.text
        assert (edited.json()["version"], edited.json()["variables"]) == (2, ["first_name", "booking_date"])
        bad_edit = await c.put(f"{BASE}/{sms['id']}", json={"text": "{booking_day}"})
        assert bad_edit.status_code == 422 and problem_field(bad_edit) == "body.text"
        head, versions = await stored(ctx.db, sms["id"])
        assert head["version"] == 2
        assert [(v["version"], v["text"]) for v in versions] == [
            (1, "Hi {customer_name}, your chef arrives {booking_date} at {booking_time}."),
            (2, "{first_name}, see you {booking_date}! 🎉")]

        listed = (await c.get(BASE, params={"channel": "sms"})).json()["items"]
        assert [(t["id"], t["version"]) for t in listed] == [(sms["id"], 2)]

        # preview with sample data, values given, and the SMS segment count
        preview = await c.post(f"{BASE}/{sms['id']}/preview", json={"values": {"first_name": "Bo"}})
        assert preview.status_code == 200, preview.text
        assert preview.json()["text"] == "Bo, see you Saturday, March 20, 2027! 🎉"
        assert (preview.json()["segments"], preview.json()["encoding"]) == (1, "UCS-2")
        old = (await c.post(f"{BASE}/{sms['id']}/preview", json={"version": 1})).json()
        assert (old["version"], old["encoding"], old["text"]) == \
            (1, "GSM-7", "Hi Ana Cook, your chef arrives Saturday, March 20, 2027 at 6:00 PM EDT.")
        long = await c.post(f"{BASE}/{sms['id']}/preview", json={"values": {"first_name": "x" * 200}})
        assert long.json()["segments"] == 4  # 200 + 35 UCS-2 units in parts of 67
        html = (await c.post(f"{BASE}/{email['id']}/preview",
                             json={"values": {"customer_name": "<script>alert(1)</script>"}})).json()
        assert html["html"] == "<p>Hola <b>&lt;script&gt;alert(1)&lt;/script&gt;</b></p>"
        assert (html["subject"], html["segments"]) == ("Hola Ana", None)
        unknown = await c.post(f"{BASE}/{sms['id']}/preview", json={"values": {"secret": "x"}})
        assert unknown.status_code == 422 and problem_field(unknown) == "body.values"

        # retired: gone from the API, its versions kept
        assert (await c.delete(f"{BASE}/{sms['id']}")).status_code == 204
        assert (await c.get(f"{BASE}/{sms['id']}")).status_code == 404
        assert (await c.delete(f"{BASE}/{sms['id']}")).status_code == 404
        assert [t["id"] for t in (await c.get(BASE)).json()["items"]] == [email["id"]]
        head, versions = await stored(ctx.db, sms["id"])
        assert head["deleted_at"] is not None and len(versions) == 2

    # staff without the permission are refused
    reader = await seed.staff("comms.read")
    async with client_of(app, headers=reader) as c:
        assert (await c.get(BASE)).status_code == 403


async def test_template_injection_refused(make_app, client_of, seed):
    """No placeholder reaches an attribute, an index, a conversion or code; values are never parsed."""
    app = app_of(make_app)
    staff = await seed.staff("templates.read", "templates.write")
    async with client_of(app, headers=staff) as c:
        for text in ("{customer_name.__class__.__mro__}", "{customer_name.__init__.__globals__}",
                     "{customer_name[0]}", "{0}", "{}", "{customer_name!r}", "{customer_name:>1000000}",
                     "{__import__}", "{ customer_name }", "{% for x in () %}", "oops {"):
            refused = await c.post(BASE, json={"key": "attack", "channel": "sms", "text": text})
            assert refused.status_code == 422, (text, refused.text)
            assert problem_field(refused) == "body.text"
        async with app.state.ctx.db.read() as conn:
            assert await conn.scalar(sa.select(sa.func.count()).select_from(comm_templates)) == 0

        # Jinja-looking text is literal text; a value that looks like a placeholder stays a value
        literal = await c.post(BASE, json={"key": "literal", "channel": "sms", "text": "{{7*7}} {{customer_name}} {first_name}"})
        assert literal.status_code == 201, literal.text
        out = (await c.post(f"{BASE}/{literal.json()['id']}/preview",
                            json={"values": {"first_name": "{customer_name.__class__}"}})).json()
        assert out["text"] == "{7*7} {customer_name} {customer_name.__class__}"
