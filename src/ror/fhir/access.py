"""Access glue of the FHIR adapter: who is calling (profile) and the filtering of every resource served."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from fastapi import Request

from ror.access.context import contexts
from ror.access.policy import Profile, filter_resource
from ror.fhir.common import services


def caller_profile(request: Request) -> Profile:
    """The caller's access profile: from the bearer token, else the instance's anonymous profile (0, open data,
    unless configured)."""
    caller = getattr(request.state, "caller", None)
    if caller is None or caller.kind == "anonymous":
        return request.app.state.anonymous_profile
    return caller.profile


def filtered_contents(
    request: Request, profile: Profile, rows: Sequence[tuple[int, str, str, str | bytes]]
) -> list[str | None]:
    """For (pk, res_type, res_id, content) rows (content as JSON text or UTF-8 bytes): the content the caller may
    see (None = hidden)."""
    if not rows:
        return []
    with services(request).engine.connect() as conn:
        ctx = contexts(conn, [(pk, rt, rid) for pk, rt, rid, _ in rows])
    out: list[str | None] = []
    for pk, _rt, _rid, content in rows:
        seen = filter_resource(orjson.loads(content), profile, ctx[pk])
        out.append(None if seen is None else orjson.dumps(seen).decode())
    return out
