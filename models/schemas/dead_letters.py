"""Dead letters: outbox groups that could not be delivered to their incident."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class DeadLetterOut(BaseModel):
    """A group of events given up after repeated delivery failures, until replayed."""

    id: uuid.UUID
    incident_key: str = Field(
        description="The outbox key: the incident's workflow id, or a resolve key"
    )
    event_ids: list[uuid.UUID]
    failures: int = Field(description="Delivery attempts that failed for this group's own reasons")
    error: str = Field(description="Why the last delivery failed")
    first_queued_at: datetime
    created_at: datetime = Field(description="When the group was dead-lettered")
    replayed_at: datetime | None
    replayed_by: str | None
