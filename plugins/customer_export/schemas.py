"""The customer export API's parameters and answers."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# json: the complete machine-readable record; csv: a zip with a file per section; pdf: for a person.
Format = Literal["json", "csv", "pdf"]


class BulkExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # json: JSON Lines (a record per customer), gzip; csv: a zip with a file per section.
    format: Literal["json", "csv"] = "json"
    customer_ids: list[uuid.UUID] | None = Field(default=None, min_length=1, max_length=10_000,
                                                 description="Only these customers (default: every customer).")
    created_since: datetime | None = Field(default=None, description="Only customers created since then.")


class ExportJob(BaseModel):
    id: uuid.UUID
    format: Literal["json", "csv"]
    status: Literal["queued", "running", "done", "failed", "expired"]
    total: int
    done: int
    progress: float = Field(description="Share of the customers exported, 0 to 1.")
    bytes: int = Field(description="Uncompressed size of the output so far.")
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    expires_at: datetime | None
    download_url: str | None = Field(description="A signed link, valid until expires_at, once the job is done.")


class ExportCompleted(BaseModel):
    """customer_export.completed: a bulk export's output is ready to download."""

    job_id: uuid.UUID
    format: Literal["json", "csv"]
    customers: int
    requested_by: str
