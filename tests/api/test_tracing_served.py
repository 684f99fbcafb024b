"""`python -m api` traces when the OTEL_* variables ask: a request's span continues its caller."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx

from settings import Settings
from tests.api.served import served_api
from tests.conftest import TenantCredentials

TRACE_ID = uuid.uuid4().hex


def _span_names(log: Path) -> dict[str, str]:
    """Name → trace id of each span the console exporter wrote, once the request's is there."""
    for _ in range(100):
        text = log.read_text(errors="replace")
        if "GET /api/v1/incidents" in text:
            break
        time.sleep(0.1)
    decoder, spans, index = json.JSONDecoder(), {}, 0
    while (index := text.find('{\n    "name"', index)) >= 0:
        span, index = decoder.raw_decode(text, index)
        spans[span["name"]] = span["context"]["trace_id"]
    return spans


def test_the_api_process_exports_request_spans_in_the_callers_trace(
    settings: Settings, tenant: TenantCredentials, tmp_path: Path
) -> None:
    log = tmp_path / "api.log"
    # The console exporter prints each batch to the process's output, read from its log.
    with served_api(
        settings, log, OTEL_TRACES_EXPORTER="console", OTEL_BSP_SCHEDULE_DELAY="50"
    ) as api:
        headers = {**tenant.headers, "traceparent": f"00-{TRACE_ID}-{'1' * 16}-01"}
        answered = httpx.get(f"{api.url}/api/v1/incidents", headers=headers, timeout=10)
        assert answered.status_code == 200
        httpx.get(f"{api.url}/api/v1/health", timeout=10)
        spans = _span_names(log)
    assert spans["GET /api/v1/incidents"] == f"0x{TRACE_ID}"
    assert any(name.startswith("SELECT") for name in spans)  # asyncpg, in the same process
    assert not any("/health" in name for name in spans)  # probes stay untraced
