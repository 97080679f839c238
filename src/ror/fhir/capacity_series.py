"""Capacity time series over HTTP (docs/capacity.md, "Time series"):

    GET /api/capacity/timeseries?level=departement&code=35&activity=rea-adulte&days=7&bucket=hour

`level`: location | etablissement (FINESS or Organization id) | departement | region | national; `activity`: a
critical-care family of the DGOS report (rea-adulte, rea-pediatrique, soins-intensifs, surveillance-continue);
`nature`: TRE_R329 (default 01 Lit); `until`: ISO date-time the window stops at (default now).

Access as the other capacity endpoints: an anonymous caller gets 401; a profile that sees no capacity (0) or only
médico-social capacity (3: aggregates mix sanitary units) gets 403; the others get the statuses their profile
shows (profile 2: no supplementary; 5: installed only), sensitive units left out unless the profile sees them."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ror.access.policy import RULES, Profile
from ror.access.rights import Forbidden, Unauthorized
from ror.capacity.timeseries import capacity_series
from ror.errors import InvalidRequest
from ror.fhir.access import caller_profile
from ror.fhir.common import services
from ror.search.normalise import date_range

router = APIRouter()


def _until(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return date_range(text)[0]
    except ValueError as exc:
        raise InvalidRequest(f"until: {exc}", expression="until") from exc


@router.get("/api/capacity/timeseries", tags=["capacity"], summary="Capacity time series (unit or aggregate)")
def timeseries(
    request: Request,
    level: str,
    code: str | None = None,
    activity: str | None = None,
    days: int = 7,
    bucket: str = "hour",
    nature: str = "01",
    until: str | None = None,
) -> JSONResponse:
    profile = caller_profile(request)
    rule = RULES[profile]
    if profile == Profile.MEDICO_SOCIAL or (rule.capacity is not None and not rule.capacity):
        caller = getattr(request.state, "caller", None)
        if caller is None or caller.kind == "anonymous":
            raise Unauthorized("capacity time series need an access token (POST /oauth/token)")
        raise Forbidden(f"access profile {int(profile)} may not see capacity time series")
    with services(request).engine.connect() as conn:
        series = capacity_series(
            conn,
            level,
            code,
            activity=activity,
            days=days,
            bucket=bucket,
            nature=nature,
            statuses=rule.capacity,
            include_sensitive=rule.sensitive_units,
            end=_until(until),
        )
    return JSONResponse(series.as_json(), headers={"Cache-Control": "no-store"})
