"""Maintenance windows: store, list with their next occurrence, end (the row stays)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import NotFound
from models.maintenance import MaintenanceWindow
from models.schemas.maintenance import MaintenanceWindowCreate, MaintenanceWindowOut, Occurrence
from rules.maintenance import Schedule

log = logging.getLogger("awfdrs.maintenance")


def schedule_of(row: MaintenanceWindow) -> Schedule:
    """The occurrences of a stored window."""
    if row.duration_s is not None:
        length = timedelta(seconds=row.duration_s)
    else:
        assert row.ends_at is not None
        length = row.ends_at - row.starts_at
    return Schedule(row.starts_at, length, row.recurrence)


def describe(row: MaintenanceWindow, now: datetime) -> MaintenanceWindowOut:
    """The API view of a window at `now`."""
    upcoming = None if row.ended_at else schedule_of(row).next_occurrence(now)
    return MaintenanceWindowOut(
        **row.model_dump(exclude={"workflow", "vendor", "error_code", "step", "tenant_id"}),
        matchers={
            "workflow": row.workflow,
            "vendor": row.vendor,
            "error_code": row.error_code,
            "step": row.step,
        },
        active_now=upcoming is not None and upcoming[0] <= now,
        next_occurrence=Occurrence(starts_at=upcoming[0], ends_at=upcoming[1])
        if upcoming
        else None,
    )


async def create(
    *, session: AsyncSession, tenant_id: uuid.UUID, body: MaintenanceWindowCreate, actor: str
) -> MaintenanceWindow:
    """Store a window."""
    row = MaintenanceWindow(
        tenant_id=tenant_id,
        **body.matchers.model_dump(),
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        duration_s=body.duration_s,
        recurrence=body.recurrence,
        mode=body.mode,
        reason=body.reason,
        actor=actor,
    )
    session.add(row)
    await session.commit()
    log.info("maintenance window %s created by %s: %s", row.id, actor, body.reason)
    return row


async def end(
    *, session: AsyncSession, tenant_id: uuid.UUID, window_id: uuid.UUID, actor: str
) -> MaintenanceWindow:
    """End a window now, recording who ended it; ending it again changes nothing."""
    row = await session.get(MaintenanceWindow, window_id)
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(f"maintenance window {window_id} not found")
    if row.ended_at is None:
        row.ended_at, row.ended_by = datetime.now(UTC), actor
        await session.commit()
        log.info("maintenance window %s ended by %s", window_id, actor)
    return row


async def list_windows(
    *, session: AsyncSession, tenant_id: uuid.UUID, include_past: bool
) -> list[MaintenanceWindowOut]:
    """Active and upcoming windows, soonest first (with `include_past`, every window too)."""
    query = select(MaintenanceWindow).where(MaintenanceWindow.tenant_id == tenant_id)
    if not include_past:
        query = query.where(col(MaintenanceWindow.ended_at).is_(None))
    newest_first = query.order_by(col(MaintenanceWindow.created_at).desc()).limit(500)
    rows = (await session.exec(newest_first)).all()
    now = datetime.now(UTC)
    views = [describe(row, now) for row in rows]
    if not include_past:
        views = [view for view in views if view.next_occurrence is not None]
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(views, key=lambda v: v.next_occurrence.starts_at if v.next_occurrence else far)
