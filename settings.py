"""The one configuration object of AWFDRS, read from `AWFDRS_*` variables and `.env`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "AWFDRS_"
DEV_CALLBACK_HOSTS = ("127.0.0.1", "localhost")
TASK_QUEUE = "awfdrs-incidents"
MIN_ADMIN_TOKEN_LENGTH = 24


class SettingsError(ValueError):
    """Configuration is invalid; the message names every offending variable."""


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip().lower() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Validated runtime configuration shared by the API, the worker and the CLI."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_ignore_empty=True, extra="ignore"
    )

    env: Literal["development", "production"] = "production"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/awfdrs"
    redis_url: str = "redis://127.0.0.1:6379/0"
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = Field(default=TASK_QUEUE, min_length=1, max_length=200)
    # Base of the Web UI links given to tenants; unset: no links (development: the local UI).
    temporal_ui_url: str | None = None
    # Where people reach this API (https://awfdrs.example.com): responder messages link to the
    # incident under it. Unset: they carry the Web UI link only.
    public_api_url: str | None = None
    admin_token: SecretStr | None = None
    ai_mode: str = "mock"
    allowed_callback_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    db_pool_size: int = Field(default=10, ge=1, le=200)
    worker_db_pool_size: int = Field(default=25, ge=1, le=200)
    worker_max_concurrent_activities: int = Field(default=50, ge=1, le=1000)
    # Workflow tasks in progress at once. Each runs several local activities in series, so
    # letting hundreds run together only makes each slower until they outlive the 10 s task
    # timeout and are redone; a short queue on the Temporal side costs nothing.
    worker_max_concurrent_workflow_tasks: int = Field(default=10, ge=2, le=1000)
    worker_max_cached_workflows: int = Field(default=1000, ge=0, le=100_000)
    # Workflow code runs in Temporal's sandbox, which refuses non-deterministic calls at run
    # time; off, the same code runs without it for about 30% less worker CPU per incident
    # (docs/BENCHMARKS.md), its determinism kept by the sandboxed test suite and replays.
    worker_workflow_sandbox: bool = True
    # Patch ids (workflows/patches.py) new runs leave inactive: deploy a build with its new
    # patches held until every worker runs it, so an older worker can still replay what the
    # new ones record (and the build can be rolled back); then clear the list.
    worker_held_patches: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("worker_held_patches", mode="before")
    @classmethod
    def _parse_held_patches(cls, value: object) -> object:
        return _split_csv(value)

    # How long a stopping worker lets running activities finish before cancelling them. A
    # callback may run up to its policy's call timeout (at most 300 s): deployments that must
    # never cut one short set this above it, with the orchestrator's grace period above that.
    worker_shutdown_grace_s: float = Field(default=20.0, ge=0, le=3600)
    db_statement_timeout_ms: int = Field(default=5_000, ge=100)
    redis_timeout_s: float = Field(default=0.5, gt=0)
    worker_metrics_address: str | None = Field(
        default=None, description="host:port of the worker's Prometheus endpoint"
    )
    auth_cache_ttl_s: float = Field(default=2.0, ge=0)
    registry_cache_ttl_s: float = Field(default=1.0, ge=0)
    dispatcher_enabled: bool = True
    # Where the outbox dispatcher runs: inside each API process, in its own process
    # (`python -m api.dispatcher_main`; the API then reads its heartbeat from Redis), or
    # nowhere. Unset: inline, or off when AWFDRS_DISPATCHER_ENABLED=false.
    dispatcher: Literal["inline", "process", "off"] | None = None
    # host:port of the dispatcher process's Prometheus endpoint; unset: none.
    dispatcher_metrics_address: str | None = None
    remediation_calls_per_hour: int = Field(default=1000, ge=1)
    # How long an approval gate waits for an operator before the incident escalates; the
    # plan carries it to the workflow, so a change applies to incidents planned afterwards.
    approval_timeout_s: float = Field(default=1800.0, gt=0, le=7 * 86_400)
    # How long the gate holds an incident under a maintenance window before asking again:
    # bounds how late an operator's early end of a window (DELETE) releases held incidents.
    maintenance_recheck_s: float = Field(default=30.0, gt=0)
    policy_dir: Path | None = Field(
        default=None, description="Directory with the four policy YAML files (default: shipped)"
    )
    dispatcher_poll_interval_s: float = Field(default=1.0, gt=0)
    dispatcher_batch_size: int = Field(default=1000, ge=1, le=10_000)
    dispatcher_linger_s: float = Field(default=0.05, ge=0, le=5)
    # Readiness fails when the dispatcher is failing and the oldest outbox row is this old.
    dispatcher_stale_after_s: float = Field(default=60.0, gt=0)
    # A group whose delivery fails this many times (for its own reasons) is dead-lettered.
    dispatcher_max_failures: int = Field(default=10, ge=1, le=1000)
    # `awfdrs retention` drops partitions of events, decisions and transitions older than this.
    retention_days: int = Field(default=90, ge=1, le=36_500)
    # Largest request body on any route, refused before routing and auth; unset: the batch limit.
    max_request_bytes: int | None = Field(default=None, ge=1024)
    # When set, `GET /metrics` answers only `Authorization: Bearer <this token>`.
    metrics_token: SecretStr | None = None
    # When set, `python -m api` serves `/metrics` on this port instead of the API port.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)

    # Schema owner for migrations and `awfdrs retention`; unset: AWFDRS_DATABASE_URL.
    migration_database_url: str | None = None
    # PEM CA bundle the Temporal server certificate is checked against (unset: system roots).
    temporal_tls_ca_path: Path | None = None
    # PEM client certificate for mTLS to Temporal; needs AWFDRS_TEMPORAL_TLS_KEY_PATH.
    temporal_tls_cert_path: Path | None = None
    # Its PEM private key; validated even when unset, so a certificate alone is refused.
    temporal_tls_key_path: Path | None = Field(default=None, validate_default=True)
    # Name the Temporal certificate must carry (and the SNI), when it is not the dialled host.
    temporal_tls_server_name: str | None = None
    # Temporal Cloud API key, sent as `Authorization: Bearer`; implies TLS unless turned off.
    temporal_api_key: SecretStr | None = None
    # TLS to Temporal; unset: on as soon as a TLS path, the server name or the API key is set.
    temporal_tls: bool | None = None

    # OIDC/JWT bearer tokens beside API keys; all three set, or none (API keys only).
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    # Validated even when unset, so an issuer without a JWKS URL is refused.
    oidc_jwks_url: str | None = Field(default=None, validate_default=True)
    # The claims naming the tenant (its id or name) and the scopes (`operator`, `ingest`).
    oidc_tenant_claim: str = Field(default="awfdrs_tenant", min_length=1)
    oidc_scope_claim: str = Field(default="scope", min_length=1)
    # Tolerated clock skew for `exp`/`nbf`; the JWKS is re-read at most this often on unknown kid.
    oidc_leeway_s: float = Field(default=30.0, ge=0, le=300)
    oidc_jwks_refresh_s: float = Field(default=60.0, ge=0)

    @field_validator("migration_database_url")
    @classmethod
    def _migration_postgres_url(cls, value: str | None) -> str | None:
        return None if value is None else cls._postgres_url(value)

    @field_validator("temporal_tls_ca_path", "temporal_tls_cert_path", "temporal_tls_key_path")
    @classmethod
    def _readable_pem(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        try:
            content = value.read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read {value}: {exc.strerror or exc}") from None
        if b"-----BEGIN " not in content:
            raise ValueError(f"{value} is not a PEM file")
        return value

    @field_validator("temporal_tls_key_path")
    @classmethod
    def _key_with_certificate(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if "temporal_tls_cert_path" not in info.data:
            return value  # the certificate failed on its own; that error is reported already
        if (value is None) != (info.data["temporal_tls_cert_path"] is None):
            raise ValueError(
                f"{ENV_PREFIX}TEMPORAL_TLS_CERT_PATH and {ENV_PREFIX}TEMPORAL_TLS_KEY_PATH "
                "must be set together (mTLS needs the certificate and its key)"
            )
        return value

    @field_validator("temporal_tls")
    @classmethod
    def _tls_off_means_no_tls_options(cls, value: bool | None, info: ValidationInfo) -> bool | None:
        options = ("temporal_tls_ca_path", "temporal_tls_cert_path", "temporal_tls_server_name")
        given = [f"{ENV_PREFIX}{name.upper()}" for name in options if info.data.get(name)]
        if value is False and given:
            raise ValueError(f"is false, but {', '.join(given)} only work over TLS")
        return value

    @model_validator(mode="after")
    def _development_ui_link(self) -> Settings:
        # Production hands tenants a Web UI link only when one is configured on purpose.
        if self.env == "development" and self.temporal_ui_url is None:
            self.temporal_ui_url = "http://127.0.0.1:8233"
        return self

    @property
    def temporal_tls_enabled(self) -> bool:
        """Tell whether the Temporal connection uses TLS (as set, or implied by a TLS option)."""
        if self.temporal_tls is not None:
            return self.temporal_tls
        return any(
            value is not None
            for value in (
                self.temporal_tls_ca_path,
                self.temporal_tls_cert_path,
                self.temporal_tls_server_name,
                self.temporal_api_key,
            )
        )

    def owner_settings(self) -> Settings:
        """Return these settings connecting as the schema owner (AWFDRS_MIGRATION_DATABASE_URL)."""
        owner_url = self.migration_database_url or self.database_url
        return self.model_copy(update={"database_url": owner_url})

    # Fairness: caps per tenant (each tenant may override them through PATCH /tenants/{id}).
    tenant_max_open_incidents: int = Field(default=1000, ge=1)
    tenant_max_new_incidents_per_minute: int = Field(default=600, ge=1)
    tenant_max_concurrent_callbacks: int = Field(default=50, ge=1)
    # Internal networks (CIDRs) outbound calls may reach although the egress guard refuses
    # loopback, private, link-local, CGNAT and other non-public addresses; unset: 127.0.0.0/8
    # and ::1 in development, none in production.
    allowed_callback_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("allowed_callback_networks", mode="before")
    @classmethod
    def _parse_networks(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("allowed_callback_networks")
    @classmethod
    def _networks_are_cidrs(cls, value: list[str]) -> list[str]:
        # Imported here: rules.egress pulls in httpx, which settings' other users never need.
        from rules.addresses import parse_network

        return [str(parse_network(network)) for network in value]

    @model_validator(mode="after")
    def _development_networks(self) -> Settings:
        if self.env == "development" and not self.allowed_callback_networks:
            self.allowed_callback_networks = ["127.0.0.0/8", "::1/128"]
        return self

    # AES-256-GCM key sealing signing secrets and escalation credentials in PostgreSQL:
    # `[<key id>:]<base64 of 32 bytes>`. The API and the worker refuse to start without it.
    secret_key: SecretStr | None = None
    # Earlier keys (comma-separated, same form), still opened until `awfdrs secrets rotate`.
    secret_keys_previous: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)

    @field_validator("secret_keys_previous", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("secret_key")
    @classmethod
    def _aes_key(cls, value: SecretStr | None) -> SecretStr | None:
        # Imported here: the box pulls in `cryptography`, which most settings users never need.
        from models.secret_box import parse_key

        if value is not None:
            parse_key(value.get_secret_value())
        return value

    @field_validator("secret_keys_previous")
    @classmethod
    def _previous_aes_keys(cls, value: list[SecretStr], info: ValidationInfo) -> list[SecretStr]:
        from models.secret_box import parse_key

        current = info.data.get("secret_key")
        keys = [*([current] if current else []), *value]
        ids = [parse_key(key.get_secret_value()).key_id for key in keys]
        if len(ids) != len(set(ids)):
            raise ValueError(f"repeats a key id (of {ENV_PREFIX}SECRET_KEY or another key)")
        return value

    def require_secret_key(self) -> str:
        """Return the secret key, or fail naming the variable that must be set."""
        if self.secret_key is None:
            raise SettingsError(
                f"{ENV_PREFIX}SECRET_KEY: must be set: it encrypts signing secrets and "
                "escalation credentials at rest (base64 of 32 random bytes, e.g. "
                "`openssl rand -base64 32`; `awfdrs up` keeps one in its data dir)"
            )
        return self.secret_key.get_secret_value()

    @field_validator("ai_mode")
    @classmethod
    def _only_mock_ai(cls, value: str) -> str:
        if value != "mock":
            raise ValueError(f"only 'mock' is supported (got {value!r}); no real model is wired in")
        return value

    @field_validator("allowed_callback_hosts", mode="before")
    @classmethod
    def _parse_hosts(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("allowed_callback_hosts")
    @classmethod
    def _hosts_are_entries(cls, value: list[str]) -> list[str]:
        from rules.egress_lists import parse_entry  # see _networks_are_cidrs

        # `host`, `*.example.com`, `host:port` or `http://host`: never a URL with a path.
        return [str(parse_entry(host)) for host in value]

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"postgresql", "postgres", "postgresql+asyncpg"}:
            raise ValueError(f"must be a postgresql:// URL (got scheme {parts.scheme!r})")
        if not parts.hostname and "host=" not in parts.query:
            raise ValueError("must name a host")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"redis", "rediss", "unix"}:
            raise ValueError(f"must be a redis://, rediss:// or unix:// URL (got {parts.scheme!r})")
        return value

    @property
    def dispatcher_mode(self) -> Literal["inline", "process", "off"]:
        """Where the outbox dispatcher runs, with AWFDRS_DISPATCHER_ENABLED=false meaning off."""
        if self.dispatcher is not None:
            return self.dispatcher
        return "inline" if self.dispatcher_enabled else "off"

    @field_validator("temporal_address", "worker_metrics_address", "dispatcher_metrics_address")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"must be host:port (got {value!r})")
        return value

    @field_validator("temporal_ui_url", "public_api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if urlsplit(value).scheme not in {"http", "https"}:
            raise ValueError(f"must be an http(s) URL (got {value!r})")
        return value.rstrip("/")

    @field_validator("admin_token")
    @classmethod
    def _strong_admin_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_ADMIN_TOKEN_LENGTH:
            raise ValueError(f"must be at least {MIN_ADMIN_TOKEN_LENGTH} characters")
        return value

    @field_validator("oidc_jwks_url")
    @classmethod
    def _oidc_all_or_nothing(cls, value: str | None, info: ValidationInfo) -> str | None:
        named = {"ISSUER": info.data.get("oidc_issuer"), "AUDIENCE": info.data.get("oidc_audience")}
        if value is None and not any(named.values()):
            return None
        missing = [f"{ENV_PREFIX}OIDC_{name}" for name, given in named.items() if not given]
        if value is None or missing:
            raise ValueError(
                "OIDC needs AWFDRS_OIDC_ISSUER, AWFDRS_OIDC_AUDIENCE and AWFDRS_OIDC_JWKS_URL"
            )
        if urlsplit(value).scheme not in {"http", "https"}:
            raise ValueError(f"must be an http(s) URL (got {value!r})")
        return value

    @property
    def oidc_enabled(self) -> bool:
        """Tell whether bearer JWTs are accepted beside API keys."""
        return self.oidc_jwks_url is not None

    @model_validator(mode="after")
    def _development_defaults(self) -> Settings:
        if self.env == "development" and not self.allowed_callback_hosts:
            self.allowed_callback_hosts = list(DEV_CALLBACK_HOSTS)
        return self

    @property
    def async_database_url(self) -> str:
        """Return the database URL with the asyncpg driver SQLAlchemy needs."""
        scheme, _, rest = self.database_url.partition("://")
        return (
            f"postgresql+asyncpg://{rest}" if scheme != "postgresql+asyncpg" else self.database_url
        )

    @property
    def plain_database_url(self) -> str:
        """Return the database URL as libpq and asyncpg spell it."""
        return "postgresql://" + self.database_url.partition("://")[2]

    def require_admin_token(self) -> str:
        """Return the admin token, or fail naming the variable that must be set."""
        if self.admin_token is None:
            raise SettingsError(f"{ENV_PREFIX}ADMIN_TOKEN: must be set to use admin routes")
        return self.admin_token.get_secret_value()


def load_settings(**overrides: object) -> Settings:
    """Build `Settings`, turning validation errors into one message naming each variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            reason = error["msg"].removeprefix("Value error, ")
            lines.append(f"{ENV_PREFIX}{field.upper()}: {reason}")
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from None
