"""HTTP authentication: the OAuth2 client-credentials token endpoint and the bearer-token middleware.

Third-party programs: `POST /oauth/token` with `grant_type=client_credentials` and the client id/secret (form
fields or HTTP Basic) → `{"access_token", "token_type": "Bearer", "expires_in"}`; then
`Authorization: Bearer <token>` on every FHIR request. No token = anonymous (the instance's anonymous profile)."""

from __future__ import annotations

import base64
import math
import os
import time
from collections import defaultdict, deque

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ror.access import audit
from ror.access.clients import ClientRegistry
from ror.access.tokens import ANONYMOUS, Caller, TokenError, TokenService
from ror.errors import Issue
from ror.fhir.responses import outcome_response

router = APIRouter()
TOKEN_RATE = (20, 60.0)  # at most 20 token requests per client or address per minute
WRITE_RATE = (300, 60.0)  # at most 300 FHIR writes per client (or address when anonymous) per minute


class RateLimiter:
    """A sliding-window limiter kept in memory (per process)."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit, self.window = limit, window_s
        self.hits: dict[str, deque[float]] = defaultdict(deque)

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        q = self.hits[key]
        while q and q[0] <= now - self.window:
            q.popleft()
        if len(q) >= self.limit:
            return False
        q.append(now)
        return True

    def retry_after(self, key: str, now: float | None = None) -> int:
        """Whole seconds until `key` may be served again (at least 1)."""
        now = time.monotonic() if now is None else now
        q = self.hits.get(key)
        if not q:
            return 1
        return max(1, math.ceil(q[0] + self.window - now))


def write_rate() -> tuple[int, float]:
    """`ROR_WRITE_RATE` = "<writes>/<seconds>" per client (default 300/60)."""
    raw = os.environ.get("ROR_WRITE_RATE", "")
    count, _, seconds = raw.partition("/")
    if count.isdigit() and seconds.replace(".", "", 1).isdigit():
        return int(count), float(seconds)
    return WRITE_RATE


def is_write(method: str, path: str) -> bool:
    """A FHIR write: POST/PUT/PATCH/DELETE under /fhir (or the national feeders' path), except searches
    (`_search`) and operations (`$…`)."""
    if method not in ("POST", "PUT", "PATCH", "DELETE") or not (
        path == "/fhir" or path.startswith(("/fhir/", "/ws-synchro-dispo-lits-fhir/"))
    ):
        return False
    last = path.rstrip("/").rsplit("/", 1)[-1]
    return not (last.startswith("_search") or last.startswith("$"))


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="ror"'
    return JSONResponse({"error": error, "error_description": description}, status_code=status, headers=headers)


@router.post("/oauth/token", tags=["auth"], summary="OAuth2 client credentials → bearer token")
async def token(request: Request) -> JSONResponse:
    form = await request.form()
    client_id, secret = form.get("client_id"), form.get("client_secret")
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("basic "):
        try:
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        except Exception:
            return _oauth_error(400, "invalid_request", "malformed Basic authorization header")
    if form.get("grant_type") != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "only grant_type=client_credentials is supported")
    if not isinstance(client_id, str) or not isinstance(secret, str) or not client_id or not secret:
        return _oauth_error(400, "invalid_request", "client_id and client_secret are required")
    remote = request.client.host if request.client else "?"
    limiter: RateLimiter = request.app.state.token_limiter
    if not limiter.allow(f"id:{client_id}") or not limiter.allow(f"ip:{remote}"):
        return _oauth_error(429, "slow_down", "too many token requests; retry in a minute")
    engine = request.app.state.services.engine
    client = ClientRegistry(engine).authenticate(client_id, secret)
    if client is None:
        audit.record(
            engine, actor_type="client", actor_id=client_id, action="token", outcome="denied", remote_addr=remote
        )
        return _oauth_error(401, "invalid_client", "unknown client, wrong secret or disabled client")
    access_token, expires = request.app.state.tokens.issue(client)
    return JSONResponse(
        {"access_token": access_token, "token_type": "Bearer", "expires_in": expires},
        headers={"Cache-Control": "no-store"},
    )


def install_auth(app: object, tokens: TokenService) -> None:
    """Bearer-token middleware: sets request.state.caller; a bad token is a 401 OperationOutcome."""
    app.state.tokens = tokens  # type: ignore[attr-defined]
    app.state.token_limiter = RateLimiter(*TOKEN_RATE)  # type: ignore[attr-defined]
    app.state.write_limiter = RateLimiter(*write_rate())  # type: ignore[attr-defined]

    app.add_middleware(Authenticate, tokens=tokens)  # type: ignore[attr-defined]


SECURITY_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"))
SECURITY_HEADERS += ((b"referrer-policy", b"same-origin"),)


class Authenticate:
    """Pure ASGI middleware (a `BaseHTTPMiddleware` cost a task group and memory streams per request): sets
    `request.state.caller` from the bearer token (401 OperationOutcome for a bad one), applies the per-client write
    quota (429 + Retry-After) and adds the security headers to every response."""

    def __init__(self, app: ASGIApp, tokens: TokenService) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refused = self._refusal(request)
        if refused is not None:
            await refused(scope, receive, _secured(send))
            return
        await self.app(scope, receive, _secured(send))

    def _refusal(self, request: Request) -> Response | None:
        auth = request.headers.get("authorization", "")
        caller: Caller = ANONYMOUS
        if auth.lower().startswith("bearer "):
            try:
                caller = self.tokens.verify(auth[7:].strip())
            except TokenError as exc:
                return outcome_response(
                    401,
                    [Issue("error", "login", f"bearer token rejected: {exc}")],
                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
        request.state.caller = caller
        if is_write(request.method, request.scope["path"]):  # not request.url: it parses the whole URL
            limiter: RateLimiter = request.app.state.write_limiter
            who = caller.subject if caller.kind != "anonymous" and caller.subject else None
            key = f"{caller.kind}:{who}" if who else f"ip:{request.client.host if request.client else '?'}"
            if not limiter.allow(key):
                wait = limiter.retry_after(key)
                return outcome_response(
                    429,
                    [Issue("error", "throttled", f"too many writes: at most {limiter.limit} per {limiter.window:g} s")],
                    headers={"Retry-After": str(wait)},
                )
        return None


def _secured(send: Send) -> Send:
    async def send_secured(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers") or [])
            present = {name.lower() for name, _ in headers}
            headers += [(name, value) for name, value in SECURITY_HEADERS if name not in present]
            message = {**message, "headers": headers}
        await send(message)

    return send_secured
