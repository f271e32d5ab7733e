"""Payment history and revenue reports (roadmap 5.2).

A ledger of money movements fed only by the payment events deposits publishes
(``payment.succeeded`` a charge and the provider's fee on it, ``payment.refunded`` a refund),
keyed by the event, so a redelivered event is written once and no request re-reads the
provider. The customer sees their own charges and refunds, staff every row; daily and monthly reports sum the ledger in SQL by the
business's local day (``default_time_zone`` unless the request names one), and by location
on request: each row keeps its booking's location (the locations plugin's booking field). A
custom report is a worker job (``reports.py``) that stores its rows, CSV and PDF for download.
"""
from __future__ import annotations

from myhibachi.core import PaymentLedger, Plugin, hookimpl


def ledger(ctx) -> PaymentLedger:
    from myhibachi.plugins.payment_history.service import Ledger

    return Ledger()


class PaymentHistoryPlugin(Plugin):
    name = "payment_history"
    version = "1.0.0"
    flag = "FEATURE_FLAG_PAYMENT_HISTORY"
    description = "A payments ledger from payment events; customer and admin history; daily and monthly reports."
    features = {"5.2": ["test_payment_history", "test_payment_report_generation"]}
    requires = ("deposits",)
    permissions = ("payments.read",)
    services = {PaymentLedger: ledger}

    @hookimpl
    def register_event_handlers(self) -> dict[str, list]:
        from myhibachi.plugins.payment_history import service

        return {"payment.succeeded": [service.on_charge], "payment.refunded": [service.on_refund]}


plugin = PaymentHistoryPlugin()
