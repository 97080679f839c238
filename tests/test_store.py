from __future__ import annotations

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
