"""Tip jar: the tip jar plugin."""
from myhibachi.core import Plugin, hookimpl


class TipJarPlugin(Plugin):
    name = "tip_jar"
    version = "0.1.0"
    flag = "FEATURE_FLAG_TIP_JAR"
    description = "the tip jar plugin."
    features: dict[str, list[str]] = {}
    requires: tuple[str, ...] = ()
    core = ">=0.1"
    permissions = ("tip_jar.read", "tip_jar.write")

    @hookimpl
    def register_routes(self, router, ctx):
        from tip_jar.routes import setup

        setup(router)

    @hookimpl
    def register_tasks(self, huey, ctx):
        from tip_jar.tasks import setup

        setup(huey, ctx)

    @hookimpl
    def register_event_handlers(self):
        from tip_jar import service

        return service.HANDLERS


plugin = TipJarPlugin()
