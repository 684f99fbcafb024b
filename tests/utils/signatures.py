"""Every request AWFDRS sends in the suite is verified as its receiver would, with
`standardwebhooks`, against the secrets its tenant had active when it arrived.

`CallbackServer.observer` hands each call over as it arrives; a verification runs in a thread
of its own (a loop and connections of its own), finds the tenant through the action row the
activity wrote before sending (`idempotency_key` = `webhook-id`) in the session database, a
test's own `isolated_*` database or a database the test watches, and waits out an outage.
The autouse fixture fails the test if any verification failed.

The rule that decides what is verified: a call that carries `webhook-id` or
`X-AWFDRS-Signature` claims to come from AWFDRS and must verify. Requests in a vendor's own
format (PagerDuty, Opsgenie, Slack) authenticate with the vendor's key and carry neither; the
stand-ins in `tests/utils/vendors.py` fail a test if one ever does.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

import asyncpg
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from devstack.http_target import Call, CallbackServer
from models.secret_box import SecretBox
from models.signing import key_of
from models.stored_secrets import SIGNING_SECRETS
from settings import Settings
from tests.conftest import TenantCredentials
from tests.utils.incidents import IncidentStarter

SETTLE_TIMEOUT_S = 180.0
OUTAGE_PATIENCE_S = 120.0
_SECRETS = """
SELECT s.tenant_id, s.secret_encrypted, s.created_at, s.retired_at
FROM signing_secrets s
WHERE s.tenant_id = (SELECT tenant_id FROM actions WHERE idempotency_key = $1 LIMIT 1)
ORDER BY s.created_at, s.id
"""
_OTHER_DATABASES = r"SELECT datname FROM pg_database WHERE datname LIKE 'isolated\_%'"
# Failures that say the database cannot answer now (restarting, refusing connections).
_OUTAGE = (
    OSError,
    asyncpg.CannotConnectNowError,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.AdminShutdownError,
    asyncpg.TooManyConnectionsError,
)


def secrets_url(tenant_id: uuid.UUID | str) -> str:
    """Return the admin route of a tenant's signing secrets."""
    return f"/api/v1/tenants/{tenant_id}/signing-secrets"


async def first_secret(settings: Settings, tenant: TenantCredentials) -> str:
    """Return the tenant's first signing secret, opened with the suite's key."""
    conn = await asyncpg.connect(settings.plain_database_url)
    try:
        sealed = await conn.fetchval(
            "SELECT secret_encrypted FROM signing_secrets WHERE tenant_id = $1", tenant.id
        )
    finally:
        await conn.close()
    box = SecretBox.from_settings(settings)
    return box.decrypt(sealed, context=SIGNING_SECRETS.context(tenant.id))


async def page_once(live: IncidentStarter, pager: CallbackServer) -> None:
    """Open an incident whose callback refuses for good, and wait for its first page."""
    before = len(pager.calls)
    await live.start()
    for _ in range(600):
        if len(pager.calls) > before:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the incident was never paged")


def is_signed_by_awfdrs(call: Call) -> bool:
    """Tell whether a call claims to come from AWFDRS (either signature header)."""
    return "webhook-id" in call.headers or "x-awfdrs-signature" in call.headers


def verify_call(call: Call, rows: list[Any], box: SecretBox) -> str | None:
    """Check a call against its tenant's secret rows; return what is wrong, or None."""
    at = call.received_at
    active = [
        r
        for r in rows
        if r["created_at"].timestamp() <= at
        and (r["retired_at"] is None or r["retired_at"].timestamp() >= at)
    ]
    if not active:
        return "no signing secret of the tenant was active when it arrived"
    secrets = [
        box.decrypt(r["secret_encrypted"], context=SIGNING_SECRETS.context(r["tenant_id"]))
        for r in active
    ]
    try:
        for secret in secrets:  # during a rotation, each active secret must verify on its own
            Webhook(secret).verify(call.raw, call.headers, json_parse=False)
    except WebhookVerificationError as exc:
        return f"standardwebhooks refused it: {exc}"
    if len(call.headers["webhook-signature"].split(" ")) != len(secrets):
        return "webhook-signature does not carry one signature per active secret"
    legacy = hmac.new(key_of(secrets[0]), call.raw, hashlib.sha256).hexdigest()
    if call.headers.get("x-awfdrs-signature") != f"sha256={legacy}":
        return "X-AWFDRS-Signature is not the HMAC of the body under the oldest active secret"
    return None


class SignatureAudit:
    """Verifies observed calls in the background; `settle` reports what failed."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="signature-audit")
        self._pending: list[Future[str | None]] = []
        self._database_url: str | None = None
        self._watched: list[str] = []
        self._box: SecretBox | None = None
        self.verified = 0

    def bind(self, settings: Settings) -> None:
        """Use the session database and the suite's key."""
        self._database_url = settings.plain_database_url
        self._box = SecretBox.from_settings(settings)

    def watch(self, database_url: str) -> None:
        """Also look for action rows in a database a test runs on a server of its own."""
        self._watched.append(database_url)

    def observe(self, call: Call) -> None:
        """Queue the verification of a call that claims to come from AWFDRS."""
        if not is_signed_by_awfdrs(call):
            return
        url, box = self._database_url, self._box
        if url is None or box is None:
            self._pending.append(_done("arrived in a test that uses no database: unverifiable"))
            return
        verification = _verify(call, [url, *self._watched], box)
        self._pending.append(self._executor.submit(asyncio.run, verification))

    def wait_for_pending(self, timeout_s: float = SETTLE_TIMEOUT_S) -> None:
        """Let the queued verifications read their databases; `settle` reports them later."""
        wait(list(self._pending), timeout=timeout_s)

    def settle(self, timeout_s: float = SETTLE_TIMEOUT_S) -> list[str]:
        """Wait for the queued verifications; return their failures and forget them."""
        pending, self._pending, self._watched = self._pending, [], []
        done, late = wait(pending, timeout=timeout_s)
        failures = [message for future in done if (message := future.result())]
        self.verified += len(done) - len(failures)
        return failures + [f"{len(late)} verification(s) did not finish"] * bool(late)

    def close(self) -> None:
        """Stop the verification threads."""
        self._executor.shutdown(wait=True, cancel_futures=True)


def _done(message: str) -> Future[str | None]:
    future: Future[str | None] = Future()
    future.set_result(message)
    return future


async def _verify(call: Call, database_urls: list[str], box: SecretBox) -> str | None:
    message_id = call.headers.get("webhook-id")
    if message_id is None:
        return f"{call.path}: X-AWFDRS-Signature without the Standard Webhooks headers"
    deadline = asyncio.get_running_loop().time() + OUTAGE_PATIENCE_S
    while True:
        try:
            rows = await _secret_rows(database_urls, message_id)
            break
        except _OUTAGE:
            if asyncio.get_running_loop().time() > deadline:
                return f"{message_id}: the database stayed unreachable"
            await asyncio.sleep(0.5)
    if not rows:
        return f"{message_id}: no action row of any tenant names this webhook-id"
    problem = verify_call(call, rows, box)
    return None if problem is None else f"{message_id}: {problem}"


async def _secret_rows(database_urls: list[str], message_id: str) -> list[Any]:
    session, *watched = database_urls
    base = session.rsplit("/", 1)[0]
    isolated = [f"{base}/{name}" for (name,) in await _fetch(session, _OTHER_DATABASES)]
    for url in [session, *watched, *isolated]:
        try:
            rows = await _fetch(url, _SECRETS, message_id)
        except (asyncpg.InvalidCatalogNameError, asyncpg.UndefinedTableError):
            continue  # dropped meanwhile, or not migrated yet
        if rows:
            return rows
    return []


async def _fetch(url: str, query: str, *args: Any) -> list[Any]:
    # No SSL negotiation: a connect timed out in its middle leaves a socket for the collector.
    conn = await asyncpg.connect(url, timeout=5, ssl=False)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        # The database may have gone away mid-query (the outage tests): drop the socket then.
        if conn.is_closed() or not await _closed_politely(conn):
            conn.terminate()


async def _closed_politely(conn: asyncpg.Connection) -> bool:
    try:
        await conn.close(timeout=2)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return False
    return True


@pytest.fixture(scope="session")
def signature_audit() -> Iterator[SignatureAudit]:
    """The suite's audit, shown every call of every `CallbackServer`."""
    audit = SignatureAudit()
    CallbackServer.observer = audit.observe
    yield audit
    CallbackServer.observer = None
    audit.close()


@pytest.fixture(autouse=True)
def outbound_requests_verify(
    request: pytest.FixtureRequest, signature_audit: SignatureAudit
) -> Iterator[None]:
    """Fail the test if a request AWFDRS sent during it does not verify."""
    if "settings" in request.fixturenames:
        signature_audit.bind(request.getfixturevalue("settings"))
    yield
    failures = signature_audit.settle()
    assert failures == [], "outbound requests that do not verify:\n" + "\n".join(failures)
