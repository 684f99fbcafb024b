"""Admin bodies: a tenant's own egress allow-list."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from models.schemas.common import StrictBody
from rules.addresses import parse_network
from rules.egress_lists import parse_entry

MAX_ENTRIES = 100


def _entry(text: str) -> str:
    return str(parse_entry(text))


def _network(text: str) -> str:
    return str(parse_network(text))


HostEntry = Annotated[str, Field(min_length=1, max_length=300), AfterValidator(_entry)]
NetworkEntry = Annotated[str, Field(min_length=1, max_length=50), AfterValidator(_network)]


class EgressListsIn(StrictBody):
    """The whole list, replacing the previous one; an empty list removes every entry."""

    hosts: list[HostEntry] = Field(
        default_factory=list,
        max_length=MAX_ENTRIES,
        description="`host`, `*.example.com`, `host:port`, or `http://host` to allow plain http",
        examples=[["hooks.acme.example", "*.ops.acme.example", "http://legacy.acme.example:8080"]],
    )
    networks: list[NetworkEntry] = Field(
        default_factory=list,
        max_length=MAX_ENTRIES,
        description="Internal networks (CIDR) this tenant's calls may reach",
        examples=[["10.20.0.0/16"]],
    )


class EgressListsOut(BaseModel):
    """A tenant's own egress entries, and the global ones every tenant has."""

    tenant_id: uuid.UUID
    hosts: list[str]
    networks: list[str]
    updated_at: datetime | None
    global_hosts: list[str] = Field(description="Built-in hosts and AWFDRS_ALLOWED_CALLBACK_HOSTS")
    global_networks: list[str] = Field(description="AWFDRS_ALLOWED_CALLBACK_NETWORKS")
