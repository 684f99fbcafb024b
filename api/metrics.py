"""Prometheus metrics of the API process, on a registry of its own (one per app)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

DISPATCHER_ERROR_KINDS = ("pass", "crash", "temporal", "group", "dead_letter")
# (remediation, reason) of every way intake quiets an event (api/services/ingest.py,
# api/intake.py): each series exists from the start, so the first one counts in `increase()`.
QUIETED_KINDS = (
    ("suppressed", "kill_switch"),
    ("suppressed", "maintenance_window"),
    ("held", "maintenance_window"),
    ("deferred", "tenant_cap"),
)


class ApiMetrics:
    """Request, intake and outbox metrics, named by Prometheus conventions."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "awfdrs_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "awfdrs_http_request_duration_seconds",
            "HTTP request latency",
            ["route", "method"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.ingest = Counter(
            "awfdrs_ingest_events",
            "Events by intake outcome: accepted, duplicate, conflict, "
            "rate_limited, suppressed, held, deferred, rejected",
            ["outcome"],
            registry=self.registry,
        )
        self.quieted = Counter(
            "awfdrs_quieted_events",
            "Stored events whose remediation was suppressed, held or deferred, by reason: "
            "kill_switch, maintenance_window, tenant_cap",
            ["remediation", "reason"],
            registry=self.registry,
        )
        for remediation, reason in QUIETED_KINDS:
            self.quieted.labels(remediation, reason)
        self.signals = Counter(
            "awfdrs_dispatcher_signals",
            "Signals (with-start) sent to incident workflows",
            registry=self.registry,
        )
        self.dispatched = Counter(
            "awfdrs_dispatcher_events",
            "Events delivered from the outbox to incidents",
            registry=self.registry,
        )
        self.dispatcher_last_success = Gauge(
            "awfdrs_dispatcher_last_success_timestamp_seconds",
            "When the outbox dispatcher last completed a pass (Unix time)",
            registry=self.registry,
        )
        self.dispatcher_errors = Counter(
            "awfdrs_dispatcher_errors",
            "Dispatcher failures: pass (database), crash (task restarted), temporal (outage), "
            "group (one group's own failure), dead_letter (a group given up)",
            ["kind"],
            registry=self.registry,
        )
        for kind in DISPATCHER_ERROR_KINDS:  # every series exists (at 0) before its first error
            self.dispatcher_errors.labels(kind)
        self.open_incidents = Gauge(
            "awfdrs_open_incidents",
            "Incidents not yet closed, by status (read from PostgreSQL at scrape time)",
            ["status"],
            registry=self.registry,
        )
        self.outbox_depth = Gauge(
            "awfdrs_outbox_depth", "Events committed but not yet signalled", registry=self.registry
        )
        self.outbox_age = Gauge(
            "awfdrs_outbox_oldest_age_seconds",
            "Age of the oldest waiting outbox row",
            registry=self.registry,
        )

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one finished request."""
        self.requests.labels(route, method, str(status)).inc()
        self.request_seconds.labels(route, method).observe(seconds)
