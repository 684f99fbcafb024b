"""OIDC bearer tokens against a JWKS served by a real local HTTP server; acting principals."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from temporalio.client import Client

from api import oidc as oidc_module
from api.app import create_app
from api.errors import ServiceUnavailable, Unauthorized
from api.oidc import OidcVerifier
from devstack.http_target import CallbackServer, Reply
from settings import Settings
from tests.api.incident_views import wait_for_incident
from tests.conftest import ADMIN_TOKEN, TenantCredentials
from tests.utils.builders import failure_event, register_workflow
from tests.utils.incidents import IncidentStarter

ISSUER = "https://idp.example/realms/ops"
AUDIENCE = "awfdrs-api"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# Attempts an hour apart: the incident stays `waiting` while the test acts on it.
SLOW = {
    "max_attempts": 5,
    "initial_interval_s": 3600,
    "multiplier": 1,
    "max_interval_s": 3600,
    "jitter": 0,
}


@dataclass
class Issuer:
    """Signing keys (one RSA, one EC) and the JWKS server that publishes their public halves."""

    rsa_key: rsa.RSAPrivateKey
    ec_key: ec.EllipticCurvePrivateKey
    server: CallbackServer

    def token(self, claims: dict[str, Any], *, kid: str = "ec-1", **header: Any) -> str:
        """Sign `claims` over sensible defaults with the key called `kid`."""
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300}
        body.update(claims)
        key, alg = (self.rsa_key, "RS256") if kid.startswith("rsa") else (self.ec_key, "ES256")
        return jwt.encode(body, key, algorithm=alg, headers={"kid": kid, **header})


def _jwks(*keys: tuple[str, Any]) -> str:
    """A JWKS document publishing each (kid, public key)."""
    published = []
    for kid, public in keys:
        algorithm = RSAAlgorithm if isinstance(public, rsa.RSAPublicKey) else ECAlgorithm
        jwk = algorithm.to_jwk(public, as_dict=True)
        published.append({**jwk, "kid": kid, "use": "sig"})
    return json.dumps({"keys": published})


@pytest.fixture
async def issuer() -> AsyncIterator[Issuer]:
    """A local identity provider: its keys and its JWKS endpoint."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwks = _jwks(("rsa-1", rsa_key.public_key()), ("ec-1", ec_key.public_key()))
    async with CallbackServer([Reply(body=jwks)]) as server:
        yield Issuer(rsa_key, ec_key, server)


@pytest.fixture
async def oidc_http(
    settings: Settings, temporal_client: Client, issuer: Issuer
) -> AsyncIterator[httpx.AsyncClient]:
    """The API with OIDC on, trusting the local issuer."""
    oidc = settings.model_copy(
        update={
            "dispatcher_enabled": False,
            "oidc_issuer": ISSUER,
            "oidc_audience": AUDIENCE,
            "oidc_jwks_url": f"http://127.0.0.1:{issuer.server.port}/jwks",
            "oidc_jwks_refresh_s": 3600.0,
        }
    )
    app = create_app(oidc, temporal=temporal_client)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        yield client


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_an_issuer_signed_token_is_accepted_and_its_subject_audits_a_kill(
    oidc_http: httpx.AsyncClient, issuer: Issuer, tenant: TenantCredentials
) -> None:
    await register_workflow(oidc_http, tenant)
    claims = {"sub": "alice@example.com", "awfdrs_tenant": str(tenant.id), "scope": "operator"}
    headers = _bearer(issuer.token(claims))
    switch = await oidc_http.post(
        "/api/v1/kill-switches",
        headers=headers,
        json={"workflow": "billing-sync", "reason": "stripe incident"},
    )
    assert switch.status_code == 201, switch.text
    assert switch.json()["actor"] == "jwt:alice@example.com"
    audit = (await oidc_http.get("/api/v1/operator-actions", headers=headers)).json()
    assert [(row["actor"], row["action"], row["note"]) for row in audit] == [
        ("jwt:alice@example.com", "kill_switch.activate", "stripe incident")
    ]
    # RS256 from the same JWKS, the tenant named by its name, the scope as a list.
    by_name = {"awfdrs_tenant": tenant.name, "scope": ["awfdrs:operator"], "sub": "bob"}
    listed = await oidc_http.get(
        "/api/v1/kill-switches", headers=_bearer(issuer.token(by_name, kid="rsa-1"))
    )
    assert listed.status_code == 200 and listed.json()[0]["actor"] == "jwt:alice@example.com"
    assert len(issuer.server.calls) == 1  # the JWKS was read once and cached


async def test_a_kill_by_token_names_its_subject_in_the_audit_row_and_the_close_reason(
    live: IncidentStarter, oidc_http: httpx.AsyncClient, issuer: Issuer, tenant: TenantCredentials
) -> None:
    async with CallbackServer([Reply(503)]) as server:
        await register_workflow(oidc_http, tenant, callback_url=server.url, retry_policy=SLOW)
        handle = await live.start()
        incident = await wait_for_incident(oidc_http, tenant, handle.id, "waiting")
        claims = {"sub": "alice@example.com", "awfdrs_tenant": str(tenant.id), "scope": "operator"}
        killed = await oidc_http.post(
            f"/api/v1/incidents/{incident['id']}/kill",
            headers=_bearer(issuer.token(claims)),
            json={"by": "alice from the on-call channel"},
        )
        assert killed.status_code == 202, killed.text
        result = await asyncio.wait_for(handle.result(), 30)
    assert (result.status, result.reason) == ("killed", "kill by jwt:alice@example.com")
    audit = await oidc_http.get(
        "/api/v1/operator-actions",
        headers=tenant.headers,
        params={"target": f"incident:{incident['id']}"},
    )
    assert [(row["actor"], row["action"], row["note"]) for row in audit.json()] == [
        ("jwt:alice@example.com", "kill", "alice from the on-call channel")
    ]


@pytest.mark.parametrize(
    ("claims", "kid", "detail"),
    [
        ({"exp": int(time.time()) - 3600}, "ec-1", "expired"),
        ({"nbf": int(time.time()) + 3600}, "ec-1", "not yet valid"),
        ({"aud": "someone-else"}, "ec-1", "audience"),
        ({"iss": "https://evil.example"}, "ec-1", "issuer"),
        ({}, "ec-unknown", "not in the issuer's jwks"),
    ],
    ids=["expired", "not-yet-valid", "wrong-audience", "wrong-issuer", "unknown-kid"],
)
async def test_bad_tokens_are_401_problems(
    oidc_http: httpx.AsyncClient,
    issuer: Issuer,
    tenant: TenantCredentials,
    claims: dict[str, Any],
    kid: str,
    detail: str,
) -> None:
    token = issuer.token({"awfdrs_tenant": str(tenant.id), "scope": "operator", **claims}, kid=kid)
    response = await oidc_http.get("/api/v1/kill-switches", headers=_bearer(token))
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert detail in response.json()["detail"].lower()


async def test_unsigned_and_symmetric_tokens_are_refused_before_any_key_lookup(
    oidc_http: httpx.AsyncClient, issuer: Issuer, tenant: TenantCredentials
) -> None:
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "mallory",
        "exp": int(time.time()) + 300,
        "awfdrs_tenant": str(tenant.id),
        "scope": "operator",
    }
    unsigned = jwt.encode(claims, "", algorithm="none", headers={"kid": "ec-1"})
    hs256 = jwt.encode(claims, "k" * 64, algorithm="HS256", headers={"kid": "ec-1"})
    for token in (unsigned, hs256):
        response = await oidc_http.get("/api/v1/kill-switches", headers=_bearer(token))
        assert response.status_code == 401, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "is not accepted (only RS256, ES256)" in response.json()["detail"]
    assert issuer.server.calls == []


async def test_a_token_without_scope_tenant_or_a_fitting_subject_is_refused(
    oidc_http: httpx.AsyncClient, issuer: Issuer, tenant: TenantCredentials
) -> None:
    no_scope = issuer.token({"awfdrs_tenant": str(tenant.id), "scope": "openid profile"})
    response = await oidc_http.get("/api/v1/kill-switches", headers=_bearer(no_scope))
    assert response.status_code == 403 and "grants neither" in response.json()["detail"]
    ingest = issuer.token({"awfdrs_tenant": str(tenant.id), "scope": "ingest"})
    response = await oidc_http.get("/api/v1/kill-switches", headers=_bearer(ingest))
    assert response.status_code == 403 and "'ingest' scope" in response.json()["detail"]
    await register_workflow(oidc_http, tenant)
    sent = await oidc_http.post("/api/v1/events", headers=_bearer(ingest), json=failure_event())
    assert sent.status_code == 202, sent.text  # what an ingest token is for
    endless = issuer.token({"awfdrs_tenant": str(tenant.id), "scope": "operator", "sub": "x" * 191})
    response = await oidc_http.get("/api/v1/kill-switches", headers=_bearer(endless))
    assert response.status_code == 401 and "sub must be" in response.json()["detail"]
    stranger = issuer.token({"awfdrs_tenant": "no-such-tenant", "scope": "operator"})
    response = await oidc_http.get("/api/v1/kill-switches", headers=_bearer(stranger))
    assert response.status_code == 401 and "names no tenant" in response.json()["detail"]


async def test_a_rotated_key_is_fetched_on_its_unknown_kid_at_most_once_per_interval(
    settings: Settings, temporal_client: Client, issuer: Issuer, tenant: TenantCredentials
) -> None:
    rotated = ec.generate_private_key(ec.SECP256R1())
    issuer.server.script = [Reply(body=_jwks(("ec-2", rotated.public_key())))]
    verifier = OidcVerifier(
        settings.model_copy(
            update={
                "oidc_issuer": ISSUER,
                "oidc_audience": AUDIENCE,
                "oidc_jwks_url": f"http://127.0.0.1:{issuer.server.port}/jwks",
                "oidc_jwks_refresh_s": 0.5,
            }
        )
    )
    old = issuer.token({"awfdrs_tenant": str(tenant.id)})  # kid ec-1, no longer published
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "carol", "exp": now + 60}
    new = jwt.encode(claims, rotated, algorithm="ES256", headers={"kid": "ec-2"})
    assert (await verifier.claims(new))["sub"] == "carol"  # first read
    for _ in range(3):  # unknown kid within the interval: no new fetch
        with pytest.raises(Unauthorized, match="not in the issuer's JWKS"):
            await verifier.claims(old)
    assert verifier.jwks.fetches == 1
    await asyncio.sleep(0.6)
    with pytest.raises(Unauthorized, match="not in the issuer's JWKS"):
        await verifier.claims(old)
    assert verifier.jwks.fetches == 2 and len(issuer.server.calls) == 2


async def test_an_issuer_outage_is_a_503_for_new_keys_and_no_outage_for_known_ones(
    settings: Settings,
    issuer: Issuer,
    tenant: TenantCredentials,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verifier = OidcVerifier(
        settings.model_copy(
            update={
                "oidc_issuer": ISSUER,
                "oidc_audience": AUDIENCE,
                "oidc_jwks_url": f"http://127.0.0.1:{issuer.server.port}/jwks",
                "oidc_jwks_refresh_s": 0.0,
            }
        )
    )
    known = issuer.token({"awfdrs_tenant": str(tenant.id)})
    assert (await verifier.claims(known))["sub"] == "alice"
    issuer.server.script = [Reply(500, body="down")]
    monkeypatch.setattr(oidc_module, "JWKS_MAX_AGE_S", 0.0)  # every call wants a fresh set
    assert (await verifier.claims(known))["sub"] == "alice"  # the cached key still serves
    with pytest.raises(ServiceUnavailable, match="JWKS could not be read"):
        await verifier.claims(issuer.token({}, kid="ec-new"))
    issuer.server.script = [Reply(body="[]")]
    with pytest.raises(ServiceUnavailable, match="not a JSON object"):
        await verifier.claims(issuer.token({}, kid="ec-new"))
    assert verifier.jwks.fetches == 4


async def test_a_jwt_is_never_looked_up_as_an_api_key_without_oidc(
    http: httpx.AsyncClient, issuer: Issuer, tenant: TenantCredentials
) -> None:
    token = issuer.token({"awfdrs_tenant": str(tenant.id), "scope": "operator"})
    response = await http.get("/api/v1/kill-switches", headers=_bearer(token))
    assert response.status_code == 401
    assert "OIDC is not configured" in response.json()["detail"]
    assert issuer.server.calls == []


async def test_a_key_owner_is_listed_and_names_the_key_in_audit_rows(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    created = await http.post(
        f"/api/v1/tenants/{tenant.id}/api-keys",
        headers=ADMIN,
        json={"scope": "operator", "name": "laptop", "owner": "dana@example.com"},
    )
    assert created.status_code == 201 and created.json()["owner"] == "dana@example.com"
    listed = (await http.get(f"/api/v1/tenants/{tenant.id}/api-keys", headers=ADMIN)).json()
    assert {key["owner"] for key in listed} == {None, "dana@example.com"}
    headers = _bearer(created.json()["api_key"])
    await register_workflow(http, tenant)
    switch = await http.post(
        "/api/v1/kill-switches",
        headers=headers,
        json={"workflow": "billing-sync", "reason": "drill"},
    )
    assert switch.json()["actor"] == "api-key:dana@example.com"
    removed = await http.delete(f"/api/v1/kill-switches/{switch.json()['id']}", headers=headers)
    assert removed.json()["deactivated_by"] == "api-key:dana@example.com"
    for action in ("open", "reset"):
        forced = await http.post(f"/api/v1/vendors/stripe/circuit/{action}", headers=headers)
        assert forced.status_code == 200, forced.text
    audit = (await http.get("/api/v1/operator-actions", headers=tenant.headers)).json()
    assert {row["actor"] for row in audit} == {"api-key:dana@example.com"}
    target = f"kill-switch:{switch.json()['id']}"
    assert [(row["action"], row["target"]) for row in audit] == [
        ("circuit.reset", "vendor:stripe"),
        ("circuit.open", "vendor:stripe"),
        ("kill_switch.deactivate", target),
        ("kill_switch.activate", target),
    ]
