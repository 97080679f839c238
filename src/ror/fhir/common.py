"""Shared pieces of the FHIR adapter: supported types, services access, headers."""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime

from fastapi import Request

from ror.errors import NotFound
from ror.services import Services

RESOURCE_TYPES = ("Organization", "HealthcareService", "Location", "Practitioner", "PractitionerRole", "Task")
JSON_PATCH = "application/json-patch+json"  # the media type that makes a PATCH body a JSON Patch


def media_type(content_type: str) -> str:
    """`application/json-patch+json; charset=utf-8` -> `application/json-patch+json`."""
    return content_type.split(";")[0].strip().lower()


def services(request: Request) -> Services:
    return request.app.state.services


def check_type(res_type: str) -> str:
    if res_type not in RESOURCE_TYPES:
        raise NotFound(
            f"resource type {res_type!r} is not served here (supported: {', '.join(RESOURCE_TYPES)})",
            expression=res_type,
        )
    return res_type


def http_date(dt: datetime) -> str:
    from datetime import UTC

    return format_datetime(dt.replace(tzinfo=UTC), usegmt=True)


def base_url(request: Request) -> str:
    """The FHIR base as the client sees it (honours the configured public base when set)."""
    configured = getattr(request.app.state, "public_fhir_base", None)
    if configured:
        return configured
    return str(request.base_url).rstrip("/") + "/fhir"
