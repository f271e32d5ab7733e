"""Bank link on Plaid (the official ``plaid-python`` SDK, synchronous: calls run in a thread)."""
from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import plaid
from plaid.api import plaid_api
from plaid.model.accounts_get_request import AccountsGetRequest
from plaid.model.country_code import CountryCode
from plaid.model.item_public_token_exchange_request import ItemPublicTokenExchangeRequest
from plaid.model.link_token_create_request import LinkTokenCreateRequest
from plaid.model.link_token_create_request_user import LinkTokenCreateRequestUser
from plaid.model.products import Products

from myhibachi.core.ports import inbound
from myhibachi.core.ports.base import BankAccount, BankItem, InvalidSignature, LinkToken, PortError


def _cents(amount) -> int | None:
    return None if amount is None else int((Decimal(str(amount)) * 100).to_integral_value())


class PlaidBankLink:
    def __init__(self, ctx) -> None:
        settings = ctx.settings
        if not (settings.plaid_client_id and settings.plaid_secret):
            raise PortError("MYHIBACHI_PLAID_CLIENT_ID and MYHIBACHI_PLAID_SECRET are not set", code="not_configured")
        config = plaid.Configuration(host=settings.plaid_api_base,
                                     api_key={"clientId": settings.plaid_client_id, "secret": settings.plaid_secret})
        self.api = plaid_api.PlaidApi(plaid.ApiClient(config))
        self.tolerance = settings.webhook_tolerance_seconds
        self._keys: dict[str, object] = {}  # Plaid's webhook verification keys by id; they rotate rarely

    async def _call(self, fn, request):
        try:
            return await asyncio.to_thread(fn, request)
        except plaid.ApiException as exc:
            try:
                code = json.loads(exc.body).get("error_code")
            except (TypeError, ValueError):
                code = None
            raise PortError(f"Plaid refused {fn.__name__}: {code or exc.reason}", code=code,
                            status=exc.status) from exc

    async def create_link_token(self, user_id):
        request = LinkTokenCreateRequest(
            user=LinkTokenCreateRequestUser(client_user_id=user_id), client_name="My Hibachi",
            products=[Products("auth")], country_codes=[CountryCode("US")], language="en",
        )
        response = await self._call(self.api.link_token_create, request)
        return LinkToken(link_token=response.link_token, expiration=response.expiration.isoformat())

    async def exchange_public_token(self, public_token):
        response = await self._call(self.api.item_public_token_exchange,
                                    ItemPublicTokenExchangeRequest(public_token=public_token))
        return BankItem(access_token=response.access_token, item_id=response.item_id)

    async def get_accounts(self, access_token):
        response = await self._call(self.api.accounts_get, AccountsGetRequest(access_token=access_token))
        accounts = []
        for a in response.accounts:
            balances = a.balances
            accounts.append(BankAccount(
                account_id=a.account_id, name=a.name, mask=a.get("mask"), type=str(a.type),
                subtype=str(a.subtype) if a.get("subtype") is not None else None,
                balance_cents=_cents(balances.get("current")), currency=balances.get("iso_currency_code"),
            ))
        return accounts

    async def verify_webhook(self, headers, body, url):
        import jwt
        from plaid.model.webhook_verification_key_get_request import WebhookVerificationKeyGetRequest

        token = headers.get(inbound.PLAID_VERIFICATION) or ""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidSignature(f"bad Plaid-Verification token: {exc}") from exc
        if header.get("alg") != "ES256" or not isinstance(header.get("kid"), str):
            raise InvalidSignature("the Plaid-Verification token is not ES256 with a key id")
        key = self._keys.get(header["kid"])
        if key is None:
            try:
                found = await self._call(self.api.webhook_verification_key_get,
                                         WebhookVerificationKeyGetRequest(key_id=header["kid"]))
            except PortError as exc:
                raise InvalidSignature(f"no Plaid verification key {header['kid']}: {exc}") from exc
            key = self._keys[header["kid"]] = jwt.algorithms.ECAlgorithm.from_jwk(json.dumps(found.key.to_dict()))
        inbound.plaid_claims(token, key, "ES256", body, self.tolerance)
        return inbound.plaid_events(body)
