"""The audit trail as FHIR `AuditEvent` (read-only), for administrators' programs:

    GET /fhir/AuditEvent?date=ge2026-11-01&agent=person:cadre@ch.fr&entity=Location/loc-1&outcome=4&_count=50
    GET /fhir/AuditEvent/{id}

Built from the `audit_event` table (every write, login, token request and denied access). Who may read it: a
caller with access profile 1 whose token carries the `audit` scope — API clients listed in `ROR_AUDIT_CLIENTS`,
or external OpenID Connect tokens with the `ror:audit` scope (docs/access.md). Anonymous callers get 401, others
a 403 OperationOutcome; every refusal is itself audited. Newest first, keyset paging (`_cursor`, Bundle link next)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from ror.access import audit
from ror.access.policy import Profile
from ror.access.rights import Forbidden, Unauthorized
from ror.access.tokens import ANONYMOUS, Caller
from ror.db.tables import audit_event
from ror.errors import InvalidRequest, NotFound
from ror.fhir.common import base_url, services
from ror.fhir.responses import FhirResponse
from ror.search.normalise import date_range, fhir_instant

router = APIRouter()
SEARCH_PARAMS = ("date", "agent", "entity", "outcome", "action", "_count", "_cursor", "_format")
OUTCOME_CODES = {"success": "0", "denied": "4", "error": "8"}
OUTCOME_OF_CODE = {v: k for k, v in OUTCOME_CODES.items()}
ACTION_CODES = {"create": "C", "update": "U", "patch": "U", "delete": "D"}
ACTOR_SYSTEM = "https://ror.invalid/fhir/sid/audit-actor"
ACTION_SYSTEM = "https://ror.invalid/fhir/CodeSystem/audit-action"
MAX_COUNT = 500
DCM = "http://dicom.nema.org/resources/ontology/DCM"
CAPABILITY: dict[str, Any] = {
    "type": "AuditEvent",
    "interaction": [{"code": "read"}, {"code": "search-type"}],
    "documentation": "The audit trail (writes, logins, token requests, denied accesses), newest first; profile 1 "
    "with the audit scope only (docs/access.md)",
    "searchParam": [
        {"name": n, "type": t}
        for n, t in (("date", "date"), ("agent", "token"), ("entity", "reference"), ("outcome", "token"))
    ],
}


def _caller(request: Request) -> Caller:
    return getattr(request.state, "caller", ANONYMOUS)


def _require_auditor(request: Request) -> None:
    caller = _caller(request)
    if caller.kind == "anonymous":
        raise Unauthorized("the audit trail needs an access token (POST /oauth/token)")
    if caller.profile != Profile.ALL or "audit" not in caller.scopes:
        audit.record(
            services(request).engine,
            actor_type=caller.kind,
            actor_id=caller.subject,
            action="read",
            outcome="denied",
            res_type="AuditEvent",
            remote_addr=request.client.host if request.client else None,
            detail="AuditEvent needs profile 1 and the audit scope",
        )
        raise Forbidden("reading AuditEvent is reserved to administrators (profile 1 with the audit scope)")


def audit_event_resource(row: audit.AuditRow, base: str) -> dict[str, Any]:
    rest = row.action in ACTION_CODES
    login = row.action in ("login", "token")
    res: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(row.pk),
        "type": (
            {
                "system": "http://dicom.nema.org/resources/ontology/DCM",
                "code": "110114",
                "display": "User Authentication",
            }
            if login
            else {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"}
        ),
        "subtype": [
            {"system": "http://hl7.org/fhir/restful-interaction", "code": row.action}
            if rest
            else {"system": ACTION_SYSTEM, "code": row.action}
        ],
        "action": ACTION_CODES.get(row.action, "E"),
        "recorded": fhir_instant(row.recorded),
        "outcome": OUTCOME_CODES.get(row.outcome, "8"),
        "agent": [
            {
                "type": {"text": row.actor_type},
                "who": (
                    {"identifier": {"system": ACTOR_SYSTEM, "value": row.actor_id}, "display": row.actor_id}
                    if row.actor_id
                    else {"display": row.actor_type}
                ),
                "requestor": True,
                **({"network": {"address": row.remote_addr, "type": "2"}} if row.remote_addr else {}),
            }
        ],
        "source": {"observer": {"display": "ROR"}, "site": base},
    }
    if row.detail:
        res["outcomeDesc"] = row.detail
    if row.res_type:
        what = f"{row.res_type}/{row.res_id}" if row.res_id else row.res_type
        if row.version_id:
            what += f"/_history/{row.version_id}"
        res["entity"] = [{"what": {"reference": what}}]
    return res


def _dates(values: list[str]) -> tuple[datetime | None, datetime | None]:
    """The [since, until) window of AND-ed `date` criteria (prefixes eq, ge, gt, le, lt, sa, eb)."""
    since: datetime | None = None
    until: datetime | None = None
    for raw in values:
        prefix, value = (raw[:2], raw[2:]) if raw[:2].isalpha() else ("eq", raw)
        try:
            low, high = date_range(value)
        except ValueError as exc:
            raise InvalidRequest(f"date: {exc}", expression="date") from exc
        after = high + timedelta(microseconds=1)
        lo, hi = {
            "eq": (low, after),
            "ge": (low, None),
            "gt": (after, None),
            "sa": (after, None),
            "le": (None, after),
            "lt": (None, low),
            "eb": (None, low),
        }.get(prefix, (None, None))
        if prefix not in ("eq", "ge", "gt", "sa", "le", "lt", "eb"):
            raise InvalidRequest(f"date prefix {prefix!r} is not supported", expression="date")
        if lo is not None:
            since = lo if since is None else max(since, lo)
        if hi is not None:
            until = hi if until is None else min(until, hi)
    return since, until


def _query(request: Request) -> audit.AuditQuery:
    items = list(request.query_params.multi_items())
    crit: dict[str, Any] = {"limit": 50}
    dates: list[str] = []
    for name, value in items:
        if name not in SEARCH_PARAMS:
            raise InvalidRequest(
                f"unknown search parameter {name!r} for AuditEvent ({', '.join(SEARCH_PARAMS[:5])})", expression=name
            )
        if name == "date":
            dates.append(value)
        elif name == "agent":
            crit["actor"] = value.rpartition("|")[2] or None
        elif name == "entity":
            rt, _, rid = value.rpartition("/")
            if rt and "/" in rt:  # Location/x/_history/2: the resource
                rt, rid = rt.split("/")[0], rt.split("/")[1]
            crit["res_type"], crit["res_id"] = (rt or None), rid or None
        elif name == "outcome":
            code = value.rpartition("|")[2]
            if code not in OUTCOME_OF_CODE:
                raise InvalidRequest("outcome is 0 (success), 4 (denied) or 8 (error)", expression="outcome")
            crit["outcome"] = OUTCOME_OF_CODE[code]
        elif name == "action":
            crit["action"] = value.rpartition("|")[2] or None
        elif name in ("_count", "_cursor"):
            if not value.isdigit():
                raise InvalidRequest(f"{name} is a number", expression=name)
            if name == "_count":
                crit["limit"] = max(1, min(int(value), MAX_COUNT))
            else:
                crit["before"] = int(value)
    crit["since"], crit["until"] = _dates(dates)
    return audit.AuditQuery(**crit)


@router.get("/fhir/AuditEvent", tags=["audit"], summary="Search the audit trail (administrators)")
async def search(request: Request) -> FhirResponse:
    await run_in_threadpool(_require_auditor, request)
    query = _query(request)

    def run() -> tuple[list[audit.AuditRow], int | None]:
        with services(request).store.read_conn() as conn:
            return audit.search(conn, query)

    rows, cursor = await run_in_threadpool(run)
    base = base_url(request)
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "_cursor"]
    links = [{"relation": "self", "url": f"{base}/AuditEvent" + (f"?{request.url.query}" if request.url.query else "")}]
    if cursor is not None:
        links.append({"relation": "next", "url": f"{base}/AuditEvent?{urlencode([*params, ('_cursor', cursor)])}"})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "link": links}
    if rows:
        bundle["entry"] = [
            {
                "fullUrl": f"{base}/AuditEvent/{r.pk}",
                "resource": audit_event_resource(r, base),
                "search": {"mode": "match"},
            }
            for r in rows
        ]
    return FhirResponse(bundle)


@router.get("/fhir/AuditEvent/{event_id}", tags=["audit"], summary="Read one audit event (administrators)")
async def read(request: Request, event_id: str) -> FhirResponse:
    await run_in_threadpool(_require_auditor, request)
    if not event_id.isdigit():
        raise NotFound(f"AuditEvent/{event_id} is not known")

    def run() -> Any:
        with services(request).store.read_conn() as conn:
            return conn.execute(select(audit_event).where(audit_event.c.pk == int(event_id))).first()

    row = await run_in_threadpool(run)
    if row is None:
        raise NotFound(f"AuditEvent/{event_id} is not known")
    found = audit.AuditRow(**{k: getattr(row, k) for k in audit.AuditRow.__dataclass_fields__})
    return FhirResponse(audit_event_resource(found, base_url(request)))
