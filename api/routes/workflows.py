"""`/workflows`: the registry of client workflows AWFDRS may call back."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from api.auth import OperatorPrincipal
from api.deps import EgressGuardDep, IntakeDep, PolicyDep, SecretBoxDep, SessionDep
from api.routes.responses import problem_responses
from api.services import workflows as registry
from models.schemas.common import NAME_PATTERN
from models.schemas.workflows import WorkflowCreate, WorkflowOut, WorkflowUpdate

router = APIRouter(tags=["workflows"])
ERRORS = problem_responses(401, 403, 404, 409, 422)
WorkflowName = Annotated[str, Path(pattern=NAME_PATTERN)]


@router.post(
    "/workflows",
    operation_id="registerWorkflow",
    status_code=201,
    response_model=WorkflowOut,
    responses=ERRORS,
)
async def register(
    *,
    body: WorkflowCreate,
    principal: OperatorPrincipal,
    session: SessionDep,
    guard: EgressGuardDep,
    box: SecretBoxDep,
    policies: PolicyDep,
    intake: IntakeDep,
) -> WorkflowOut:
    """Register a workflow; the egress guard must accept its callback and webhook URLs."""
    row = await registry.create_workflow(
        session=session,
        tenant_id=principal.tenant_id,
        body=body,
        guard=guard,
        policies=policies.retry,
        box=box,
    )
    intake.forget_registry(principal.tenant_id)
    return registry.workflow_out(row, box=box)


@router.get(
    "/workflows", operation_id="listWorkflows", response_model=list[WorkflowOut], responses=ERRORS
)
async def list_all(
    principal: OperatorPrincipal, session: SessionDep, box: SecretBoxDep
) -> list[WorkflowOut]:
    """List the tenant's registered workflows."""
    rows = await registry.list_workflows(session=session, tenant_id=principal.tenant_id)
    return [registry.workflow_out(row, box=box) for row in rows]


@router.get(
    "/workflows/{name}", operation_id="getWorkflow", response_model=WorkflowOut, responses=ERRORS
)
async def get_one(
    name: WorkflowName, principal: OperatorPrincipal, session: SessionDep, box: SecretBoxDep
) -> WorkflowOut:
    """Return one registered workflow."""
    row = await registry.get_workflow_or_raise(
        session=session, tenant_id=principal.tenant_id, name=name
    )
    return registry.workflow_out(row, box=box)


@router.patch(
    "/workflows/{name}", operation_id="updateWorkflow", response_model=WorkflowOut, responses=ERRORS
)
async def update(
    *,
    name: WorkflowName,
    body: WorkflowUpdate,
    principal: OperatorPrincipal,
    session: SessionDep,
    guard: EgressGuardDep,
    box: SecretBoxDep,
    policies: PolicyDep,
    intake: IntakeDep,
) -> WorkflowOut:
    """Change a workflow's callback, policy or active flag."""
    row = await registry.update_workflow(
        session=session,
        tenant_id=principal.tenant_id,
        name=name,
        body=body,
        guard=guard,
        policies=policies.retry,
        box=box,
    )
    intake.forget_registry(principal.tenant_id)
    return registry.workflow_out(row, box=box)
