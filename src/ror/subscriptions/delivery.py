"""Sending the outbox: R4 backport notification bundles POSTed to rest-hook endpoints, one event per request.

Each request carries `Idempotency-Key: <subscription>:<kind>:<event number>` (heartbeats: the outbox row) and
`X-Ror-Event-Number`; a retry sends the same key, so a receiver that saw it already can ignore it. Any 2xx is a
success; anything else (status, timeout, refused connection) is a failure that puts the subscription in backoff."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import orjson
from sqlalchemy import Engine, select

from ror.access.context import contexts
from ror.access.policy import Profile, filter_resource
from ror.db.tables import resource, subscription
from ror.errors import RorError
from ror.search.normalise import fhir_instant, utcnow
from ror.store.store import ResourceStore
from ror.subscriptions import outbox
from ror.subscriptions.model import NOTIFICATION_PROFILE, STATUS_PROFILE, Subscription, row_to_subscription
from ror.subscriptions.outbox import EVENT, Claimed

log = logging.getLogger("ror.subscriptions")
TIMEOUT_S = 10.0
POLL_S = 2.0
Clock = Callable[[], datetime]


@dataclass
class RoundResult:
    delivered: int = 0
    failed: int = 0
    released: int = 0
    heartbeats: int = 0


def idempotency_key(sub_id: str, row: Claimed) -> str:
    return f"{sub_id}:{row.kind}:{row.event_number if row.kind == EVENT else row.pk}"


class Deliverer:
    def __init__(self, store: ResourceStore, base: str, *, worker: str | None = None, timeout: float = TIMEOUT_S):
        self.store = store
        self.engine: Engine = store.engine
        self.base = base.rstrip("/")
        self.worker = worker or f"w-{uuid.uuid4().hex[:8]}"
        self.http = httpx.Client(timeout=timeout, follow_redirects=False)

    def close(self) -> None:
        self.http.close()

    # -- one round -------------------------------------------------------------------------------------------------
    def deliver_once(self, now: datetime | None = None, limit: int = 50) -> RoundResult:
        """Queue due heartbeats, claim due rows and send them (in event order per subscription)."""
        now = now or utcnow()
        result = RoundResult()
        outbox.end_expired(self.engine, now)
        result.heartbeats = outbox.schedule_heartbeats(self.engine, now)
        token, rows = outbox.claim(self.engine, self.worker, now, limit)
        by_sub: dict[str, list[Claimed]] = {}
        for r in rows:
            by_sub.setdefault(r.subscription_id, []).append(r)
        for sub_id, items in by_sub.items():
            sub = self._subscription(sub_id)
            if sub is None:
                continue
            for i, row in enumerate(items):
                ok, status, error = self._send(sub, row, now)
                if ok:
                    outbox.delivered(self.engine, token, row, now)
                    result.delivered += 1
                    continue
                retry = outbox.failed(self.engine, token, row, now, error, status)
                result.failed += 1
                rest = items[i + 1 :]
                if retry is not None:
                    outbox.release(self.engine, token, rest, retry)
                result.released += len(rest)
                break
        return result

    def _subscription(self, sub_id: str) -> Subscription | None:
        with self.engine.connect() as c:
            r = c.execute(select(subscription).where(subscription.c.id == sub_id)).first()
        return row_to_subscription(r) if r is not None else None

    def _send(self, sub: Subscription, row: Claimed, now: datetime) -> tuple[bool, int | None, str]:
        body = orjson.dumps(self.notification(sub, row, now))
        headers = {
            "Content-Type": "application/fhir+json",
            "Idempotency-Key": idempotency_key(sub.id, row),
            "X-Ror-Event-Number": str(row.event_number),
        }
        for h in sub.headers:
            name, _, value = h.partition(":")
            headers[name.strip()] = value.strip()
        try:
            resp = self.http.post(sub.endpoint, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return False, None, f"{type(exc).__name__}: {exc}"
        if 200 <= resp.status_code < 300:
            return True, resp.status_code, ""
        return False, resp.status_code, f"HTTP {resp.status_code}: {resp.text[:300]}"

    # -- payload ---------------------------------------------------------------------------------------------------
    def notification(self, sub: Subscription, row: Claimed, now: datetime) -> dict[str, Any]:
        params: list[dict[str, Any]] = [
            {"name": "subscription", "valueReference": {"reference": f"{self.base}/Subscription/{sub.id}"}},
            {"name": "topic", "valueCanonical": sub.topic or sub.criteria},
            {"name": "status", "valueCode": "active"},
            {"name": "type", "valueCode": row.kind},
            {"name": "events-since-subscription-start", "valueString": str(row.event_number)},
        ]
        entries: list[dict[str, Any]] = []
        if row.kind == EVENT and row.focus is not None:
            f = row.focus
            ref = f"{f.res_type}/{f.res_id}" + (f"/_history/{f.version}" if f.version else "")
            part: list[dict[str, Any]] = [
                {"name": "event-number", "valueString": str(row.event_number)},
                {"name": "timestamp", "valueInstant": fhir_instant(row.created_at)},
            ]
            if sub.content != "empty":
                part.append({"name": "focus", "valueReference": {"reference": f"{self.base}/{ref}"}})
            params.append({"name": "notification-event", "part": part})
            if sub.content == "full-resource":
                res = self._focus_resource(sub, row)
                if res is not None:
                    entries.append(
                        {
                            "fullUrl": f"{self.base}/{f.res_type}/{f.res_id}",
                            "resource": res,
                            "request": {"method": "PUT", "url": f"{f.res_type}/{f.res_id}"},
                            "response": {"status": "200"},
                        }
                    )
        status = {
            "resourceType": "Parameters",
            "id": uuid.uuid4().hex,
            "meta": {"profile": [STATUS_PROFILE]},
            "parameter": params,
        }
        return {
            "resourceType": "Bundle",
            "id": uuid.uuid4().hex,
            "meta": {"profile": [NOTIFICATION_PROFILE]},
            "type": "history",
            "timestamp": fhir_instant(now),
            "entry": [
                {
                    "fullUrl": f"urn:uuid:{status['id']}",
                    "resource": status,
                    "request": {"method": "GET", "url": f"Subscription/{sub.id}/$status"},
                    "response": {"status": "200"},
                },
                *entries,
            ],
        }

    def _focus_resource(self, sub: Subscription, row: Claimed) -> dict[str, Any] | None:
        f = row.focus
        assert f is not None
        if f.content is not None:
            return orjson.loads(f.content)
        if f.version is None:
            return None
        try:
            stored = self.store.vread(f.res_type, f.res_id, f.version)
        except RorError:  # a deletion: the focus reference says it all
            return None
        with self.engine.connect() as c:
            pk = c.execute(
                select(resource.c.pk).where(resource.c.res_type == f.res_type, resource.c.res_id == f.res_id)
            ).scalar()
            if pk is None:
                return None
            ctx = contexts(c, [(pk, f.res_type, f.res_id)])[pk]
        return filter_resource(stored.resource(), Profile(sub.profile), ctx)


class DeliveryWorker:
    """One thread per server process; several processes share the outbox safely (claims are leases)."""

    def __init__(self, deliverer: Deliverer, *, poll_s: float = POLL_S) -> None:
        self.deliverer = deliverer
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="ror-subscriptions", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            busy = False
            try:
                r = self.deliverer.deliver_once()
                busy = r.delivered + r.failed > 0
            except Exception:  # the database is away or not migrated yet: try again at the next poll
                log.exception("subscription delivery round failed")
            if not busy:
                self._wake.wait(self.poll_s)
                self._wake.clear()
