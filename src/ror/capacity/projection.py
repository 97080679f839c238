"""The typed capacity projection (one row per Location × indicator key) and the append-only event history,
maintained by a store observer in the same transaction as the Location version (read-after-write holds)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection

from ror.access.rights import parent_reference
from ror.capacity import stream
from ror.capacity.model import KEY_FIELDS, Indicator, indicators_of
from ror.db.tables import capacity, capacity_event
from ror.errors import RorError
from ror.memo import Lru
from ror.search.extract import departement_of_commune
from ror.store.meta import commune_code, region_tag
from ror.store.rawsql import Batch
from ror.store.store import ResourceStore, WriteEvent


def _indicators(res: dict[str, Any] | None) -> dict[tuple[str, ...], Indicator]:
    """Indicators by key; stored data that no longer parses (old codes…) is skipped, never fatal."""
    if not res:
        return {}
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


@dataclass(frozen=True)
class ContentFacts:
    """What the capacity module reads of one stored Location content: its indicators in order as the write
    protocol parses them (`strict`; None when one no longer parses: a write then parses again and reports it),
    the parsable ones by key (the projection), its commune, région tag and managing organization."""

    strict: tuple[Indicator, ...] | None
    indicators: dict[tuple[str, ...], Indicator]
    commune: str | None
    region: str | None
    parent: str | None  # managingOrganization's reference (the write rights' starting point)


# by stored content: a write's "before" is the previous write's "after", mostly in the same process (a feeder's
# connection stays with one server worker), so each content is parsed once instead of three times
_FACTS: Lru[str, ContentFacts] = Lru(2048)


def content_facts(content: str) -> ContentFacts:
    """The facts of a stored content (memoised; callers must not mutate them)."""

    def read() -> ContentFacts:
        res = orjson.loads(content)
        try:
            strict: tuple[Indicator, ...] | None = tuple(indicators_of(res))
        except RorError:
            strict = None
        by_key = {i.key: i for i in strict} if strict is not None else _indicators(res)
        return ContentFacts(strict, by_key, commune_code(res), region_tag(res), parent_reference(res))

    return _FACTS.get_or(content, read)


def _key_columns(key: tuple[str, ...]) -> dict[str, str]:
    return dict(zip(KEY_FIELDS, key, strict=True))


_KEY_WHERE = "location_pk = {m}" + "".join(f" AND {f} = {{m}}" for f in KEY_FIELDS)
_CAPACITY_COLS = tuple(c.name for c in capacity.columns)
_EVENT_COLS = tuple(c.name for c in capacity_event.columns if c.name != "pk")


def project(conn: Connection, batch: Batch, events: list[WriteEvent]) -> None:
    """Rows follow the indicators of the new versions, by key: an indicator whose count, source or update date
    changed is updated in place (its `received_at` / `version_id` say when it last changed), a new one inserted,
    a removed one deleted; unchanged rows are not touched (a feeder's PATCH changes one indicator of a dozen). A
    creation, a deletion or a change of commune / région rewrites the Location's rows. One event per changed
    indicator goes to `capacity_event` and to the live stream. The statements join the write's batch (one round
    trip with the Location version on PostgreSQL)."""
    rows: list[tuple[Any, ...]] = []
    updates: list[tuple[Any, ...]] = []
    removed: list[tuple[Any, ...]] = []
    rewritten: list[int] = []
    history: list[dict[str, Any]] = []
    regions: dict[int, str | None] = {}
    deps: dict[int, str | None] = {}
    for e in events:
        prev = content_facts(e.previous) if e.previous else None
        cur = content_facts(e.current) if e.current else None
        before = prev.indicators if prev else {}
        after = cur.indicators if cur else {}
        commune = cur.commune if cur else None
        dep = departement_of_commune(commune) if commune else None
        regions[e.pk], deps[e.pk] = e.region, dep
        in_place = prev is not None and cur is not None and prev.commune == commune and prev.region == e.region
        if not in_place:
            rewritten.append(e.pk)
        for key, ind in after.items():
            old = before.get(key)
            if in_place and old is not None:
                if (old.nb, old.source_type, old.updated_at) != (ind.nb, ind.source_type, ind.updated_at):
                    updates.append((ind.nb, ind.source_type, ind.updated_at, e.at, e.version_id, e.pk, *key))
                continue
            row = {"location_pk": e.pk, "location_id": e.res_id, **_key_columns(key), "nb": ind.nb}
            row |= {"source_type": ind.source_type, "updated_at": ind.updated_at, "received_at": e.at}
            row |= {"version_id": e.version_id, "region": e.region, "departement": dep}
            rows.append(tuple(row[c] for c in _CAPACITY_COLS))
        if in_place:
            removed.extend((e.pk, *key) for key in before.keys() - after.keys())
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
    m = batch.mark
    for start in range(0, len(rewritten), 900):
        chunk = tuple(rewritten[start : start + 900])
        batch.execute(f"DELETE FROM capacity WHERE location_pk IN ({batch.marks(len(chunk))})", chunk)
    batch.executemany("DELETE FROM capacity WHERE " + _KEY_WHERE.format(m=m), removed)
    set_cols = f"nb = {m}, source_type = {m}, updated_at = {m}, received_at = {m}, version_id = {m}"
    batch.executemany(f"UPDATE capacity SET {set_cols} WHERE " + _KEY_WHERE.format(m=m), updates)
    batch.insert(capacity, _CAPACITY_COLS, rows)
    if history:
        batch.insert(capacity_event, _EVENT_COLS, [tuple(h.get(c) for c in _EVENT_COLS) for h in history])
        changes = [_public(h, regions.get(h["location_pk"]), deps.get(h["location_pk"])) for h in history]
        stream.remember(conn, changes, batch)


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
    store.observe_batched("Location", project)
