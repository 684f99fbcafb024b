"""A route that calls its endpoint directly when a request needs no dependency solving.

FastAPI solves every dependency of every request anew, and on `POST /events` that was about a
fifth of the API's CPU per event (docs/BENCHMARKS.md). The common request (a JSON body, no
query string, no optional header) needs none of what solving checks, so this route hands it
to a shortcut that builds the same arguments; any other request takes FastAPI's path. Errors
raised either way reach the app's handlers alike, and the OpenAPI document is unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.types import Scope

from api.body import JSON

Shortcut = Callable[[Request], Awaitable[Response]]


def plain_json_request(request: Request, *, without: tuple[bytes, ...] = ()) -> bool:
    """Tell whether a request carries a JSON body, no query string and none of `without`."""
    return plain_json_scope(request.scope, without=without)


def plain_json_scope(scope: Scope, *, without: tuple[bytes, ...] = ()) -> bool:
    """`plain_json_request` on the ASGI scope (api/intake_route.py asks before routing)."""
    if scope["query_string"] or scope.get("path_params"):
        return False
    media = b""
    for name, value in scope["headers"]:
        if name in without:
            return False
        if name == b"content-type":
            media = value.split(b";")[0].strip().lower()
    return media == JSON


class DirectRoute(APIRoute):
    """An APIRoute whose `shortcut` serves the requests `eligible` accepts (tracing off)."""

    shortcut: Shortcut
    eligible: Callable[[Request], bool]

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, bypassed for eligible requests."""
        solved = super().get_route_handler()
        shortcut, eligible = type(self).shortcut, type(self).eligible

        async def handler(request: Request) -> Response:
            # With tracing on, FastAPI's handler also records the operation's span.
            if request.app.state.tracing or not eligible(request):
                return await solved(request)
            return await shortcut(request)

        return handler


def direct_route(shortcut: Shortcut, eligible: Callable[[Request], bool]) -> type[DirectRoute]:
    """A DirectRoute class serving eligible requests with `shortcut`."""
    return type(
        "DirectRoute",
        (DirectRoute,),
        {"shortcut": staticmethod(shortcut), "eligible": staticmethod(eligible)},
    )


@dataclass(frozen=True)
class FrontRoute:
    """A route api/intake_route.py serves in front of FastAPI, for requests `eligible` accepts."""

    path: str  # the full path, with the API prefix
    endpoint: Callable[..., Any]  # the endpoint FastAPI's router would pick, checked at start
    shortcut: Shortcut
    eligible: Callable[[Scope], bool]
