"""`/dead-letters`: outbox groups given up after repeated failures, and their replay."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from sqlmodel import select

from api.auth import OperatorPrincipal
from api.deps import DispatcherDep, SessionDep
from api.pagination import CursorQuery, LimitQuery, fetch_page
from api.routes.responses import problem_responses
from api.services import dead_letters
from models.event import DeadLetter
from models.schemas.common import Page
from models.schemas.dead_letters import DeadLetterOut

router = APIRouter(tags=["dead letters"])


@router.get(
    "/dead-letters",
    operation_id="listDeadLetters",
    response_model=Page[DeadLetterOut],
    responses=problem_responses(401, 403, 422),
)
async def list_dead_letters(
    principal: OperatorPrincipal,
    session: SessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[DeadLetterOut]:
    """List the tenant's dead letters, newest first."""
    query = select(DeadLetter).where(DeadLetter.tenant_id == principal.tenant_id)
    rows, following = await fetch_page(
        session, query, model=DeadLetter, at="created_at", limit=limit, cursor=cursor
    )
    return Page(
        items=[DeadLetterOut.model_validate(r, from_attributes=True) for r in rows],
        next_cursor=following,
    )


@router.get(
    "/dead-letters/{letter_id}",
    operation_id="getDeadLetter",
    response_model=DeadLetterOut,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_dead_letter(
    letter_id: uuid.UUID, principal: OperatorPrincipal, session: SessionDep
) -> DeadLetterOut:
    """Return one dead letter."""
    row = await dead_letters.get_dead_letter(
        session=session, tenant_id=principal.tenant_id, letter_id=letter_id
    )
    return DeadLetterOut.model_validate(row, from_attributes=True)


@router.post(
    "/dead-letters/{letter_id}/replay",
    operation_id="replayDeadLetter",
    status_code=202,
    response_model=DeadLetterOut,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def replay_dead_letter(
    letter_id: uuid.UUID,
    principal: OperatorPrincipal,
    session: SessionDep,
    dispatcher: DispatcherDep,
) -> DeadLetterOut:
    """Put the group's events back on the outbox; they reach their incident as new events."""
    row = await dead_letters.replay(
        session=session,
        tenant_id=principal.tenant_id,
        letter_id=letter_id,
        actor=principal.actor,
    )
    dispatcher.wake()
    return DeadLetterOut.model_validate(row, from_attributes=True)
