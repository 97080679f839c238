"""The Subscription as stored (`subscription` table) and as exchanged (FHIR R4 + backport IG extensions)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from ror.errors import InvalidRequest, client_json
from ror.search.normalise import date_range, fhir_instant

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
EXT_CONTENT = BACKPORT + "backport-payload-content"
EXT_HEARTBEAT = BACKPORT + "backport-heartbeat-period"
EXT_FILTER = BACKPORT + "backport-filter-criteria"
EXT_TIMEOUT = BACKPORT + "backport-timeout"
NOTIFICATION_PROFILE = BACKPORT + "backport-subscription-notification-r4"
STATUS_PROFILE = BACKPORT + "backport-subscription-status-r4"
TOPIC_BASE = "https://ror.invalid/fhir/SubscriptionTopic/"
# The topics this server offers (backport form: Subscription.criteria = topic, filters in _criteria extensions).
TOPICS = {
    TOPIC_BASE + "location": "Location",
    TOPIC_BASE + "healthcareservice": "HealthcareService",
    TOPIC_BASE + "organization": "Organization",
    TOPIC_BASE + "tension": "Flag",
    TOPIC_BASE + "urgences": "MeasureReport",
}
STORE_TYPES = ("Location", "HealthcareService", "Organization")
MODULE_TYPES = ("Flag", "MeasureReport")  # written by ror.tension / ror.urgences, not by the store
CONTENTS = ("empty", "id-only", "full-resource")
REQUESTED, ACTIVE, ERROR, OFF = "requested", "active", "error", "off"
LIVE_STATUSES = (REQUESTED, ACTIVE, ERROR)
MIN_HEARTBEAT_S, MAX_HEARTBEAT_S = 10, 86400


@dataclass(frozen=True)
class Subscription:
    id: str
    status: str
    topic: str | None
    criteria: str
    res_type: str
    endpoint: str
    headers: tuple[str, ...]
    content: str
    heartbeat_s: int | None
    end_at: datetime | None
    reason: str | None
    owner: str
    profile: int
    events: int
    failures: int
    retry_at: datetime | None
    last_error: str | None
    last_delivered_at: datetime | None
    created_at: datetime

    @property
    def items(self) -> list[tuple[str, str]]:
        """The search parameters of the criteria (`Location?_tag=…|53` → [('_tag', '…|53')])."""
        return criteria_items(self.criteria)

    def resource(self, base: str) -> dict[str, Any]:
        """The FHIR R4 Subscription (backport conventions). Channel headers are never echoed back: they usually
        carry the receiver's credentials."""
        channel: dict[str, Any] = {
            "type": "rest-hook",
            "endpoint": self.endpoint,
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": EXT_CONTENT, "valueCode": self.content}]},
        }
        if self.heartbeat_s:
            channel["extension"] = [{"url": EXT_HEARTBEAT, "valueUnsignedInt": self.heartbeat_s}]
        res: dict[str, Any] = {
            "resourceType": "Subscription",
            "id": self.id,
            "meta": {"profile": [BACKPORT + "backport-subscription"]},
            "status": self.status,
            "reason": self.reason or "ROR",
            "criteria": self.topic or self.criteria,
            "channel": channel,
        }
        if self.topic:
            res["_criteria"] = {"extension": [{"url": EXT_FILTER, "valueString": self.criteria}]}
        if self.end_at:
            res["end"] = fhir_instant(self.end_at)
        if self.last_error and self.status in (ERROR, OFF):
            res["error"] = self.last_error[:500]
        return res


def criteria_items(criteria: str) -> list[tuple[str, str]]:
    return parse_qsl(criteria.partition("?")[2], keep_blank_values=True)


@dataclass(frozen=True)
class Spec:
    """What a client asks for, checked."""

    topic: str | None
    criteria: str
    res_type: str
    endpoint: str
    headers: tuple[str, ...]
    content: str
    heartbeat_s: int | None
    end_at: datetime | None
    reason: str | None


def _ext(holder: dict[str, Any] | None, url: str) -> dict[str, Any] | None:
    for e in (holder or {}).get("extension") or []:
        if e.get("url") == url:
            return e
    return None


def parse_instant(value: Any, expression: str) -> datetime:
    """A FHIR instant/dateTime as naive UTC (its first instant); InvalidRequest naming `expression` otherwise."""
    try:
        return date_range(str(value))[0]
    except ValueError as exc:
        raise InvalidRequest(f"{expression}: {exc}", expression=expression) from exc


@client_json("Subscription")
def parse_spec(res: dict[str, Any]) -> Spec:
    """Read a client's Subscription; InvalidRequest (with the FHIRPath of the problem) when it cannot be served."""
    if res.get("resourceType") != "Subscription":
        raise InvalidRequest("the body must be a Subscription", expression="Subscription")
    criteria = res.get("criteria")
    if not isinstance(criteria, str) or not criteria.strip():
        raise InvalidRequest("criteria is required", expression="Subscription.criteria")
    topic = None
    if criteria in TOPICS:
        topic = criteria
        filt = _ext(res.get("_criteria"), EXT_FILTER)
        criteria = TOPICS[topic] + "?" + (filt or {}).get("valueString", "").partition("?")[2]
    elif criteria.startswith(("http://", "https://")):
        raise InvalidRequest(
            f"unknown topic {criteria!r}; topics served: {', '.join(TOPICS)}", expression="Subscription.criteria"
        )
    res_type = criteria.partition("?")[0]
    if res_type not in STORE_TYPES + MODULE_TYPES:
        raise InvalidRequest(
            f"criteria must start with one of {', '.join(STORE_TYPES + MODULE_TYPES)}",
            expression="Subscription.criteria",
        )
    channel = res.get("channel") or {}
    if channel.get("type") != "rest-hook":
        raise InvalidRequest("only the rest-hook channel is served", expression="Subscription.channel.type")
    endpoint = channel.get("endpoint")
    if not isinstance(endpoint, str) or urlsplit(endpoint).scheme not in ("http", "https"):
        raise InvalidRequest("channel.endpoint must be an http(s) URL", expression="Subscription.channel.endpoint")
    payload = channel.get("payload", "application/fhir+json")
    if payload not in ("application/fhir+json", "application/json"):
        raise InvalidRequest("channel.payload must be application/fhir+json", expression="Subscription.channel.payload")
    content_ext = _ext(channel.get("_payload"), EXT_CONTENT)
    content = (content_ext or {}).get("valueCode", "id-only")
    if content not in CONTENTS:
        raise InvalidRequest(f"payload content must be one of {CONTENTS}", expression="Subscription.channel.payload")
    headers = channel.get("header") or []
    if not all(isinstance(h, str) and ":" in h for h in headers):
        raise InvalidRequest("channel.header entries are 'Name: value'", expression="Subscription.channel.header")
    hb = _ext(channel, EXT_HEARTBEAT)
    heartbeat = None
    if hb is not None:
        heartbeat = hb.get("valueUnsignedInt")
        if not isinstance(heartbeat, int) or not MIN_HEARTBEAT_S <= heartbeat <= MAX_HEARTBEAT_S:
            raise InvalidRequest(
                f"heartbeat period must be {MIN_HEARTBEAT_S}..{MAX_HEARTBEAT_S} s", expression="Subscription.channel"
            )
    end = parse_instant(res["end"], "Subscription.end") if res.get("end") else None
    return Spec(topic, criteria, res_type, endpoint, tuple(headers), content, heartbeat, end, res.get("reason"))


def row_to_subscription(r: Any) -> Subscription:
    return Subscription(
        r.id,
        r.status,
        r.topic,
        r.criteria,
        r.res_type,
        r.endpoint,
        tuple(orjson.loads(r.headers or "[]")),
        r.content,
        r.heartbeat_s,
        r.end_at,
        r.reason,
        r.owner,
        r.profile,
        r.events,
        r.failures,
        r.retry_at,
        r.last_error,
        r.last_delivered_at,
        r.created_at,
    )


# --- retry schedule ---------------------------------------------------------------------------------------------
BACKOFF_BASE = timedelta(seconds=10)
BACKOFF_MAX = timedelta(hours=1)
RETRY_WINDOW = timedelta(hours=25)  # a subscription failing for longer is turned off (rows kept as expired)


def backoff(failures: int) -> timedelta:
    """Delay before the next attempt after `failures` consecutive failures (1 → 10 s, 2 → 20 s, … capped 1 h)."""
    n = max(1, failures)
    if n > 20:
        return BACKOFF_MAX
    return min(BACKOFF_BASE * (2 ** (n - 1)), BACKOFF_MAX)
