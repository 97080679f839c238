"""Request limits enforced before any route runs (pure ASGI middleware): the body size (`ROR_MAX_BODY_BYTES`,
default 10 MB → 413) and the nesting depth of JSON bodies (`ROR_MAX_JSON_DEPTH`, default 64 → 400). Rejections
are OperationOutcomes, so an oversized or deeply nested body never reaches a parser or a recursive walker."""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from itertools import accumulate
from typing import Any

import orjson

from ror.errors import InvalidRequest, Issue
from ror.fhir.asgi import header, replaying
from ror.fhir.responses import outcome_response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_MAX_BODY = 10 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64  # a FHIR resource of the ROR nests ~10 levels (extension in extension in a CodeableConcept)
BODY_METHODS = {"POST", "PUT", "PATCH"}
# a JSON string, the loop unrolled (runs of plain characters matched at once): 3.8x faster than one alternation
# per character on a 93 kB bulk feed (1.5 vs 5.8 ms), same matches
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_DEPTH_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[{]}")
_CONTROL_ESCAPE = re.compile(rb"\\u00[01][0-9a-fA-F]")  # a control character written as an escape
_ALLOWED_CONTROLS = {"\t", "\n", "\r"}


def control_character_path(value: Any, path: str = "") -> str | None:
    """Where a string (key or value) holds a control character other than tab, CR, LF — FHIR forbids them
    (datatypes: string) and PostgreSQL cannot store NUL in text; None when there is none."""
    if isinstance(value, str):
        return path or "body" if any(c < " " and c not in _ALLOWED_CONTROLS for c in value) else None
    if isinstance(value, dict):
        for k, v in value.items():
            where = f"{path}.{k}" if path else str(k)
            if control_character_path(k, where):
                return where
            if found := control_character_path(v, where):
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if found := control_character_path(v, f"{path}[{i}]"):
                return found
    return None


def json_depth(body: bytes) -> int:
    """Maximum nesting depth of arrays/objects in a JSON text (strings ignored); C-speed passes but the final
    running sum, which is over brackets only."""
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS).translate(_DEPTH_STEP)
    return max(accumulate(1 if b == 1 else -1 for b in brackets), default=0)


_PAIRED = bytes.maketrans(b"[{]}", b"(())")  # one kind of bracket: pairs removed by bytes.replace


def too_deep(body: bytes, limit: int) -> bool:
    """`json_depth(body) > limit`, fast on well-formed bodies: each pass removes the innermost bracket pairs
    (C speed), so a balanced text of depth d empties in d passes — no per-bracket Python loop (that loop was 6 %
    of a 50-entry bulk feed's CPU). Anything else (unbalanced, deeper than the limit) is decided exactly."""
    brackets = _STRING.sub(b"", body).translate(_PAIRED, _NOT_BRACKETS)
    for _ in range(limit):
        if not brackets:
            return False
        shorter = brackets.replace(b"()", b"")
        if len(shorter) == len(brackets):
            break
        brackets = shorter
    return bool(brackets) and json_depth(body) > limit


def _is_json(scope: Scope) -> bool:
    return "json" in header(scope, b"content-type").lower()


def _content_length(scope: Scope) -> int | None:
    try:
        return int(header(scope, b"content-length"))
    except ValueError:  # absent or not a number
        return None


class BodyLimits:
    """413 for a body over `max_body` bytes (announced or streamed), 400 for JSON nested deeper than
    `max_depth`. JSON bodies of writes are buffered (they are read whole by the routes anyway); other bodies
    (forms) stream through a counting receive."""

    def __init__(self, app: ASGIApp, max_body: int | None = None, max_depth: int | None = None) -> None:
        self.app = app
        self.max_body = (
            max_body if max_body is not None else int(os.environ.get("ROR_MAX_BODY_BYTES", DEFAULT_MAX_BODY))
        )
        self.max_depth = (
            max_depth if max_depth is not None else int(os.environ.get("ROR_MAX_JSON_DEPTH", DEFAULT_MAX_DEPTH))
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_body:
            await self._reject(scope, receive, send, 413, "too-costly", f"body larger than {self.max_body} bytes")
            return
        if not _is_json(scope):
            await self.app(scope, self._counting(receive), send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self._reject(scope, receive, send, 413, "too-costly", f"body larger than {self.max_body} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if too_deep(body, self.max_depth):
            await self._reject(
                scope, receive, send, 400, "too-costly", f"JSON nested deeper than {self.max_depth} levels"
            )
            return
        if _CONTROL_ESCAPE.search(body):  # rare: look closer (the depth is bounded, so is the recursion)
            try:
                where = control_character_path(orjson.loads(body))
            except orjson.JSONDecodeError:
                where = None  # the route's parser reports invalid JSON
            if where is not None:
                await self._reject(
                    scope, receive, send, 400, "invalid", "strings must not contain control characters", where
                )
                return
        await self.app(scope, replaying(body, receive), send)

    def _counting(self, receive: Receive) -> Receive:
        size = 0
        limit = self.max_body

        async def counted() -> Message:
            nonlocal size
            message = await receive()
            size += len(message.get("body", b""))
            if size > limit:
                raise InvalidRequest(
                    f"body larger than {limit} bytes", status=413, code="too-costly", expression="body"
                )
            return message

        return counted

    async def _reject(
        self, scope: Scope, receive: Receive, send: Send, status: int, code: str, text: str, where: str = "body"
    ) -> None:
        issue = Issue("error", code, text, [where])
        response = outcome_response(status, [issue], headers={"Connection": "close"})
        await response(scope, receive, send)


def install(app: Any) -> None:
    """Add the limits as the outermost middleware of a Starlette/FastAPI app."""
    app.add_middleware(BodyLimits)
