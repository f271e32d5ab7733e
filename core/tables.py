"""The core tables a plugin may read, join and point its foreign keys at (it never alters them).

``from myhibachi.core import tables``, then ``tables.bookings.c.id``: the tables live under
this namespace because ``myhibachi.core.bookings`` and ``myhibachi.core.customers`` are the
core's modules of the same names.
"""
from __future__ import annotations

from myhibachi.core.models import bookings, customers

__all__ = ["bookings", "customers"]
