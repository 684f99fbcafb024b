"""Grouping you can read: an incident's signature explained, and why its events joined."""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.event import Event
from models.incident import Incident
from models.schemas.incidents import GroupingOut, Timeline
from rules.grouping import Grouping, explain
from rules.policy import ErrorCatalog
from vocabulary import FAILURE_TYPES


async def explain_incident(
    session: AsyncSession, row: Incident, catalog: ErrorCatalog
) -> Grouping | None:
    """Explain the signature from the incident's first stored failure (None: none stored)."""
    query = (
        select(Event)
        .where(Event.tenant_id == row.tenant_id, Event.incident_key == row.workflow_id)
        .where(col(Event.event_type).in_(FAILURE_TYPES))
        .order_by(col(Event.occurred_at), col(Event.id))
        .limit(1)
    )
    first = (await session.exec(query)).first()
    if first is None:
        return None
    return explain(
        catalog,
        workflow=first.workflow,
        step=first.step,
        error_code=first.error_code,
        error_message=first.error_message,
        vendor=first.vendor,
    )


def grouping_out(grouping: Grouping, row: Incident) -> GroupingOut:
    """The API view of an incident's grouping."""
    return GroupingOut(
        signature=grouping.signature,
        fields=grouping.fields,
        rule=grouping.rule,
        explanation=grouping.explanation,
        matches_incident=grouping.signature == row.signature,
    )


def annotate_timeline(timeline: Timeline, grouping: Grouping) -> Timeline:
    """Say on each event entry why its events joined: the signature fields they share."""
    for entry in timeline.entries:
        if entry.kind == "events":
            entry.cause = grouping.joined_because()
            entry.details["grouping"] = {"rule": grouping.rule, **grouping.fields}
    return timeline
