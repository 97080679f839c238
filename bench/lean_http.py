"""A lean HTTP/1.1 keep-alive client for load generation (asyncio streams, no per-request object graph).

The capacity benchmark runs its load generator on the same 2 cores as the server and PostgreSQL. httpx cost
~2.4 ms of CPU per request there (URL and header models, cookie jar, auth and redirect machinery): a quarter of
the CPU a PATCH costs the server, taken from the system under test. This client writes the request bytes and reads
the status line, headers and body (Content-Length or chunked) — what a C load tool such as wrk does — so that the
figures measure the server. It is a benchmark tool, not a general client: no TLS, no redirects, no cookies."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass
class Response:
    status_code: int
    headers: dict[str, str]
    content: bytes


class LeanClient:
    """One keep-alive connection; requests are sent one after another (open one client per concurrent user)."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> LeanClient:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()

    async def request(self, method: str, path: str, body: bytes = b"") -> Response:
        assert self._reader is not None and self._writer is not None, "use `async with`"
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Length: {len(body)}\r\n"
        self._writer.write(head.encode() + self._fixed + b"\r\n" + body)
        status_line = await self._reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        headers: dict[str, str] = {}
        while True:
            line = await self._reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            content = await self._reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self._reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
            content = b"".join(parts)
        else:
            raise RuntimeError(f"{method} {path}: response without length")  # we never ask for Connection: close
        return Response(status, headers, content)
