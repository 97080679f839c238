"""The filtered content served per profile is kept per exact (content, profile, context): a new version of a
resource or a change of its context (an offer becoming sensitive, another champ) shows at once."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.testclient import TestClient

from ror.access.policy import Context, Profile
from ror.fhir.access import _filtered
from ror.server import create_app
from ror.store import ResourceStore
from tests.test_access_policy import champ, phones, seed, sensitive, statuses, telecom


def test_same_content_other_profile_or_context_is_filtered_again() -> None:
    loc = {"resourceType": "Location", "id": "x", "telecom": [telecom("01", 1), telecom("03", 3)]}
    content = orjson.dumps(loc)
    assert phones(orjson.loads(_filtered(content, Profile.OPEN_DATA, Context()) or b"{}")) == ["01"]
    assert phones(orjson.loads(_filtered(content, Profile.ALL, Context()) or b"{}")) == ["01", "03"]
    assert _filtered(content, Profile.OPEN_DATA, Context(sensitive=True)) is None
    assert _filtered(content, Profile.ALL, Context(sensitive=True)) is not None
    assert _filtered(content, Profile.OPEN_DATA, Context()) == _filtered(content.decode(), Profile.OPEN_DATA, Context())


def test_search_shows_a_new_version_and_a_new_context_at_once(store: ResourceStore) -> None:
    seed(store)
    # profile 3 sees a place of a médico-social offer like profile 2, of a sanitary offer like open data
    with TestClient(create_app(store.engine, anonymous_profile=Profile.MEDICO_SOCIAL)) as client:

        def found() -> dict[str, Any]:
            r = client.get("/fhir/Location?_id=loc-mco,loc-ms&_revinclude=HealthcareService:location")
            assert r.status_code == 200, r.text[:300]
            return {e["resource"]["id"]: e["resource"] for e in r.json().get("entry", [])}

        before = found()
        assert phones(before["loc-mco"]) == ["0404040404"] and statuses(before["loc-mco"]) == []
        # a new version: the level-3 phone becomes level 1, so it is shown
        mco = store.read("Location", "loc-mco").resource()
        mco["telecom"] = [telecom("0404040404", 1), telecom("0505050505", 1)]
        store.update("Location", "loc-mco", mco)
        assert phones(found()["loc-mco"]) == ["0404040404", "0505050505"]
        # the same Location content, another context: its offer becomes médico-social, its capacity is shown
        store.update("HealthcareService", "hs-mco", champ(store.read("HealthcareService", "hs-mco").resource(), "04"))
        assert statuses(found()["loc-mco"]) == ["01", "02", "03"]
        # and then sensitive: the place and its offer are no longer served
        hs = sensitive(store.read("HealthcareService", "hs-mco").resource())
        store.update("HealthcareService", "hs-mco", hs)
        after = found()
        assert "loc-mco" not in after and "hs-mco" not in after and "loc-ms" in after
