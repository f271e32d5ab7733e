"""tip_jar: the scaffold's routes, behind the flag FEATURE_FLAG_TIP_JAR and the tip_jar.* permissions."""
from myhibachi.core.auth import create_api_key
from tip_jar import plugin


async def test_tip_jar_items_created_and_listed_behind_flag(make_app, client_of, settings):
    app = make_app([plugin], flags={"FEATURE_FLAG_TIP_JAR": True})
    async with app.state.ctx.db.begin() as conn:
        key, _ = await create_api_key(conn, settings, name="test", scopes=["tip_jar.read", "tip_jar.write"])
    headers = {"Authorization": f"Bearer {key}"}
    async with client_of(app, headers=headers) as c:
        created = await c.post("/v1/tip-jar/items", json={"label": "first"})
        listed = await c.get("/v1/tip-jar/items")
        empty = await c.post("/v1/tip-jar/items", json={"label": ""})
    assert created.status_code == 201, created.text
    assert [i["label"] for i in listed.json()] == ["first"]
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "label"

    off = make_app([plugin], flags={"FEATURE_FLAG_TIP_JAR": False})
    async with client_of(off, headers=headers) as c:
        gated = await c.get("/v1/tip-jar/items")
    assert gated.status_code == 404 and gated.json()["flag"] == "FEATURE_FLAG_TIP_JAR"
