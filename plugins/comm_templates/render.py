"""Safe rendering: a template is text with ``{name}`` placeholders and nothing else.

There is no expression language to escape from: a placeholder is a bare name out of
:data:`VARIABLES`, so ``{customer.__class__}``, ``{0}``, ``{name!r}`` or ``{name:>99999}``
are refused when the template is saved, and values are inserted as text (HTML-escaped in
the HTML part), never parsed again.
"""
from __future__ import annotations

from string import Formatter
from typing import Any

from html import escape

from myhibachi.core import invalid

VARIABLES = {
    "customer_name": "Ana Cook", "first_name": "Ana", "booking_date": "Saturday, March 20, 2027",
    "booking_time": "6:00 PM EDT", "party_size": "12", "address": "1 Main St, Springfield",
    "location_name": "Springfield", "loyalty_balance": "250", "next_booking_date": "Saturday, March 20, 2027",
    "unsubscribe_url": "https://example.com/u/sample",
}
_parse = Formatter().parse


def variables_of(text: str | None, field: str) -> list[str]:
    """The variables ``text`` uses, in order; a 422 naming ``field`` and the variable otherwise."""
    if text is None:
        return []
    found = []
    try:
        parts = list(_parse(text))
    except ValueError:
        raise invalid(field, "has an unmatched { or }; write {{ or }} for a literal brace") from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in VARIABLES:
            raise invalid(field, f"unknown variable {{{name}}}; known: {', '.join(sorted(VARIABLES))}")
        if spec or conversion:
            raise invalid(field, f"{{{name}}} takes no format or conversion")
        found.append(name)
    return found


def render(text: str | None, values: dict[str, Any], *, html: bool = False) -> str | None:
    """``text`` with each placeholder replaced by its value ('' when missing)."""
    if text is None:
        return None
    out = []
    for literal, name, _, _ in _parse(text):
        out.append(literal)
        if name is not None:
            value = "" if values.get(name) is None else str(values[name])
            out.append(escape(value) if html else value)
    return "".join(out)
