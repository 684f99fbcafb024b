"""Reading request bodies with a hard size cap, before any parsing."""

from __future__ import annotations

from fastapi import Request

from api.errors import AwfdrsError, PayloadTooLarge


class UnsupportedMediaType(AwfdrsError):
    """The body is not JSON."""

    status = 415
    title = "Unsupported media type"


JSON = b"application/json"
# Routes whose bodies are not JSON by design (CloudEvents binary mode carries any media type).
ANY_MEDIA_TYPE = ("/api/v1/integrations/cloudevents",)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def require_json_body(request: Request) -> None:
    """Refuse a request body that is not JSON with 415, before validation reads it as text."""
    has_body = request.headers.get("content-length", "0") not in ("", "0") or (
        "transfer-encoding" in request.headers
    )
    if request.method not in ("POST", "PUT", "PATCH") or not has_body:
        return
    if request.url.path.startswith(ANY_MEDIA_TYPE):
        return
    media_type = _media_type(request)
    if media_type != "application/json" and not media_type.endswith("+json"):
        shown = f"{media_type!r}" if media_type else "no Content-Type"
        raise UnsupportedMediaType(f"send the body as application/json (got {shown})")


async def read_json_body(request: Request, limit: int) -> bytes:
    """Return the raw JSON body, refusing bodies over `limit` bytes without buffering them."""
    if _media_type(request) != "application/json":
        raise UnsupportedMediaType("send the body as application/json")
    return await read_body(request, limit)


async def read_body(request: Request, limit: int) -> bytes:
    """Return the raw body, refusing bodies over `limit` bytes without buffering them."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {limit}")
    size, chunks = 0, []
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
