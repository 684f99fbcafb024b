"""The fault suite's ledger: what the sender and the callback server saw, against the stores."""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field

import asyncpg

from devstack.http_target import Call

log = logging.getLogger("awfdrs.ledger")


@dataclass
class Ledger:
    """Counts that must all come out right after a fault: nothing lost, nothing doubled."""

    accepted: int = 0
    stored: int = 0
    reached_workflows: int = 0
    calls: int = 0
    lost: int = 0
    duplicated_rows: int = 0
    duplicate_deliveries: int = 0
    duplicate_effects: int = 0
    attempts_beyond_cap: int = 0
    calls_per_attempt: dict[str, int] = field(default_factory=dict)

    def assert_clean(self) -> None:
        """Nothing acknowledged is lost, nothing happens twice, no attempt exceeds the cap."""
        assert (
            self.lost,
            self.duplicated_rows,
            self.duplicate_effects,
            self.attempts_beyond_cap,
        ) == (0, 0, 0, 0), self


async def build_ledger(
    *,
    database_url: str,
    tenant_id: uuid.UUID,
    accepted_keys: set[str],
    reached: int,
    calls: list[Call],
    max_attempts: int,
) -> Ledger:
    """Compare the sender's acknowledged keys and the callback server's calls with the stores."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT idempotency_key FROM events WHERE tenant_id = $1", tenant_id
        )
    finally:
        await conn.close()
    stored_keys = [row["idempotency_key"] for row in rows]
    keys = [call.headers.get("idempotency-key", "") for call in calls]
    per_attempt = Counter(keys)
    attempts: dict[str, set[int]] = {}
    successes: Counter[str] = Counter()
    for call, key in zip(calls, keys, strict=True):
        incident, _, attempt = key.rpartition(":")
        attempts.setdefault(incident, set()).add(int(attempt))
        if call.status is not None and 200 <= call.status < 300:
            successes[key] += 1
    ledger = Ledger(
        accepted=len(accepted_keys),
        stored=len(stored_keys),
        reached_workflows=reached,
        calls=len(calls),
        lost=len(accepted_keys - set(stored_keys)) + max(0, len(stored_keys) - reached),
        duplicated_rows=len(stored_keys) - len(set(stored_keys)),
        # One attempt (one key) applied twice: what a receiver ignoring the key would suffer.
        duplicate_deliveries=sum(n - 1 for n in per_attempt.values()),
        duplicate_effects=sum(n - 1 for n in successes.values() if n > 1),
        attempts_beyond_cap=sum(max(v) > max_attempts for v in attempts.values()),
        calls_per_attempt=dict(per_attempt),
    )
    # Shown with `-o log_cli=true --log-cli-level=INFO`: the figures each fault ended with.
    log.info("ledger %s", ledger)
    return ledger
