"""Logs are JSON with request context and never carry secrets."""

from __future__ import annotations

import json
import logging

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext

from observability import REDACTED, JsonFormatter, correlation_id_var, redact, tenant_id_var


def test_secrets_are_redacted_by_key_and_by_shape() -> None:
    entry = {
        "Authorization": "Bearer abc.def",
        "headers": {"x-api-key": "k", "accept": "json"},
        "note": "used awf_AbCdEfGhIjKlMnOp and Bearer zzz",
        "dsn": "postgresql://user:hunter2@db/awfdrs",
        "items": [{"password": "p"}],
    }
    clean = redact(entry)
    assert clean["Authorization"] == REDACTED
    assert clean["headers"] == {"x-api-key": REDACTED, "accept": "json"}
    assert "awf_AbCd" not in clean["note"] and "zzz" not in clean["note"]
    assert "hunter2" not in clean["dsn"]
    assert clean["items"] == [{"password": REDACTED}]


def test_json_lines_carry_correlation_and_tenant_ids() -> None:
    correlation = correlation_id_var.set("corr-1")
    tenant = tenant_id_var.set("tenant-1")
    try:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("world",), None)
        record.api_key = "awf_secretsecretsecret"
        line = json.loads(JsonFormatter().format(record))
    finally:
        tenant_id_var.reset(tenant)
        correlation_id_var.reset(correlation)
    assert line["msg"] == "hello world"
    assert line["correlation_id"] == "corr-1"
    assert line["tenant_id"] == "tenant-1"
    assert line["api_key"] == REDACTED


def test_json_lines_carry_the_current_span_ids_and_none_outside_a_span() -> None:
    span = NonRecordingSpan(
        SpanContext(
            trace_id=0x0AF7651916CD43DD8448EB211C80319C, span_id=0xB7AD6B7169203331, is_remote=False
        )
    )
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "inside", (), None)
    with trace.use_span(span):
        inside = json.loads(JsonFormatter().format(record))
    outside = json.loads(JsonFormatter().format(record))
    assert inside["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert inside["span_id"] == "b7ad6b7169203331"
    assert "trace_id" not in outside and "span_id" not in outside
