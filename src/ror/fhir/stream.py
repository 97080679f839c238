"""Server-Sent Events: every accepted capacity change, filtered by territory and by what the caller may see.

    GET /api/capacity/stream?departement=35&region=53&location=loc-…   (Accept: text/event-stream)

Each event: `event: capacity`, `data: {"location", "key", "before", "after", "updated_at", "received_at",
"region", "departement", "version"}`; a comment line every 15 s keeps proxies from closing the stream."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from ror.access.context import contexts
from ror.access.policy import RULES, Profile, visible
from ror.access.rights import Unauthorized
from ror.access.tokens import ANONYMOUS
from ror.capacity.stream import Subscription, follow
from ror.db.tables import resource
from ror.fhir.access import caller_profile
from ror.fhir.common import services
from ror.tension.service import READ_PROFILES as TENSION_PROFILES

router = APIRouter()


def _matches(change: dict[str, Any], filters: dict[str, str | None]) -> bool:
    return all(v is None or change.get(k) == v for k, v in filters.items())


class _Visibility:
    """Caches, per Location, whether the caller may see its capacity (sensitive units)."""

    def __init__(self, request: Request, profile: Profile) -> None:
        self.request, self.profile, self.cache = request, profile, {}

    def location_visible(self, location_id: str) -> bool:
        if location_id not in self.cache:
            engine = services(self.request).engine
            with engine.connect() as c:
                pk = c.execute(
                    select(resource.c.pk).where(resource.c.res_type == "Location", resource.c.res_id == location_id)
                ).scalar()
                ok = pk is not None and visible(self.profile, contexts(c, [(pk, "Location", location_id)])[pk])
            self.cache[location_id] = ok
        return self.cache[location_id]


@router.get("/api/capacity/stream", tags=["capacity"], summary="Live capacity changes (Server-Sent Events)")
async def capacity_stream(
    request: Request, departement: str | None = None, region: str | None = None, location: str | None = None
) -> StreamingResponse:
    caller = getattr(request.state, "caller", ANONYMOUS)
    profile = caller_profile(request)
    statuses = RULES[profile].capacity
    if caller.kind == "anonymous" and statuses is not None and not statuses:
        raise Unauthorized("the capacity stream needs an access token (POST /oauth/token)")
    filters = {"departement": departement, "region": region, "location": location}
    vis = _Visibility(request, profile)

    def render(sub: Subscription, change: dict[str, Any]) -> bytes | None:
        out = b""
        if sub.dropped:
            out = f"event: dropped\ndata: {sub.dropped}\n\n".encode()
            sub.dropped = 0
        if not _matches(change, filters):
            return out or None
        if change.get("kind") == "tension":  # TES declarations (docs/tension.md): regulation profiles only
            if profile not in TENSION_PROFILES:
                return out or None
            return out + b"event: tension\ndata: " + orjson.dumps(change) + b"\n\n"
        if statuses is not None and change["key"]["status"] not in statuses:
            return out or None
        if not RULES[profile].sensitive_units and not vis.location_visible(change["location"]):
            return out or None
        return out + b"event: capacity\ndata: " + orjson.dumps(change) + b"\n\n"

    events = follow(request.app.state.capacity_broker, request.is_disconnected, render)
    return StreamingResponse(
        events, media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
