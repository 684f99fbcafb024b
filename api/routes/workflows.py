"""`/workflows`: the registry of client workflows AWFDRS may call back."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from api.auth import OperatorPrincipal
from api.deps import SessionDep
from api.intake import Intake
from api.routes.responses import problem_responses
from api.sealing import SecretBoxDep
from api.services import workflows as registry
from api.services.egress import EgressGuardDep
from models.schemas.common import NAME_PATTERN
from models.schemas.workflows import WorkflowCreate, WorkflowOut, WorkflowUpdate
from rules.policy import Policies

router = APIRouter(tags=["workflows"])
ERRORS = problem_responses(401, 403, 404, 409, 422)
WorkflowName = Annotated[str, Path(pattern=NAME_PATTERN)]


def _policies(request: Request) -> Policies:
    policies: Policies = request.app.state.policies
    return policies


def _forget(request: Request) -> None:
    intake: Intake = request.app.state.intake
    intake.workflows.clear()


@router.post(
    "/workflows",
    operation_id="registerWorkflow",
    status_code=201,
    response_model=WorkflowOut,
    responses=ERRORS,
)
async def register(
    body: WorkflowCreate,
    principal: OperatorPrincipal,
    session: SessionDep,
    guard: EgressGuardDep,
    box: SecretBoxDep,
    request: Request,
) -> WorkflowOut:
    """Register a workflow; the egress guard must accept its callback and webhook URLs."""
    row = await registry.create_workflow(
        session=session,
        tenant_id=principal.tenant_id,
        body=body,
        guard=guard,
        policies=_policies(request).retry,
        box=box,
    )
    _forget(request)
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
    name: WorkflowName,
    body: WorkflowUpdate,
    principal: OperatorPrincipal,
    session: SessionDep,
    guard: EgressGuardDep,
    box: SecretBoxDep,
    request: Request,
) -> WorkflowOut:
    """Change a workflow's callback, policy or active flag."""
    row = await registry.update_workflow(
        session=session,
        tenant_id=principal.tenant_id,
        name=name,
        body=body,
        guard=guard,
        policies=_policies(request).retry,
        box=box,
    )
    _forget(request)
    return registry.workflow_out(row, box=box)
