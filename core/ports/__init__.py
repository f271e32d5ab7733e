"""Ports to the outside world; adapters are chosen by settings (see ``build``)."""
from __future__ import annotations

from typing import Any


class Ports:
    """The adapters of one application, built on first use."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self._adapters: dict[str, Any] = {}


def build(ctx) -> Ports:
    return Ports(ctx)
