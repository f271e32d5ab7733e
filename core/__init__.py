"""The My Hibachi core: bookings, customers, auth, events, plugins, flags, migrations, tasks.

Plugins import what they need from here: ``from myhibachi.core import hookimpl, Plugin``.
"""
__version__ = "0.1.0"

from myhibachi.core.plugins import Plugin, hookimpl  # noqa: E402

__all__ = ["Plugin", "hookimpl", "__version__"]
