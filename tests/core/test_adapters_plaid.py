"""The Plaid bank link adapter: the exact requests plaid-python makes, on a local stub
answering with Plaid's response shapes."""
from __future__ import annotations

import json

import pytest

from myhibachi.core.ports import PortError

ACCESS = "access-sandbox-5cd6e1b1-1b5b-459d-9284-366e2da89755"


@pytest.fixture
def bank(make_app, httpserver):
    return make_app(bank_adapter="plaid", plaid_client_id="client-123", plaid_secret="secret-456",
                    plaid_api_base=httpserver.url_for("").rstrip("/")).state.ctx.ports.bank


def sent(httpserver) -> tuple[dict, dict]:
    request = httpserver.log[-1][0]
    return request.headers, json.loads(request.get_data())


async def test_plaid_link_exchange_and_accounts(bank, httpserver):
    httpserver.expect_request("/link/token/create", method="POST").respond_with_json(
        {"link_token": "link-sandbox-af1a0311", "expiration": "2026-11-25T02:00:00Z", "request_id": "r1"})
    httpserver.expect_request("/item/public_token/exchange", method="POST").respond_with_json(
        {"access_token": ACCESS, "item_id": "M5eVJqLnv3tbzdngLDp9FL5OlDNxlNhlE55op", "request_id": "r2"})
    httpserver.expect_request("/accounts/get", method="POST").respond_with_json({
        "accounts": [{
            "account_id": "blgvvBlXw3cq5GMPwqB6s6q4dLKB9WcVqGDGo",
            "balances": {"available": 100, "current": 110.35, "limit": None, "iso_currency_code": "USD",
                         "unofficial_currency_code": None},
            "mask": "0000", "name": "Plaid Checking", "official_name": "Plaid Gold Standard 0% Interest Checking",
            "type": "depository", "subtype": "checking",
        }],
        "item": {"item_id": "M5eVJqLnv3tbzdngLDp9FL5OlDNxlNhlE55op", "webhook": "", "error": None,
                 "available_products": ["balance"], "billed_products": ["auth"], "consent_expiration_time": None,
                 "update_type": "background", "institution_id": "ins_109508"},
        "request_id": "r3",
    })

    link = await bank.create_link_token("customer-42")
    headers, body = sent(httpserver)
    assert (headers["PLAID-CLIENT-ID"], headers["PLAID-SECRET"]) == ("client-123", "secret-456")
    assert body == {"client_name": "My Hibachi", "language": "en", "country_codes": ["US"],
                    "user": {"client_user_id": "customer-42"}, "products": ["auth"]}
    assert link.link_token == "link-sandbox-af1a0311" and link.expiration.startswith("2026-11-25T02:00:00")

    item = await bank.exchange_public_token("public-sandbox-b0e2c4ee")
    assert sent(httpserver)[1] == {"public_token": "public-sandbox-b0e2c4ee"}
    assert (item.access_token, item.item_id) == (ACCESS, "M5eVJqLnv3tbzdngLDp9FL5OlDNxlNhlE55op")

    [account] = await bank.get_accounts(item.access_token)
    assert sent(httpserver)[1] == {"access_token": ACCESS}
    assert (account.account_id, account.name, account.mask, account.type, account.subtype) == \
        ("blgvvBlXw3cq5GMPwqB6s6q4dLKB9WcVqGDGo", "Plaid Checking", "0000", "depository", "checking")
    assert (account.balance_cents, account.currency) == (11035, "USD")


async def test_plaid_error_is_a_port_error_with_plaids_code(bank, httpserver):
    httpserver.expect_request("/accounts/get", method="POST").respond_with_json({
        "error_type": "INVALID_INPUT", "error_code": "INVALID_ACCESS_TOKEN",
        "error_message": "provided access token is in an invalid format", "display_message": None,
        "request_id": "r4"}, status=400)
    with pytest.raises(PortError) as refused:
        await bank.get_accounts("access-bad")
    assert (refused.value.code, refused.value.status) == ("INVALID_ACCESS_TOKEN", 400)
