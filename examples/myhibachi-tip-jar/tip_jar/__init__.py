"""Tip jar: after a booking the customer may leave a tip for the chef.

An example of a third-party plugin: its own distribution (``myhibachi-tip-jar``), its own
package (``tip_jar``), found by the core through the ``myhibachi.plugins`` entry point.
"""
from pydantic import BaseModel, Field

from myhibachi.core import Plugin, hookimpl


class TipJarSettings(BaseModel):
    """Read from ``MYHIBACHI_TIP_JAR_*``."""

    max_tip_cents: int = Field(default=100_000, ge=1, description="Largest tip accepted, in cents.")


class TipJarPlugin(Plugin):
    name = "tip_jar"
    version = "0.1.0"
    flag = "FEATURE_FLAG_TIP_JAR"
    description = "Customers leave a tip for the chef after their booking."
    features: dict[str, list[str]] = {}
    requires: tuple[str, ...] = ()
    core = ">=0.1,<1"
    settings = TipJarSettings

    @hookimpl
    def register_event_handlers(self):
        from tip_jar import service

        return service.HANDLERS


plugin = TipJarPlugin()
