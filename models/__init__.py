"""SQLModel tables, API schemas and database helpers."""

from models.egress import TenantEgressList
from models.event import DeadLetter, Event, EventOutbox
from models.idempotency import DecisionKey, EventKey
from models.incident import Action, Decision, Incident, IncidentTransition
from models.maintenance import MaintenanceWindow
from models.operator_action import OperatorAction
from models.registry import KillSwitch, Vendor, Workflow
from models.responder_webhook import ResponderReceipt, ResponderSecret
from models.signing import SigningSecret
from models.tenant import ApiKey, Tenant

__all__ = [
    "Action",
    "ApiKey",
    "DeadLetter",
    "Decision",
    "DecisionKey",
    "Event",
    "EventKey",
    "EventOutbox",
    "Incident",
    "IncidentTransition",
    "KillSwitch",
    "MaintenanceWindow",
    "OperatorAction",
    "ResponderReceipt",
    "ResponderSecret",
    "SigningSecret",
    "Tenant",
    "TenantEgressList",
    "Vendor",
    "Workflow",
]
