"""Twilio SMS and voice adapters: the exact requests the SDK makes, checked on a local stub."""
from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qs, urlencode

import pytest

from myhibachi.core.ports import InvalidSignature, PortError

SID, TOKEN = "AC" + "0" * 32, "twilio-test-token"
BASIC = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()


def twilio_settings(httpserver, **kw) -> dict:
    return {"sms_adapter": "twilio", "telephony_adapter": "twilio", "twilio_account_sid": SID,
            "twilio_auth_token": TOKEN, "twilio_from_number": "+15550009999",
            "twilio_api_base": httpserver.url_for("/"), **kw}


def form(request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.get_data(as_text=True)).items()}


async def test_twilio_sms_send(make_app, httpserver):
    httpserver.expect_request(f"/2010-04-01/Accounts/{SID}/Messages.json", method="POST").respond_with_json(
        {"sid": "SM" + "1" * 32, "status": "queued", "to": "+15551230000", "from": "+15550009999",
         "body": "Your chef arrives at 6pm", "account_sid": SID}, status=201)
    sms = make_app(**twilio_settings(httpserver)).state.ctx.ports.sms
    sent = await sms.send("+15551230000", "Your chef arrives at 6pm", status_callback="https://h.example/v1/sms/cb")
    request = httpserver.log[-1][0]
    assert request.headers["Authorization"] == BASIC
    assert form(request) == {"To": "+15551230000", "From": "+15550009999", "Body": "Your chef arrives at 6pm",
                             "StatusCallback": "https://h.example/v1/sms/cb"}
    assert (sent.id, sent.status, sent.to) == ("SM" + "1" * 32, "queued", "+15551230000")


async def test_twilio_sms_refusal_is_a_port_error(make_app, httpserver):
    httpserver.expect_request(f"/2010-04-01/Accounts/{SID}/Messages.json", method="POST").respond_with_json(
        {"code": 21211, "message": "The 'To' number is not a valid phone number.", "status": 400}, status=400)
    sms = make_app(**twilio_settings(httpserver)).state.ctx.ports.sms
    with pytest.raises(PortError) as refused:
        await sms.send("+1555", "hi")
    assert (refused.value.code, refused.value.status) == ("21211", 400)


async def test_twilio_voice_twiml_and_transfer(make_app, httpserver):
    call = "CA" + "2" * 32
    httpserver.expect_request(f"/2010-04-01/Accounts/{SID}/Calls/{call}.json", method="POST").respond_with_json(
        {"sid": call, "status": "in-progress", "account_sid": SID})
    phone = make_app(**twilio_settings(httpserver)).state.ctx.ports.telephony
    assert phone.say("Welcome to My Hibachi", gather_action="/v1/voice/next") == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Gather action="/v1/voice/next" input="speech" '
        'method="POST"><Say>Welcome to My Hibachi</Say></Gather></Response>')
    info = await phone.transfer(call, "+15558880000")
    request = httpserver.log[-1][0]
    assert request.headers["Authorization"] == BASIC
    assert form(request) == {"Twiml": '<?xml version="1.0" encoding="UTF-8"?><Response><Dial>+15558880000</Dial>'
                                      '</Response>'}
    assert (info.sid, info.status) == (call, "in-progress")


async def test_twilio_webhook_signature(make_app, httpserver):
    sms = make_app(**twilio_settings(httpserver)).state.ctx.ports.sms
    url = "https://hibachi.example/v1/sms/status"
    params = {"MessageSid": "SM1", "MessageStatus": "delivered", "To": "+15551230000"}
    data = url + "".join(k + params[k] for k in sorted(params))
    signature = base64.b64encode(hmac.new(TOKEN.encode(), data.encode(), hashlib.sha1).digest()).decode()
    body = urlencode(params).encode()
    [event] = await sms.verify_webhook({"X-Twilio-Signature": signature}, body, url)
    assert (event.id, event.topic) == ("SM1:delivered", "status")
    for headers, form in (({"X-Twilio-Signature": signature}, body.replace(b"delivered", b"failed")), ({}, body)):
        with pytest.raises(InvalidSignature):
            await sms.verify_webhook(headers, form, url)


async def test_twilio_and_offline_menu_twiml_listen_for_keys_and_speech(make_app, httpserver):
    """The IVR menu's TwiML (telephony port ``menu``): one Gather of a key or speech, posting
    empty after the timeout; the offline adapter writes the same element as the SDK."""
    from xml.etree import ElementTree as ET

    twilio = make_app(**twilio_settings(httpserver)).state.ctx.ports.telephony
    offline = make_app().state.ctx.ports.telephony
    gathers = []
    for phone in (twilio, offline):
        twiml = phone.menu("Press 1 to book", action="https://h.example/v1/ai/voice/ivr", digits=1, timeout=7)
        [gather] = ET.fromstring(twiml.removeprefix('<?xml version="1.0" encoding="UTF-8"?>'))
        gathers.append((gather.tag, gather.attrib, [(e.tag, e.text) for e in gather]))
    assert gathers[0] == gathers[1] == ("Gather", {
        "action": "https://h.example/v1/ai/voice/ivr", "method": "POST", "input": "dtmf speech", "numDigits": "1",
        "timeout": "7", "actionOnEmptyResult": "true"}, [("Say", "Press 1 to book")])
