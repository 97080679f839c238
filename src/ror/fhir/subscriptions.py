"""FHIR Subscriptions over HTTP (R4 + backport IG conventions, docs/subscriptions.md):

    POST   /fhir/Subscription                 create (201, status `requested` until the handshake is delivered)
    GET    /fhir/Subscription                 the caller's subscriptions (searchset)
    GET    /fhir/Subscription/{id}            read (owner only; others get 404)
    DELETE /fhir/Subscription/{id}            delete (outbox rows go with it)
    GET    /fhir/Subscription/{id}/$status    SubscriptionStatus + pending/delivered counts + the error log

Authenticated clients only (401 otherwise)."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ror.access.tokens import ANONYMOUS, Caller
from ror.config import get_settings
from ror.fhir.capacity import read_json
from ror.fhir.common import base_url, services
from ror.fhir.responses import FhirResponse
from ror.search.normalise import fhir_instant
from ror.subscriptions.delivery import Deliverer, DeliveryWorker
from ror.subscriptions.model import STATUS_PROFILE, Subscription

router = APIRouter()


def _caller(request: Request) -> Caller:
    return getattr(request.state, "caller", ANONYMOUS)


def _resource(request: Request, sub: Subscription) -> dict[str, Any]:
    return sub.resource(base_url(request))


@router.post("/fhir/Subscription", tags=["subscriptions"], summary="Create a rest-hook subscription")
async def create(request: Request) -> Response:
    body = await read_json(request)
    svc = services(request)
    sub = await run_in_threadpool(svc.subscriptions.create, _caller(request), body)
    worker = getattr(request.app.state, "subscription_worker", None)
    if worker is not None:
        worker.wake()  # the handshake goes out now rather than at the next poll
    return FhirResponse(
        _resource(request, sub),
        status_code=201,
        headers={"Location": f"{base_url(request)}/Subscription/{sub.id}", "ETag": 'W/"1"'},
    )


@router.get("/fhir/Subscription", tags=["subscriptions"], summary="The caller's subscriptions")
def search(request: Request) -> FhirResponse:
    subs = services(request).subscriptions.list(_caller(request))
    base = base_url(request)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(subs),
        "link": [{"relation": "self", "url": f"{base}/Subscription"}],
    }
    if subs:
        bundle["entry"] = [
            {"fullUrl": f"{base}/Subscription/{s.id}", "resource": s.resource(base), "search": {"mode": "match"}}
            for s in subs
        ]
    return FhirResponse(bundle)


@router.get("/fhir/Subscription/{sub_id}/$status", tags=["subscriptions"], summary="Subscription status")
def status(request: Request, sub_id: str) -> FhirResponse:
    report = services(request).subscriptions.status(_caller(request), sub_id)
    sub = report.subscription
    base = base_url(request)
    params: list[dict[str, Any]] = [
        {"name": "subscription", "valueReference": {"reference": f"{base}/Subscription/{sub.id}"}},
        {"name": "topic", "valueCanonical": sub.topic or sub.criteria},
        {"name": "status", "valueCode": sub.status},
        {"name": "type", "valueCode": "query-status"},
        {"name": "events-since-subscription-start", "valueString": str(sub.events)},
    ]
    for e in report.errors:
        text = f"{fhir_instant(e['at'])} essai {e['attempt']}"
        text += f" (événement {e['event_number']})" if e["event_number"] is not None else ""
        params.append({"name": "error", "valueCodeableConcept": {"text": f"{text} : {e['error']}"}})
    # Parameters carries no extension: the outbox figures are parameters of our own (prefixed ror-)
    params += [
        {"name": "ror-pending", "valueInteger": report.pending},
        {"name": "ror-delivered", "valueInteger": report.delivered},
        {"name": "ror-expired", "valueInteger": report.expired},
        {"name": "ror-consecutive-failures", "valueInteger": sub.failures},
    ]
    if sub.retry_at is not None:
        params.append({"name": "ror-next-attempt", "valueInstant": fhir_instant(sub.retry_at)})
    status_res = {
        "resourceType": "Parameters",
        "id": sub.id,
        "meta": {"profile": [STATUS_PROFILE]},
        "parameter": params,
    }
    return FhirResponse(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": 1,
            "entry": [{"fullUrl": f"urn:uuid:{sub.id}", "resource": status_res, "search": {"mode": "match"}}],
        }
    )


@router.get("/fhir/Subscription/{sub_id}", tags=["subscriptions"], summary="Read a subscription")
def read(request: Request, sub_id: str) -> FhirResponse:
    return FhirResponse(_resource(request, services(request).subscriptions.get(_caller(request), sub_id)))


@router.delete("/fhir/Subscription/{sub_id}", tags=["subscriptions"], summary="Delete a subscription")
def remove(request: Request, sub_id: str) -> Response:
    services(request).subscriptions.delete(_caller(request), sub_id)
    return Response(status_code=204)


def install_subscriptions(app: FastAPI) -> None:
    """Start the delivery worker with the server (one per process; `ROR_SUBSCRIPTION_WORKER=0` turns it off,
    e.g. for a read-only replica) and stop it on shutdown."""

    def start() -> None:
        if os.environ.get("ROR_SUBSCRIPTION_WORKER", "1") == "0":
            return
        svc = app.state.services
        base = getattr(app.state, "public_fhir_base", None) or get_settings().fhir_base
        worker = DeliveryWorker(Deliverer(svc.store, base))
        app.state.subscription_worker = worker
        worker.start()

    def stop() -> None:
        worker = getattr(app.state, "subscription_worker", None)
        if worker is not None:
            worker.stop()
            worker.deliverer.close()
            app.state.subscription_worker = None

    app.router.on_startup.append(start)
    app.router.on_shutdown.append(stop)


def regional_capabilities() -> list[dict[str, Any]]:
    """CapabilityStatement entries of the regional modules (Subscription, Flag for TES, MeasureReport)."""
    backport = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription"
    return [
        {
            "type": "Subscription",
            "supportedProfile": [backport],
            "interaction": [{"code": c} for c in ("create", "read", "delete", "search-type")],
            "documentation": "rest-hook only; criteria Location|HealthcareService|Organization?<any search> or "
            "Flag|MeasureReport?_tag=…; payload empty|id-only|full-resource; retries for 25 h; $status",
            "operation": [
                {
                    "name": "status",
                    "definition": "http://hl7.org/fhir/uv/subscriptions-backport/"
                    "OperationDefinition/backport-subscription-status",
                }
            ],
        },
        {
            "type": "Flag",
            "interaction": [{"code": c} for c in ("create", "update", "read", "search-type")],
            "documentation": "Tension en établissement (TES): category tension-es, code = level 1..4, "
            "subject = the establishment (docs/tension.md)",
            "searchParam": [
                {"name": n, "type": t}
                for n, t in (("subject", "reference"), ("_tag", "token"), ("status", "token"), ("code", "token"))
            ],
        },
        {
            "type": "MeasureReport",
            "interaction": [{"code": c} for c in ("create", "read", "search-type")],
            "documentation": "Emergency-department activity, measure https://ror.invalid/fhir/Measure/"
            "urgences-activite (docs/urgences.md); $dgos-daily: docs/reports.md",
            "searchParam": [
                {"name": n, "type": t}
                for n, t in (("subject", "reference"), ("_tag", "token"), ("date", "date"), ("measure", "uri"))
            ],
        },
    ]
