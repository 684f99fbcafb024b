"""SQLModel tables, API schemas and database helpers."""

from models.event import Event, EventOutbox
from models.incident import Action, Decision, Incident, IncidentTransition
from models.registry import KillSwitch, Vendor, Workflow
from models.tenant import ApiKey, Tenant

__all__ = [
    "Action",
    "ApiKey",
    "Decision",
    "Event",
    "EventOutbox",
    "Incident",
    "IncidentTransition",
    "KillSwitch",
    "Tenant",
    "Vendor",
    "Workflow",
]
