"""Why events share an incident: the signature's fields, their values and the rule used."""

from __future__ import annotations

from dataclasses import dataclass

from rules.policy import ErrorCatalog
from rules.signature import compute_signature, error_identity

RULE_CODE = "error_code"
RULE_MESSAGE = "normalised_message"


@dataclass(frozen=True)
class Grouping:
    """The signature of a failure, the values it hashes, and how the error part was chosen."""

    signature: str
    fields: dict[str, str | None]  # workflow, step, error (the identity hashed), vendor
    rule: str  # RULE_CODE or RULE_MESSAGE
    explanation: str

    def joined_because(self) -> str:
        """One line saying why an event with these values joined the incident."""
        shown = ", ".join(f"{name}={value or '∅'}" for name, value in self.fields.items())
        return f"same signature ({shown})"


def explain(
    catalog: ErrorCatalog,
    *,
    workflow: str,
    step: str | None,
    error_code: str | None,
    error_message: str | None,
    vendor: str | None,
) -> Grouping:
    """Say how `compute_signature` groups a failure with these values."""
    identity = error_identity(catalog, error_code, error_message)
    if error_code:
        rule = RULE_CODE
        given = error_code.strip().upper()
        alias = f" ({error_code!r} is an alias of it)" if given != identity else ""
        how = f"their error code is {identity}{alias}; the message is ignored"
    else:
        rule = RULE_MESSAGE
        how = (
            "they carry no error code and their message normalises to "
            f"{identity.removeprefix('msg:')!r} (UUIDs, timestamps, hex, ids and numbers replaced)"
        )
    signature = compute_signature(
        catalog,
        workflow=workflow,
        step=step,
        error_code=error_code,
        error_message=error_message,
        vendor=vendor,
    )
    return Grouping(
        signature=signature,
        fields={"workflow": workflow, "step": step, "error": identity, "vendor": vendor},
        rule=rule,
        explanation=(
            f"failures of workflow {workflow}, step {step or '∅'} and vendor {vendor or '∅'} "
            f"share one incident when {how}"
        ),
    )
