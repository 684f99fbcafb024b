"""De-duplication keys of the partitioned append-only tables, kept in plain tables.

A unique constraint on a partitioned table must include its partition key (the time a row
was stored), so it could not stop a key reused in a later month. These unpartitioned tables
hold the keys instead; each is written by the same statement as its row, and `awfdrs
retention` deletes a key together with the partition its row lived in.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar

from sqlmodel import Field, SQLModel

from models.base import timestamp_field


class EventKey(SQLModel, table=True):
    """A tenant's idempotency key and the event stored under it."""

    __tablename__: ClassVar[str] = "event_keys"

    tenant_id: uuid.UUID = Field(primary_key=True)
    idempotency_key: str = Field(primary_key=True, max_length=200)
    event_id: uuid.UUID
    # The event's partition key: finds its row without searching every partition.
    received_at: datetime = timestamp_field(nullable=False)


class DecisionKey(SQLModel, table=True):
    """A decision the workflow named for an incident, and the row that records it."""

    __tablename__: ClassVar[str] = "decision_keys"

    incident_id: uuid.UUID = Field(primary_key=True)
    decision_key: str = Field(primary_key=True, max_length=200)
    decision_id: uuid.UUID
