"""Error signatures: events that fail the same way share one signature, hence one incident."""

from __future__ import annotations

import hashlib
import re

from rules.policy import ErrorCatalog

_NORMALISERS = [
    (
        re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I),
        "<uuid>",
    ),
    (
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}[t ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(z|[+-]\d{2}:?\d{2})?\b", re.I
        ),
        "<ts>",
    ),
    (re.compile(r"\b\d{2}:\d{2}:\d{2}(\.\d+)?\b"), "<ts>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    (re.compile(r"\b[0-9a-f]{16,}\b", re.I), "<hex>"),
    (re.compile(r"\b[a-z]+[_-]?\d[\w-]*\b", re.I), "<id>"),
    (re.compile(r"\b\d+(\.\d+)?[a-z%]*\b", re.I), "<n>"),
    (re.compile(r"\s+"), " "),
]


def normalise_message(message: str) -> str:
    """Strip what varies between occurrences: UUIDs, timestamps, hex, ids and numbers."""
    text = message.strip().lower()
    for pattern, replacement in _NORMALISERS:
        text = pattern.sub(replacement, text)
    return text.strip()


def error_identity(catalog: ErrorCatalog, code: str | None, message: str | None) -> str:
    """Return what identifies the failure: its canonical code, else its normalised message."""
    if code:
        return catalog.canonical(code)
    return "msg:" + normalise_message(message or "")


def compute_signature(
    catalog: ErrorCatalog,
    *,
    workflow: str,
    step: str | None,
    error_code: str | None,
    error_message: str | None,
    vendor: str | None,
) -> str:
    """Hash (source workflow, step, error identity, vendor) into a 32-hex-digit signature."""
    parts = [workflow, step or "", error_identity(catalog, error_code, error_message), vendor or ""]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def incident_key(tenant_id: str, signature: str) -> str:
    """Return the incident's Temporal workflow ID: `incident:{tenant}:{signature}`."""
    return f"incident:{tenant_id}:{signature}"
