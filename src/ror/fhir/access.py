"""Access glue of the FHIR adapter: who is calling (profile) and the filtering of every resource served."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import orjson
from fastapi import Request
from sqlalchemy import Connection

from ror.access.context import contexts
from ror.access.policy import Context, Profile, filter_resource
from ror.fhir.common import services

FILTERED_KEPT = 4096  # filtered resources kept (~7 kB each with their key: ~30 MB at most)


def caller_profile(request: Request) -> Profile:
    """The caller's access profile: from the bearer token, else the instance's anonymous profile (0, open data,
    unless configured)."""
    caller = getattr(request.state, "caller", None)
    if caller is None or caller.kind == "anonymous":
        return request.app.state.anonymous_profile
    return caller.profile


def filtered_contents(
    request: Request,
    profile: Profile,
    rows: Sequence[tuple[int, str, str, str | bytes]],
    conn: Connection | None = None,
) -> list[str | None]:
    """For (pk, res_type, res_id, content) rows (content as JSON text or UTF-8 bytes): the content the caller may
    see (None = hidden). `conn`: read the contexts there (a write's own transaction) instead of a new connection."""
    return [None if c is None else c.decode() for c in filtered_json(request, profile, rows, conn)]


def filtered_json(
    request: Request,
    profile: Profile,
    rows: Sequence[tuple[int, str, str, str | bytes]],
    conn: Connection | None = None,
) -> list[bytes | None]:
    """`filtered_contents` as UTF-8 JSON, ready for `orjson.Fragment`."""
    if not rows:
        return []
    keys = [(pk, rt, rid) for pk, rt, rid, _ in rows]
    if conn is not None:
        ctx = contexts(conn, keys)
    else:
        with services(request).engine.connect() as c:
            ctx = contexts(c, keys)  # read for every request
    return [_filtered(content, profile, ctx[pk]) for pk, _rt, _rid, content in rows]


@lru_cache(maxsize=FILTERED_KEPT)
def _filtered(content: str | bytes, profile: Profile, ctx: Context) -> bytes | None:
    """`content` as `profile` may see it (None = hidden). `filter_resource` is a pure function of the stored JSON,
    the profile and the resource's context, so its result is kept per exact key: a new version (other content) or
    a changed context (read from the database for every request) is another key. Parsing, filtering and
    re-serialising C1's 775 resources cost ~24 ms per request."""
    seen = filter_resource(orjson.loads(content), profile, ctx)
    return None if seen is None else orjson.dumps(seen)
