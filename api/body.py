"""Reading request bodies with a hard size cap, before any parsing."""

from __future__ import annotations

from fastapi import Request

from api.errors import AwfdrsError, PayloadTooLarge


class UnsupportedMediaType(AwfdrsError):
    """The body is not JSON."""

    status = 415
    title = "Unsupported media type"


async def read_json_body(request: Request, limit: int) -> bytes:
    """Return the raw JSON body, refusing bodies over `limit` bytes without buffering them."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
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
