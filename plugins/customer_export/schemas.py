"""The customer export API's parameters."""
from __future__ import annotations

from typing import Literal

# json: the complete machine-readable record; csv: a zip with a file per section; pdf: for a person.
Format = Literal["json", "csv", "pdf"]
