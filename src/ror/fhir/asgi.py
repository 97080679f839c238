"""Small ASGI helpers shared by the middlewares and the routes served outside FastAPI's router."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import SimpleNamespace

from fastapi import Request
from fastapi.responses import Response
from starlette.types import Message, Receive, Scope, Send

from ror.fhir.responses import error_response


def header(scope: Scope, name: bytes) -> str:
    """The value of a request header (lower-case `name`), "" when absent."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the already read `body` once, then whatever the client sends next (disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def answer(
    scope: Scope,
    receive: Receive,
    send: Send,
    route: str,
    path_params: dict[str, str],
    handler: Callable[[Request], Awaitable[Response]],
) -> None:
    """Serve a request outside FastAPI's router (the fast paths): labelled with its route template for the
    metrics and logs (ops), any exception answered as the app's exception handlers answer it."""
    scope["route"], scope["path_params"] = SimpleNamespace(path=route), path_params
    try:
        response = await handler(Request(scope, receive))
    except Exception as exc:
        response = error_response(exc)
    await response(scope, receive, send)
