"""Dead letters: list them, and put one back on the outbox for another delivery."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import text
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import Conflict, NotFound
from models.event import DeadLetter

# New outbox rows (new sequence numbers, in the group's order): the incident counts them as
# new, since an operator replays a group only because it was never delivered.
_REQUEUE = text("""
INSERT INTO event_outbox (event_id, tenant_id, incident_key)
SELECT queued.event_id, :tenant_id, :incident_key
FROM unnest(CAST(:event_ids AS uuid[])) WITH ORDINALITY AS queued(event_id, position)
ORDER BY queued.position
ON CONFLICT (event_id) DO NOTHING
""")


async def get_dead_letter(
    *, session: AsyncSession, tenant_id: uuid.UUID, letter_id: uuid.UUID
) -> DeadLetter:
    """Return one of the tenant's dead letters, or 404."""
    row = await session.get(DeadLetter, letter_id)
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(f"dead letter {letter_id} not found")
    return row


async def replay(
    *, session: AsyncSession, tenant_id: uuid.UUID, letter_id: uuid.UUID, actor: str
) -> DeadLetter:
    """Queue a dead letter's events again (once); 409 if it was already replayed."""
    query = select(DeadLetter).where(DeadLetter.id == letter_id).with_for_update()
    row = (await session.exec(query)).first()
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(f"dead letter {letter_id} not found")
    if row.replayed_at is not None:
        raise Conflict(
            f"dead letter {letter_id} was already replayed at {row.replayed_at.isoformat()}"
        )
    await session.exec(  # type: ignore[call-overload]
        _REQUEUE,
        params={
            "tenant_id": tenant_id,
            "incident_key": row.incident_key,
            "event_ids": row.event_ids,
        },
    )
    row.replayed_at, row.replayed_by = datetime.now(UTC), actor
    session.add(row)
    await session.commit()
    return row
