from __future__ import annotations

from typing import Any

import orjson
import pytest
from sqlalchemy import select

from ror.db.tables import idx_string, idx_token
from ror.errors import Gone, InvalidRequest, NotFound, PreconditionFailed
from ror.store import ResourceStore
from ror.store.meta import CREATION_DATE_URL, REGION_SYSTEM
from ror.store.store import parse_etag

ORG = {
    "resourceType": "Organization",
    "name": "CH de Test",
    "identifier": [{"system": "http://finess.esante.gouv.fr", "value": "350000001"}],
    "meta": {"tag": [{"system": REGION_SYSTEM, "code": "53"}]},
}


def test_create_read_versions_and_meta(store: ResourceStore) -> None:
    s = store.create(dict(ORG))
    assert s.version_id == 1
    got = store.read("Organization", s.res_id).resource()
    assert got["meta"]["versionId"] == "1"
    assert got["meta"]["lastUpdated"].endswith("+00:00")
    assert {"system": REGION_SYSTEM, "code": "53"} in got["meta"]["tag"]
    created = [e for e in got["extension"] if e["url"] == CREATION_DATE_URL]
    assert len(created) == 1

    body = dict(got, name="CH de Test renommé")
    s2, was_created = store.update("Organization", s.res_id, body, if_match=1)
    assert not was_created and s2.version_id == 2
    got2 = store.read("Organization", s.res_id).resource()
    # creation date is kept from version 1 even if the client drops or changes it
    assert [e for e in got2["extension"] if e["url"] == CREATION_DATE_URL] == created
    hist = store.history("Organization", s.res_id)
    assert [h.version_id for h in hist] == [2, 1]
    assert store.vread("Organization", s.res_id, 1).resource()["name"] == "CH de Test"


def test_if_match_mismatch_is_412(store: ResourceStore) -> None:
    s = store.create(dict(ORG))
    with pytest.raises(PreconditionFailed):
        store.update("Organization", s.res_id, dict(ORG, name="x"), if_match=7)
    with pytest.raises(PreconditionFailed):
        store.delete("Organization", s.res_id, if_match=3)


def test_identical_put_creates_no_version(store: ResourceStore) -> None:
    s = store.create(dict(ORG))
    s2, _ = store.update("Organization", s.res_id, store.read("Organization", s.res_id).resource())
    assert s2.version_id == 1


def test_delete_then_read_is_gone_history_kept(store: ResourceStore) -> None:
    s = store.create(dict(ORG))
    store.delete("Organization", s.res_id)
    with pytest.raises(Gone):
        store.read("Organization", s.res_id)
    hist = store.history("Organization", s.res_id)
    assert [h.deleted for h in hist] == [True, False]
    # index rows are removed with the deletion
    with store.read_conn() as c:
        assert c.execute(select(idx_token).where(idx_token.c.param == "identifier")).all() == []
    # re-creating by PUT continues the version sequence
    s3, created = store.update("Organization", s.res_id, dict(ORG, id=s.res_id))
    assert created and s3.version_id == 3


def test_unknown_and_invalid(store: ResourceStore) -> None:
    with pytest.raises(NotFound):
        store.read("Organization", "nope")
    with pytest.raises(InvalidRequest):
        store.update("Organization", "a b", dict(ORG))
    with pytest.raises(InvalidRequest):
        store.update("Location", "x", dict(ORG))
    with pytest.raises(InvalidRequest):
        store.create({"name": "no type"})


def test_index_rows_follow_the_current_version(store: ResourceStore) -> None:
    s = store.create(dict(ORG))
    store.update("Organization", s.res_id, dict(ORG, name="Clinique Sainte-Anne"))
    with store.read_conn() as c:
        names = c.execute(select(idx_string.c.value).where(idx_string.c.param == "name")).scalars().all()
    assert names == ["clinique sainte-anne"]


def test_bulk_upsert_is_idempotent(store: ResourceStore) -> None:
    batch = [dict(ORG, id=f"org-{i}", name=f"Org {i}") for i in range(50)]
    c1 = store.bulk_upsert(batch)
    assert (c1.created, c1.updated, c1.unchanged) == (50, 0, 0)
    c2 = store.bulk_upsert(batch)
    assert (c2.created, c2.updated, c2.unchanged) == (0, 0, 50)
    batch[3] = dict(batch[3], name="Org trois")
    c3 = store.bulk_upsert(batch)
    assert (c3.created, c3.updated, c3.unchanged) == (0, 1, 49)
    assert store.read("Organization", "org-3").version_id == 2


def test_parse_etag() -> None:
    assert parse_etag('W/"3"') == 3
    assert parse_etag('"12"') == 12
    assert parse_etag(None) is None
    with pytest.raises(InvalidRequest):
        parse_etag("abc")


def test_every_version_keeps_its_content_through_update_delete_and_recreate(store: ResourceStore) -> None:
    """The current version's content lives once (resource.content); superseded versions keep theirs."""
    first = store.create({"resourceType": "Organization", "name": "v1"})
    rid = first.res_id
    store.update("Organization", rid, {"resourceType": "Organization", "id": rid, "name": "v2"})
    store.delete("Organization", rid)
    store.update("Organization", rid, {"resourceType": "Organization", "id": rid, "name": "v4"})
    store.bulk_upsert([{"resourceType": "Organization", "id": rid, "name": "v5"}])
    names = {v: orjson.loads(store.vread("Organization", rid, v).content)["name"] for v in (1, 2, 4, 5)}
    assert names == {1: "v1", 2: "v2", 4: "v4", 5: "v5"}
    with pytest.raises(Gone):
        store.vread("Organization", rid, 3)
    history = store.history("Organization", rid)
    assert [h.version_id for h in history] == [5, 4, 3, 2, 1]
    assert [orjson.loads(h.content).get("name") for h in history] == ["v5", "v4", None, "v2", "v1"]


def _stored_rows(store: ResourceStore, pk: int) -> dict[str, list[tuple[object, ...]]]:
    from ror.db.tables import idx_date, idx_geo, idx_number, idx_quantity, idx_reference

    tables = {
        "token": idx_token,
        "string": idx_string,
        "number": idx_number,
        "quantity": idx_quantity,
        "date": idx_date,
        "reference": idx_reference,
        "geo": idx_geo,
    }
    out = {}
    with store.read_conn() as c:
        for name, t in tables.items():
            cols = [col for col in t.columns if col.name not in ("pk", "resource_pk")]
            rows = c.execute(select(*cols).where(t.c.resource_pk == pk)).all()
            out[name] = sorted((tuple(r) for r in rows), key=repr)
    return out


def _extracted_rows(store: ResourceStore, res: dict[str, object]) -> dict[str, list[tuple[object, ...]]]:
    from dataclasses import astuple, fields

    from ror.search.extract import extract

    rows = extract(store.registry, res)
    return {f.name: sorted((tuple(r) for r in v), key=repr) for f, v in zip(fields(rows), astuple(rows), strict=True)}


def test_updates_rewrite_only_changed_rows_and_stay_equal_to_a_full_extraction(store: ResourceStore) -> None:
    """An update replaces only the index rows that differ (search.extract.row_changes); after every kind of change
    (one indicator's count, indicators swapped, one duplicated, capacity extension removed, telecom added then
    removed, position moved then removed, name, partOf, through update, modify and bulk_upsert) the stored rows
    equal a full extraction."""
    from pathlib import Path

    loc = orjson.loads((Path(__file__).parent / "fixtures" / "Location-ror-location-exemple-1.json").read_bytes())
    loc.pop("meta", None)
    s = store.update("Location", "loc-diff", dict(loc, id="loc-diff"))[0]
    pk = store.pk_of("Location", "loc-diff")

    def check() -> None:
        res = store.read("Location", "loc-diff").resource()
        assert _stored_rows(store, pk) == _extracted_rows(store, res)

    check()

    def capacities(r: dict[str, object]) -> list[dict[str, object]]:
        return [e for e in r["extension"] if "capacity" in e["url"]]  # type: ignore[attr-defined]

    def set_count(r: dict[str, object]) -> None:
        first = capacities(r)[0]
        next(x for x in first["extension"] if x["url"] == "nbCapacity")["valueInteger"] = 14  # type: ignore[attr-defined]

    def swap(r: dict[str, object]) -> None:
        ext = r["extension"]  # type: ignore[index]
        i, j = (ext.index(e) for e in capacities(r)[:2])  # type: ignore[attr-defined]
        ext[i], ext[j] = ext[j], ext[i]  # type: ignore[index]

    steps = [
        set_count,
        swap,
        lambda r: r["extension"].append(capacities(r)[-1]),  # type: ignore[attr-defined]
        lambda r: r.update(extension=[e for e in r.get("extension", []) if "capacity" not in e["url"]]),
        lambda r: r.update(telecom=[{"system": "phone", "value": "02 99 00 00 00"}]),
        lambda r: r.update(position={"latitude": 48.11, "longitude": -1.68}),
        lambda r: r.update(name="Unité renommée", alias=["Autre nom"]),
        lambda r: r.pop("position", None),
        lambda r: r.update(managingOrganization={"reference": "Organization/eg-2"}),
        lambda r: r.update(address={"city": "Rennes", "postalCode": "35000"}),
        lambda r: r.pop("telecom"),
    ]
    for i, step in enumerate(steps):
        if i % 3 == 0:
            res = store.read("Location", "loc-diff").resource()
            step(res)
            store.update("Location", "loc-diff", res)
        elif i % 3 == 1:

            def change(cur: object, step: object = step) -> dict[str, object]:
                res = cur.resource()  # type: ignore[attr-defined]
                step(res)  # type: ignore[operator]
                return res  # type: ignore[no-any-return]

            store.modify("Location", "loc-diff", change)
        else:
            res = store.read("Location", "loc-diff").resource()
            step(res)
            store.bulk_upsert([res])
        check()
    assert store.read("Location", "loc-diff").version_id == s.version_id + len(steps)


def test_reindex_rebuilds_missing_rows(store: ResourceStore) -> None:
    s = store.create(dict(ORG))
    pk = store.pk_of("Organization", s.res_id)
    with store.write_tx() as c:
        c.execute(idx_string.delete().where(idx_string.c.resource_pk == pk))
    assert _stored_rows(store, pk)["string"] == []
    assert store.reindex("Organization") == 1
    assert _stored_rows(store, pk) == _extracted_rows(store, store.read("Organization", s.res_id).resource())


def test_analyze_persists_planner_statistics(store: ResourceStore) -> None:
    """`analyze` after a bulk load must leave statistics behind (on SQLite it once ran in a transaction that was
    rolled back, and national databases were planned without them)."""
    from sqlalchemy import text

    from ror.db.database import analyze

    store.bulk_upsert([dict(ORG, id=f"org-stat-{i}", name=f"Org {i}") for i in range(20)])
    analyze(store.engine)
    with store.read_conn() as c:
        if store.engine.dialect.name == "sqlite":
            n = c.execute(text("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'resource'")).scalar_one()
        else:
            # VACUUM (ANALYZE): the visibility map of the freshly loaded pages is set too (index-only counts)
            q = (
                "SELECT count(*) FROM pg_stat_user_tables WHERE relname = 'resource' AND last_analyze IS NOT NULL"
                " AND last_vacuum IS NOT NULL"
            )
            n = c.execute(text(q)).scalar_one()
    assert n > 0


def test_nested_bulk_load_joins_the_outer_block(store: ResourceStore) -> None:
    """An importer that opens its own bulk-load block inside a larger load must not rebuild the indexes when its
    block ends: they are built once, when the outermost block does."""
    from sqlalchemy import inspect

    from ror.db.tables import BULK_DROPPABLE_INDEXES

    name = BULK_DROPPABLE_INDEXES[0].name
    table = BULK_DROPPABLE_INDEXES[0].table.name

    def present() -> bool:
        return name in {ix["name"] for ix in inspect(store.engine).get_indexes(table)}

    assert present()
    with store.bulk_load() as outer:
        assert outer and not present()
        with store.bulk_load() as inner:
            assert inner
            store.bulk_upsert([dict(ORG, id="org-nested")])
        assert not present()  # the inner block ended: still in bulk mode
    assert present()
    assert store.read("Organization", "org-nested").version_id == 1


def _bulk_structures(store: ResourceStore) -> tuple[set[str], set[str]]:
    """(droppable index names present, tables whose resource_pk foreign key is present)."""
    from sqlalchemy import inspect

    from ror.db.tables import BULK_FOREIGN_KEY_TABLES, INDEX_TABLES, resource_version

    insp = inspect(store.engine)
    indexes = {ix["name"] for t in (*INDEX_TABLES, resource_version) for ix in insp.get_indexes(t.name)}
    fks = {t.name for t in BULK_FOREIGN_KEY_TABLES if insp.get_foreign_keys(t.name)}
    return indexes, fks


def test_bulk_load_rebuilds_indexes_and_foreign_keys_and_a_migration_repairs_an_interrupted_one(
    store: ResourceStore,
) -> None:
    """A bulk load into an empty store drops the index tables' secondary indexes (on PostgreSQL also their
    foreign keys to `resource`) and restores all of them at the end, validated: a row
    pointing at no resource is refused afterwards. A process killed in the middle leaves the repair to the next
    migration run."""
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    from ror.db import migrate
    from ror.db.tables import BULK_FOREIGN_KEY_TABLES, drop_bulk_structures

    before = _bulk_structures(store)
    assert before[1] == {t.name for t in BULK_FOREIGN_KEY_TABLES}
    pg = store.engine.dialect.name == "postgresql"
    with store.bulk_load() as bulk:
        assert bulk
        during = _bulk_structures(store)
        assert not (during[0] & {"ix_idx_token_lookup", "ix_idx_string_pk"})
        assert "ix_resource_version_updated" in during[0]  # the version and resource tables keep theirs
        assert during[1] == (set() if pg else before[1])  # SQLite cannot drop a foreign key (and need not)
        store.bulk_upsert([dict(ORG, id="org-bulk")])
    assert _bulk_structures(store) == before
    if pg:  # validated again: a dangling index row is refused
        with pytest.raises(IntegrityError), store.engine.begin() as c:
            c.execute(text("INSERT INTO idx_token (resource_pk, res_type, param) VALUES (-1, 'Organization', 'x')"))
    with store.engine.begin() as c:  # a load killed half-way (an earlier version's also dropped the version's)
        drop_bulk_structures(c)
        c.execute(text("DROP INDEX ix_resource_version_updated"))
    assert _bulk_structures(store) != before
    migrate.upgrade(store.engine)
    assert _bulk_structures(store) == before


def test_bulk_write_tx_skips_foreign_key_checks_and_disk_waits_only_inside_a_bulk_load(store: ResourceStore) -> None:
    """An importer's batches (`bulk_write_tx`) in a bulk load run without the per-row foreign-key probe (SQLite;
    PostgreSQL drops its foreign keys for the load and validates them at the end) and commit without waiting
    for the disk (SQLite `synchronous=OFF`, PostgreSQL `synchronous_commit=off`; the load's last transaction
    makes it durable); the connection has its settings back afterwards, and outside a bulk load it is a plain
    write transaction."""
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    sqlite = store.engine.dialect.name == "sqlite"
    dangling = text("INSERT INTO idx_token (resource_pk, res_type, param) VALUES (-1, 'Organization', 'x')")

    def settings(c: Any) -> tuple[Any, Any]:
        if sqlite:
            return c.exec_driver_sql("PRAGMA foreign_keys").scalar(), c.exec_driver_sql("PRAGMA synchronous").scalar()
        return None, c.exec_driver_sql("SHOW synchronous_commit").scalar()

    normal = (1, 1) if sqlite else (None, "on")
    with store.bulk_write_tx() as c:  # not in a bulk load: checked
        assert settings(c) == normal
        with pytest.raises(IntegrityError), c.begin_nested():
            c.execute(dangling)
    with store.bulk_load() as bulk:
        assert bulk
        with store.bulk_write_tx() as c:
            assert settings(c) == ((0, 0) if sqlite else (None, "off"))
            store.bulk_upsert(prepared=store.prepare_new([dict(ORG, id="org-fk")]), conn=c)
        with store.write_tx() as c:  # the pool's connections have their settings back
            assert settings(c) == normal
    assert store.read("Organization", "org-fk").version_id == 1


COMMUNE_COG = "https://interop.esante.gouv.fr/ig/fhir/ror/StructureDefinition/ror-commune-cog"


def test_row_changes_of_one_indicator_count_are_two_groups() -> None:
    """A capacity PATCH that changes one indicator's count replaces that indicator's count and date rows — in
    place, one row each — not the ~30 rows of every capacity parameter."""
    from pathlib import Path

    from ror.search.extract import extract, row_changes
    from ror.search.registry import default_registry

    reg = default_registry()
    loc = orjson.loads((Path(__file__).parent / "fixtures" / "Location-ror-location-exemple-1.json").read_bytes())
    after = orjson.loads(orjson.dumps(loc))
    first = next(e for e in after["extension"] if "capacity" in e["url"])
    for x in first["extension"]:
        if x["url"] == "nbCapacity":
            x["valueInteger"] = 14
        if x["url"] == "capacityUpdateDate":
            x["valueDateTime"] = "2026-12-01T10:00:00+01:00"
    changed = frozenset({"extension"})
    before_rows, after_rows = extract(reg, loc, changed), extract(reg, after, changed)
    ch = row_changes(before_rows, after_rows)
    grp = 0  # the first indicator: its count and date, one row each before and after, are updated in place
    assert ch.stale == {} and ch.rows == type(ch.rows)()
    assert {name: [(r[1], r[2]) for r in rows] for name, rows in ch.replaced.items()} == {
        "number": [("nb-capacity", grp)],
        "date": [("capacity-update-date", grp)],
    }
    assert ch.replaced["number"][0][3] == 14.0
    assert not ch.geo
    # nothing changed: nothing to do; the geo row follows the position
    same = row_changes(before_rows, extract(reg, loc, changed))
    assert same.stale == {} and not same.geo
    moved = dict(loc, position={"latitude": 48.0, "longitude": -1.7})
    geo = row_changes(extract(reg, loc, frozenset({"position"})), extract(reg, moved, frozenset({"position"})))
    assert geo.geo and geo.rows.geo == [("Location", 48.0, -1.7)]
    # the store's diff leaves the equal indicators out of the extraction, with the same result
    from ror.search.extract import update_rows

    capacity = [i for i, e in enumerate(loc["extension"]) if "capacity" in e["url"]]
    swapped = orjson.loads(orjson.dumps(loc))
    ext = swapped["extension"]
    ext[capacity[0]], ext[capacity[1]] = ext[capacity[1]], ext[capacity[0]]
    duplicated = dict(loc, extension=[*loc["extension"], loc["extension"][capacity[-1]]])
    removed = dict(loc, extension=[e for i, e in enumerate(loc["extension"]) if i != capacity[0]])
    # the commune's extension (another URL) changes alone, with an indicator, or is added
    moved = orjson.loads(orjson.dumps(loc))
    cog = next(e for e in moved["extension"] if e["url"] == COMMUNE_COG)
    cog["valueCodeableConcept"]["coding"][0]["code"] = "97209"
    both = dict(after, extension=[cog if e["url"] == COMMUNE_COG else e for e in after["extension"]])
    second = dict(loc, extension=[*loc["extension"], {"url": COMMUNE_COG, "valueCoding": {"code": "35238"}}])
    cases = [(loc, v) for v in (after, loc, swapped, duplicated, removed, moved, both, second)] + [(moved, after)]
    for old, variant in cases:
        full = row_changes(extract(reg, old, changed), extract(reg, variant, changed))
        assert update_rows(reg, old, variant, changed) == full
    assert update_rows(reg, loc, after, changed) == ch
    commune = update_rows(reg, loc, moved, changed)
    assert commune.stale == {} and [r[:3] for r in commune.replaced["token"]] == [
        ("Location", "commune-cog", None),
        ("Location", "departement", None),
    ]
    # a group that goes from one row to two (a second commune extension) is deleted and inserted again
    added = update_rows(reg, loc, second, changed)
    assert added.stale["token"] == [("commune-cog", None), ("departement", None)] and not added.replaced


def test_changes_of_an_update_are_told_by_extension_url() -> None:
    """A change of the capacity indicators does not evaluate the parameters of the other extensions again (the
    commune's `commune-cog` / `departement`): their change keys name their extension's URL."""
    from pathlib import Path

    from ror.search.extract import changes_of, extract
    from ror.search.fhirpath import ANY_EXTENSION, ANY_META, extension_key
    from ror.search.registry import default_registry

    reg = default_registry()
    loc = orjson.loads((Path(__file__).parent / "fixtures" / "Location-ror-location-exemple-1.json").read_bytes())
    after = orjson.loads(orjson.dumps(loc))
    first = next(e for e in after["extension"] if "capacity" in e["url"])
    first["extension"] = [x for x in first["extension"] if x["url"] != "comment"] + [
        {"url": "comment", "valueString": "changed"}
    ]
    fine = changes_of(loc, after, frozenset({"extension", "meta"}))
    assert fine == {ANY_META, ANY_EXTENSION, extension_key(first["url"])}
    assert changes_of(loc, after, frozenset({"meta"})) == {ANY_META}

    def params(rows: object) -> set[str]:
        return {r[1] for name in ("token", "string", "number", "date") for r in getattr(rows, name)}

    everything = params(extract(reg, loc, frozenset({"extension"})))
    assert {"commune-cog", "departement", "capacity-status"} <= everything  # "extension": any extension changed
    refined = params(extract(reg, loc, fine))
    assert "capacity-status" in refined and not refined & {"commune-cog", "departement"}


def test_changes_of_meta_are_told_by_element() -> None:
    """Every update changes `meta.versionId` and `meta.lastUpdated`; the tags and profiles seldom: `_tag` and
    `_profile` are extracted again only when theirs differ, and `update_rows` still equals the full diff."""
    from ror.search.extract import changes_of, extract, row_changes, update_rows
    from ror.search.fhirpath import ANY_META, meta_key
    from ror.search.registry import default_registry

    reg = default_registry()
    tag = {"system": "https://mos.esante.gouv.fr/NOS/TRE_R30-RegionOM/FHIR/TRE-R30-RegionOM", "code": "53"}
    profile = "https://interop.esante.gouv.fr/ig/fhir/ror/StructureDefinition/ror-location"
    loc = {
        "resourceType": "Location",
        "id": "l1",
        "meta": {"versionId": "1", "lastUpdated": "2026-12-01T10:00:00Z", "tag": [tag], "profile": [profile]},
        "name": "Unité",
    }
    bumped = dict(loc, meta={**loc["meta"], "versionId": "2", "lastUpdated": "2026-12-01T11:00:00Z"})
    moved = dict(bumped, meta={**bumped["meta"], "tag": [{**tag, "code": "11"}]})
    fine = changes_of(loc, bumped, frozenset({"meta"}))
    assert fine == {ANY_META, meta_key("versionId"), meta_key("lastUpdated")}

    def params(rows: object) -> set[str]:
        return {r[1] for name in ("token", "string") for r in getattr(rows, name)}

    assert params(extract(reg, loc, frozenset({"meta"}))) == {"_tag", "_profile"}  # top-level keys: all of meta
    assert params(extract(reg, bumped, fine)) == set()
    assert params(extract(reg, moved, changes_of(loc, moved, frozenset({"meta"})))) == {"_tag"}
    for after in (bumped, moved):
        full = row_changes(extract(reg, loc, frozenset({"meta"})), extract(reg, after, frozenset({"meta"})))
        assert update_rows(reg, loc, after, frozenset({"meta"})) == full


def test_grouped_sub_extensions_found_by_url_give_the_rows_of_the_generic_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Extraction finds a repeated element's sub-extensions by URL once (`fhirpath.extension_head`) instead of
    each parameter scanning them: the rows equal those of the generic FHIRPath evaluation, also on odd
    elements (a repeated sub-extension, an entry that is not an object, `extension` that is not a list)."""
    from pathlib import Path

    from ror.search import extract as ex
    from ror.search.registry import default_registry

    reg = default_registry()
    loc = orjson.loads((Path(__file__).parent / "fixtures" / "Location-ror-location-exemple-1.json").read_bytes())
    odd = orjson.loads(orjson.dumps(loc))
    caps = [e for e in odd["extension"] if "capacity" in e["url"]]
    caps[0]["extension"].append({"url": "nbCapacity", "valueInteger": 99})  # repeated
    caps[1]["extension"].insert(0, "not an object")
    caps[2]["extension"] = {"url": "nbCapacity", "valueInteger": 1}  # not a list
    fast = [ex.extract(reg, r) for r in (loc, odd)]
    assert any(row[1] == "nb-capacity" for row in fast[0].number)
    monkeypatch.setattr(ex, "extension_head", lambda expr: None)
    ex._compiled.cache_clear()
    ex._applicable.cache_clear()
    try:
        generic = [ex.extract(reg, r) for r in (loc, odd)]
    finally:
        monkeypatch.undo()
        ex._compiled.cache_clear()
        ex._applicable.cache_clear()
    assert fast == generic


def test_a_large_insert_writes_every_row_in_order(store: ResourceStore) -> None:
    """`Batch.insert` of many rows (SQLite: several rows per statement, `MULTI_ROW_PARAMS`; PostgreSQL: COPY),
    with a remainder that fills no whole statement: every row is written, once, in the order given."""
    from sqlalchemy import text

    from ror.db.tables import idx_token
    from ror.store.rawsql import MULTI_ROW_PARAMS, Batch

    cols = ("resource_pk", "res_type", "param", "grp", "system", "code", "text")
    per_statement = MULTI_ROW_PARAMS // len(cols)
    created = store.create({"resourceType": "Organization", "name": "rows"})
    pk = store.pk_of("Organization", created.res_id)
    n = 2 * per_statement + 3
    rows = [(pk, "Organization", "x-many", None, None, f"c{i:05d}", "é" if i % 2 else None) for i in range(n)]
    with store.write_tx() as c:
        batch = Batch(c)
        batch.insert(idx_token, cols, rows)
        batch.run()
    order = "rowid" if store.engine.dialect.name == "sqlite" else "ctid"
    with store.read_conn() as c:
        got = c.execute(text(f"SELECT code, text FROM idx_token WHERE param = 'x-many' ORDER BY {order}")).all()
    assert [tuple(r) for r in got] == [(r[5], r[6]) for r in rows]
