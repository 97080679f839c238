"""The typed capacity projection (one row per Location × indicator key) and the append-only event history,
maintained by a store observer in the same transaction as the Location version (read-after-write holds)."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, delete, insert

from ror.capacity import stream
from ror.capacity.model import KEY_FIELDS, Indicator, indicators_of
from ror.db.tables import capacity, capacity_event
from ror.errors import RorError
from ror.search.extract import departement_of_commune
from ror.store.meta import commune_code
from ror.store.store import ResourceStore, WriteEvent


def _indicators(content: str | None) -> dict[tuple[str, ...], Indicator]:
    """Indicators by key; stored data that no longer parses (old codes…) is skipped, never fatal."""
    if not content:
        return {}
    res = orjson.loads(content)
    try:
        return {i.key: i for i in indicators_of(res)}
    except RorError:
        out = {}
        for ext in res.get("extension") or []:
            try:
                ind = indicators_of({"extension": [ext]})
            except RorError:
                continue
            out.update({i.key: i for i in ind})
        return out


def _key_columns(key: tuple[str, ...]) -> dict[str, str]:
    return dict(zip(KEY_FIELDS, key, strict=True))


def project(conn: Connection, events: list[WriteEvent]) -> None:
    rows: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    pks = [e.pk for e in events]
    for start in range(0, len(pks), 900):
        conn.execute(delete(capacity).where(capacity.c.location_pk.in_(pks[start : start + 900])))
    regions: dict[int, str | None] = {}
    deps: dict[int, str | None] = {}
    for e in events:
        before = _indicators(e.previous)
        after = _indicators(e.current)
        commune = commune_code(orjson.loads(e.current)) if e.current else None
        dep = departement_of_commune(commune) if commune else None
        regions[e.pk], deps[e.pk] = e.region, dep
        for key, ind in after.items():
            rows.append(
                {
                    "location_pk": e.pk,
                    "location_id": e.res_id,
                    **_key_columns(key),
                    "nb": ind.nb,
                    "source_type": ind.source_type,
                    "updated_at": ind.updated_at,
                    "received_at": e.at,
                    "version_id": e.version_id,
                    "region": e.region,
                    "departement": dep,
                }
            )
        for key in sorted(before.keys() | after.keys()):
            old, new = before.get(key), after.get(key)
            if old is not None and new is not None and old.nb == new.nb and old.update_date == new.update_date:
                continue
            ref = new or old
            assert ref is not None
            history.append(
                {
                    "location_pk": e.pk,
                    "location_id": e.res_id,
                    **_key_columns(key),
                    "nb_before": old.nb if old else None,
                    "nb_after": new.nb if new else None,
                    "source_type": ref.source_type,
                    "updated_at": ref.updated_at,
                    "received_at": e.at,
                    "version_id": e.version_id,
                    "actor": e.author,
                }
            )
    if rows:
        conn.execute(insert(capacity), rows)
    if history:
        conn.execute(insert(capacity_event), history)
        stream.remember(conn, [_public(h, regions.get(h["location_pk"]), deps.get(h["location_pk"])) for h in history])


def _public(h: dict[str, Any], region: str | None, dep: str | None) -> dict[str, Any]:
    """A change as the live stream publishes it (JSON-ready)."""
    return {
        "location": h["location_id"],
        "key": {f: h[f] for f in KEY_FIELDS},
        "before": h["nb_before"],
        "after": h["nb_after"],
        "updated_at": h["updated_at"].isoformat() + "Z" if h["updated_at"] else None,
        "received_at": h["received_at"].isoformat() + "Z",
        "region": region,
        "departement": dep,
        "version": h["version_id"],
    }


def install(store: ResourceStore) -> None:
    """Keep the projection of `store`'s Locations."""
    if project not in store.observers.get("Location", []):
        store.observe("Location", project)
