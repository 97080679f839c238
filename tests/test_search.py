from __future__ import annotations

import orjson
import pytest

from ror.directory import ids
from ror.errors import InvalidRequest
from ror.search.engine import SearchEngine, SearchResult
from ror.search.query import QueryParser
from ror.search.registry import default_registry
from ror.search.systems import make_system_resolver
from ror.store import ResourceStore
from tests.search_fixtures import populate

SHORT = {
    "R211": ids.TRE_R211,
    "R213": ids.TRE_R213,
    "R66": ids.TRE_R66,
    "R330": ids.TRE_R330,
    "R332": ids.TRE_R332,
    "R329": ids.TRE_R329,
}
CENTROIDS = {"35238": (48.1113, -1.6800), "56121": (47.7500, -3.3667)}


def lookup(ref: str) -> str:
    if ref in SHORT:
        return SHORT[ref]
    raise InvalidRequest(ref)


@pytest.fixture
def run(store: ResourceStore):
    populate(store)
    parser = QueryParser(default_registry(), make_system_resolver(lookup), CENTROIDS.get)
    engine = SearchEngine(store.engine)

    def _run(res_type: str, query: str) -> SearchResult:
        items = [tuple(p.split("=", 1)) for p in query.split("&") if p]
        return engine.search(parser.parse(res_type, items))  # type: ignore[arg-type]

    _run.engine = engine  # type: ignore[attr-defined]
    return _run


def ids_of(r: SearchResult) -> list[str]:
    return sorted(m.res_id for m in r.matches)


def test_token_system_code_and_or(run) -> None:
    assert ids_of(run("HealthcareService", "specialty=R211|126")) == ["hs-rea-rennes"]
    assert ids_of(run("HealthcareService", "specialty=R211|126,127")) == ["hs-rea-lorient", "hs-rea-rennes"]
    assert ids_of(run("HealthcareService", f"specialty={ids.TRE_R211}|233")) == ["hs-ped-rennes"]
    assert ids_of(run("HealthcareService", "specialty=126")) == ["hs-rea-rennes"]
    assert ids_of(run("HealthcareService", "specialty:not=R211|126")) == ["hs-ped-rennes", "hs-rea-lorient"]
    assert run("HealthcareService", "specialty=R211|126").total == 1


def test_and_with_repeats(run) -> None:
    r = run("HealthcareService", "specialty=R211|126,127,233&characteristic=R213|28&name=rea")
    assert ids_of(r) == ["hs-rea-lorient", "hs-rea-rennes"]


def test_string_modifiers(run) -> None:
    assert ids_of(run("HealthcareService", "name=réanimation")) == ["hs-rea-lorient", "hs-rea-rennes"]
    assert ids_of(run("HealthcareService", "name:contains=POLY")) == ["hs-rea-lorient"]
    assert ids_of(run("HealthcareService", "name:exact=Pédiatrie générale")) == ["hs-ped-rennes"]
    assert ids_of(run("HealthcareService", "name:exact=pédiatrie générale")) == []


def test_postal_code_prefixes(run) -> None:
    assert ids_of(run("Location", "address-postalcode=35,22")) == ["loc-ped-rennes", "loc-rea-rennes"]
    assert ids_of(run("Location", "address-postalcode=56")) == ["loc-rea-lorient"]


def test_quantity_age_range(run) -> None:
    r = run("HealthcareService", "age-range-low=le10|http://unitsofmeasure.org|a&age-range-high=ge10")
    assert ids_of(r) == ["hs-ped-rennes"]


def test_capacity_criteria_match_the_same_indicator(run) -> None:
    # available female bed now: Rennes has 3 (female), Lorient has 0 female but 2 male.
    q = "capacity-status=R330|02&gender-capacity-available=R332|01&nb-capacity=gt0"
    assert ids_of(run("Location", q)) == ["loc-rea-rennes"]
    q = "capacity-status=R330|02&gender-capacity-available=R332|02&nb-capacity=gt0"
    assert ids_of(run("Location", q)) == ["loc-rea-lorient"]
    # chained from HealthcareService, as in the IG example D1
    q = (
        "specialty=R211|126,127&location.capacity-status=R330|02&location.gender-capacity-available=R332|02"
        "&location.nb-capacity=gt0"
    )
    assert ids_of(run("HealthcareService", q)) == ["hs-rea-lorient"]


def test_chain_and_above(run) -> None:
    assert ids_of(run("HealthcareService", "organization.type=R66|355")) == ["hs-rea-lorient"]
    # the offer of the OI is found from the EJ identifier, up the partOf tree
    r = run("HealthcareService", "organization:above.identifier=350005179")
    assert ids_of(r) == ["hs-ped-rennes", "hs-rea-rennes"]
    r = run("HealthcareService", "organization.identifier:above=350005179")
    assert ids_of(r) == ["hs-ped-rennes", "hs-rea-rennes"]


def test_reverse_chain_has(run) -> None:
    r = run("Location", "_has:HealthcareService:location:identifier=53/hs-rea-lorient,53/hs-ped-rennes")
    assert ids_of(r) == ["loc-ped-rennes", "loc-rea-lorient"]


def test_filter(run) -> None:
    q = (
        "_filter=((specialty eq R211|126) or (specialty eq R211|233)) and "
        "(age-range-low le 35|https://unitsofmeasure.org|a and age-range-high ge 35|https://unitsofmeasure.org|a)"
    )
    assert ids_of(run("HealthcareService", q)) == ["hs-rea-rennes"]
    q = "_filter=(organization.type eq R66|355) OR (name co pédia)"
    assert ids_of(run("HealthcareService", q)) == ["hs-ped-rennes", "hs-rea-lorient"]
    q = "_filter=not (name sw rea)"
    assert ids_of(run("HealthcareService", q)) == ["hs-ped-rennes"]


def test_near_is_a_true_radius_sorted_by_distance(run) -> None:
    r = run("Location", "near=48.1005|-1.6610|5|km&_sort=near")
    assert [m.res_id for m in r.matches] == ["loc-ped-rennes", "loc-rea-rennes"]
    # Lorient is ~120 km from Rennes
    assert len(run("Location", "near=48.11|-1.68|100|km").matches) == 2
    assert len(run("Location", "near=48.11|-1.68|150|km").matches) == 3
    r = run("HealthcareService", "location.near-insee-code=56121|15|km")
    assert ids_of(r) == ["hs-rea-lorient"]


def test_includes_and_iterate(run) -> None:
    r = run(
        "HealthcareService",
        "specialty=R211|126&_include=HealthcareService:organization&_include:iterate=Organization:partof"
        "&_include=HealthcareService:location",
    )
    assert sorted(i.res_id for i in r.included) == ["eg-1", "ej-1", "loc-rea-rennes", "oi-1"]
    r = run("Location", "_id=loc-rea-rennes&_revinclude=HealthcareService:location")
    assert [i.res_id for i in r.included] == ["hs-rea-rennes"]


def test_keyset_paging_is_complete_and_stable(run) -> None:
    seen: list[str] = []
    r = run("Location", "_count=1&_sort=-name")
    while True:
        seen += [m.res_id for m in r.matches]
        if not r.next_cursor:
            break
        r = run("Location", f"_count=1&_sort=-name&_cursor={r.next_cursor}")
    assert seen == ["loc-rea-rennes", "loc-rea-lorient", "loc-ped-rennes"]
    back = run("Location", f"_count=1&_sort=-name&_cursor={r.prev_cursor}")
    assert [m.res_id for m in back.matches] == ["loc-rea-lorient"]


def test_summary_count_and_last_updated(run) -> None:
    r = run("Location", "_summary=count")
    assert r.total == 3 and r.matches == []
    assert run("Location", "_lastUpdated=ge2020-01-01").total == 3
    assert run("Location", "_lastUpdated=lt2020-01-01").total == 0


@pytest.mark.parametrize(
    ("res_type", "query", "expr"),
    [
        ("Location", "nope=1", "nope"),
        ("Location", "nb-capacity=abc", "nb-capacity"),
        ("Location", "capacity-update-date=2024-13-99", "capacity-update-date"),
        ("HealthcareService", "specialty=R999|1", "specialty"),
        ("HealthcareService", "name:below=x", "name:below"),
        ("HealthcareService", "_filter=(name eq", "_filter"),
        ("HealthcareService", "_include=HealthcareService:nope", "_include"),
        ("Location", "near=91|0|10|km", "near"),
        ("HealthcareService", "_count=-1", "_count"),
    ],
)
def test_bad_input_names_the_parameter(run, res_type: str, query: str, expr: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        run(res_type, query)
    assert err.value.issues[0].expression == [expr]


def test_departement_filter(run) -> None:
    assert ids_of(run("Location", "departement=35")) == ["loc-ped-rennes", "loc-rea-rennes"]
    assert ids_of(run("HealthcareService", "location.departement=56")) == ["hs-rea-lorient"]


def test_string_starts_with_is_an_exact_prefix_range(store: ResourceStore) -> None:
    """Starts-with is compiled as a byte-ordered index range: every value with the prefix, nothing else — also
    for a prefix equal to a whole value, accents and characters that sort after ASCII."""
    names = ["Saint", "Saint-Malo", "Saint Brieuc", "Sainte-Anne", "Saintes", "Sains", "Saimt", "Évreux", "Sain€"]
    for i, name in enumerate(names):
        store.update("Organization", f"org-{i}", {"resourceType": "Organization", "id": f"org-{i}", "name": name})
    parser = QueryParser(default_registry(), make_system_resolver(lookup), CENTROIDS.get)
    engine = SearchEngine(store.engine)

    def names_for(prefix: str) -> list[str]:
        r = engine.search(parser.parse("Organization", [("name", prefix)]))
        return sorted(names[int(m.res_id.split("-")[1])] for m in r.matches)

    assert names_for("saint") == ["Saint", "Saint Brieuc", "Saint-Malo", "Sainte-Anne", "Saintes"]
    assert names_for("SAINTE") == ["Sainte-Anne", "Saintes"]
    assert names_for("evr") == ["Évreux"]
    assert names_for("sain") == [n for n in sorted(names) if n.lower().startswith("sain")]
    assert names_for("sain€") == ["Sain€"]
    assert names_for("zz") == []


def _typed(system: str, value: str, type_code: str) -> dict[str, object]:
    return {"system": system, "value": value, "type": {"coding": [{"system": ids.TRE_G07, "code": type_code}]}}


def test_identifier_of_type_and_its_rows_before_and_after_migration_0013(store: ResourceStore) -> None:
    """`identifier:of-type=system|code|value` matches the identifier with that value whose type has that code,
    not another identifier of the resource; its index row is found by the value (migration 0013: value in
    `code`, type in `text`). The migration turns rows of the old layout into the new one and back."""
    from alembic import command
    from sqlalchemy import select

    from ror.db import migrate
    from ror.db.tables import idx_token

    org = {
        "resourceType": "Organization",
        "id": "org-typed",
        "identifier": [_typed(ids.ID_NAT_STRUCT, "1350000741", "40"), _typed(ids.FINESS, "350000741", "1")],
    }
    store.update("Organization", "org-typed", org)
    store.update("Organization", "org-other", {"resourceType": "Organization", "id": "org-other", "name": "x"})
    parser = QueryParser(default_registry(), make_system_resolver(lookup), CENTROIDS.get)
    engine = SearchEngine(store.engine)

    def found(value: str) -> list[str]:
        return ids_of(engine.search(parser.parse("Organization", [("identifier:of-type", value)])))

    def rows() -> set[tuple[str | None, str | None, str | None]]:
        t = idx_token
        q = select(t.c.system, t.c.code, t.c.text).where(t.c.param == "identifier:of-type")
        with store.engine.connect() as c:
            return {tuple(r) for r in c.execute(q)}  # type: ignore[misc]

    new = {(ids.TRE_G07, "1350000741", "40"), (ids.TRE_G07, "350000741", "1")}
    assert rows() == new
    assert found(f"{ids.TRE_G07}|40|1350000741") == ["org-typed"]
    assert found("|1|350000741") == ["org-typed"]
    assert found(f"{ids.TRE_G07}|1|1350000741") == []  # the value of the other type
    assert found(f"{ids.TRE_G07}|40|350000741") == []
    cfg = migrate.alembic_config()
    try:
        with store.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0012")
        assert rows() == {(system, text, code) for system, code, text in new}
    finally:
        migrate.upgrade(store.engine)
    assert rows() == new
    assert found(f"{ids.TRE_G07}|40|1350000741") == ["org-typed"]


def test_address_matches_every_part_with_city_and_postal_code_stored_once(store: ResourceStore) -> None:
    """`address` matches any string part of an address (line, city, district, state, postal code, country,
    text) with every string modifier, while its own index rows leave the city and the postal code to the
    `address-city` / `address-postalcode` rows (search.registry `includes`; migration 0014 turns rows of the
    old layout into the new one and back)."""
    from alembic import command
    from sqlalchemy import select

    from ror.db import migrate
    from ror.db.tables import idx_string

    address = {
        "line": ["2 RUE HENRI LE GUILLOUX"],
        "city": "RENNES",
        "district": "Villejean",
        "postalCode": "35033",
        "country": "France",
    }
    for rid, extra in (("org-a", {"address": [address]}), ("org-b", {"address": [{"city": "BREST"}]}), ("org-c", {})):
        store.update("Organization", rid, {"resourceType": "Organization", "id": rid, "name": rid, **extra})
    parser = QueryParser(default_registry(), make_system_resolver(lookup), CENTROIDS.get)
    engine = SearchEngine(store.engine)

    def found(param: str, value: str) -> list[str]:
        return ids_of(engine.search(parser.parse("Organization", [(param, value)])))

    def check() -> None:
        assert found("address", "2 rue henri") == ["org-a"]  # line
        assert found("address", "renn") == ["org-a"]  # city
        assert found("address", "350") == ["org-a"]  # postal code
        assert found("address", "villej") == ["org-a"]  # district
        assert found("address", "fran") == ["org-a"]  # country
        assert found("address", "bre,rennes") == ["org-a", "org-b"]
        assert found("address:exact", "RENNES") == ["org-a"] and found("address:exact", "rennes") == []
        assert found("address:contains", "guill") == ["org-a"]
        assert found("address:missing", "true") == ["org-c"]
        assert found("address:missing", "false") == ["org-a", "org-b"]
        assert found("address-city", "renn") == ["org-a"] and found("address-city", "2 rue") == []

    def own_rows() -> list[str]:
        t = idx_string
        with store.engine.connect() as c:
            q = select(t.c.exact).where(t.c.param == "address", t.c.res_type == "Organization").order_by(t.c.exact)
            return list(c.execute(q).scalars())

    check()
    assert own_rows() == ["2 RUE HENRI LE GUILLOUX", "France", "Villejean"]
    cfg = migrate.alembic_config()
    try:
        with store.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0013")
        assert own_rows() == ["2 RUE HENRI LE GUILLOUX", "35033", "BREST", "France", "RENNES", "Villejean"]
        check()
    finally:
        migrate.upgrade(store.engine)
    assert own_rows() == ["2 RUE HENRI LE GUILLOUX", "France", "Villejean"]
    check()
    # a sort reads the included rows too: org-d's only part is a postal code, before org-a's "2 rue…"
    store.update(
        "Organization",
        "org-d",
        {"resourceType": "Organization", "id": "org-d", "name": "org-d", "address": [{"postalCode": "00100"}]},
    )
    order = engine.search(parser.parse("Organization", [("_sort", "address"), ("name", "org-a,org-d")]))
    assert [m.res_id for m in order.matches] == ["org-d", "org-a"]


def test_a_parameter_can_only_include_parameters_of_its_type() -> None:
    from ror.search.registry import Registry, SearchParam

    city = SearchParam("address-city", ("Location",), "string", "Location.address.city", "u1")
    status = SearchParam("status", ("Location",), "token", "Location.status", "u2")
    address = SearchParam("address", ("Location",), "string", "Location.address.line", "u3", includes=("status",))
    with pytest.raises(ValueError, match="includes status"):
        Registry([city, status, address])
    ok = SearchParam("address", ("Location",), "string", "Location.address.line", "u3", includes=("address-city",))
    assert Registry([city, status, ok]).get("Location", "address").row_params == ("address", "address-city")  # type: ignore[union-attr]


def test_cached_plan_reads_the_database_every_time(store: ResourceStore) -> None:
    """The engine keeps each query's statements, never its answers: a write is seen by the next search of the same
    query (matches, total and includes), and a deletion too."""
    populate(store)
    parser = QueryParser(default_registry(), make_system_resolver(lookup), CENTROIDS.get)
    engine = SearchEngine(store.engine)
    items = [("specialty", "R211|126"), ("_include", "HealthcareService:location")]

    def search() -> SearchResult:
        return engine.search(parser.parse("HealthcareService", items))

    before = search()
    assert ids_of(before) == ["hs-rea-rennes"] and before.total == 1
    copy = orjson.loads(store.read("HealthcareService", "hs-rea-rennes").content)
    copy["id"] = "hs-rea-rennes-2"
    store.update("HealthcareService", "hs-rea-rennes-2", copy)
    after = search()
    assert len(engine._plans) == 1  # the same plan served both searches
    assert ids_of(after) == ["hs-rea-rennes", "hs-rea-rennes-2"] and after.total == 2
    assert [i.res_id for i in after.included] == ["loc-rea-rennes"]
    store.delete("HealthcareService", "hs-rea-rennes")
    assert ids_of(search()) == ["hs-rea-rennes-2"] and search().total == 1
    # contents come as UTF-8 bytes from search statements only; other reads of the same engine still get text
    assert isinstance(after.matches[0].content, bytes)
    assert isinstance(store.read("HealthcareService", "hs-rea-rennes-2").content, str)


def test_total_from_a_complete_first_page_and_from_a_count(run) -> None:
    """A first page holding every match gives the total without counting; otherwise the total is counted."""
    assert run("Location", "").total == 3
    partial = run("Location", "_count=2")
    assert partial.total == 3 and len(partial.matches) == 2 and partial.next_cursor
    last = run("Location", f"_count=2&_cursor={partial.next_cursor}")
    assert last.total == 3 and len(last.matches) == 1
    assert run("Location", "_count=3").total == 3
    assert run("Location", "_total=none").total is None


def test_clock_dependent_queries_are_not_kept(run) -> None:
    run("Location", "_lastUpdated=ap2020-01-01")
    run("Location", "_lastUpdated=ge2020-01-01")
    assert [key[1][0][4][0][1] for key in run.engine._plans] == ["ge"]


def test_wildcard_includes(run) -> None:
    r = run("HealthcareService", "specialty=R211|126&_include=*")
    assert sorted(i.res_id for i in r.included) == ["loc-rea-rennes", "oi-1"]
    r = run("HealthcareService", "specialty=R211|126&_include=*&_include:iterate=Organization:partof")
    assert sorted(i.res_id for i in r.included) == ["eg-1", "ej-1", "loc-rea-rennes", "oi-1"]
    r = run("Location", "_id=loc-rea-rennes&_revinclude=*")
    assert [i.res_id for i in r.included] == ["hs-rea-rennes"]


def test_single_criterion_total_counted_on_the_index_table_is_exact(run, store: ResourceStore) -> None:
    """A query of one plain criterion is counted on its index table alone (no probe of `resource` per match):
    the total must still count each live resource once — a resource matching through two values (name and
    alias) once, a deleted one not at all, another type never."""
    base = {"resourceType": "Organization", "meta": {"tag": [{"system": ids.TRE_R30, "code": "53"}]}}
    store.update("Organization", "org-count-a", dict(base, name="Zorglub Alpha", alias=["Zorglub Bis"]))
    store.update("Organization", "org-count-b", dict(base, name="Zorglub Beta"))
    store.update("Organization", "org-count-c", dict(base, name="Zorglub Gamma"))
    store.update("Location", "loc-count", {"resourceType": "Location", "name": "Zorglub Lieu", "status": "active"})
    store.delete("Organization", "org-count-c")
    parser = QueryParser(default_registry(), make_system_resolver(lookup), CENTROIDS.get)
    count_sql = str(run.engine._plan(parser.parse("Organization", [("name", "zorglub")]), None).count)  # type: ignore[attr-defined]
    assert "idx_string" in count_sql and "resource " not in count_sql.replace("resource_pk", "")
    found = run("Organization", "name=zorglub")
    assert ids_of(found) == ["org-count-a", "org-count-b"]
    assert found.total == 2
    assert run("Organization", "name=zorglub&_summary=count").total == 2
    assert run("Organization", "name=zorglub&_count=1").total == 2
    assert run("Location", "name=zorglub").total == 1


def test_one_criterion_pages_take_their_keys_from_the_index_set(run, store: ResourceStore) -> None:
    """A one-criterion query in key order pages over its index set (the page's keys first, then their rows):
    every match exactly once forward, the same pages backward, a resource matching twice once, a deleted one
    never, and a cursor whose key is not a number refused."""
    base = {"resourceType": "Organization", "meta": {"tag": [{"system": ids.TRE_R30, "code": "53"}]}}
    for n in range(7):
        extra = {"alias": [f"Quixote {n} bis"]} if n % 3 == 0 else {}
        store.update("Organization", f"org-page-{n}", dict(base, name=f"Quixote {n}", **extra))
    store.delete("Organization", "org-page-4")
    expected = [f"org-page-{n}" for n in (0, 1, 2, 3, 5, 6)]
    parser = QueryParser(default_registry(), make_system_resolver(lookup), CENTROIDS.get)
    first_sql = str(run.engine._plan(parser.parse("Organization", [("name", "quixote")]), None).first_page)  # type: ignore[attr-defined]
    assert "DISTINCT" in first_sql and "idx_string" in first_sql
    # PostgreSQL sorts the keys of a range as an expression (not in key order: no walk of ix_idx_string_pk)
    assert (" + " in first_sql) == (store.engine.dialect.name == "postgresql")
    token_sql = str(run.engine._plan(parser.parse("Organization", [("_tag", "53")]), None).first_page)  # type: ignore[attr-defined]
    assert "DISTINCT" in token_sql and " + " not in token_sql  # one token value: read in key order
    pages: list[list[str]] = []
    r = run("Organization", "name=quixote&_count=2")
    while True:
        assert r.total == 6
        pages.append([m.res_id for m in r.matches])
        if not r.next_cursor:
            break
        r = run("Organization", f"name=quixote&_count=2&_cursor={r.next_cursor}")
    assert [x for page in pages for x in page] == expected
    assert pages == [expected[0:2], expected[2:4], expected[4:6]]
    back = run("Organization", f"name=quixote&_count=2&_cursor={r.prev_cursor}")
    assert [m.res_id for m in back.matches] == expected[2:4]
    back = run("Organization", f"name=quixote&_count=2&_cursor={back.prev_cursor}")
    assert [m.res_id for m in back.matches] == expected[0:2] and not back.prev_cursor
    import base64

    bad = base64.urlsafe_b64encode(orjson.dumps(["a", ["x"]])).decode().rstrip("=")
    with pytest.raises(InvalidRequest, match="_cursor"):
        run("Organization", f"name=quixote&_count=2&_cursor={bad}")


@pytest.mark.parametrize(
    "res_type,query",
    [
        ("Location", "address-postalcode=35,22&_count=1"),
        ("Location", "address-postalcode=35,22,56"),
        ("Location", "_count=1"),
        ("HealthcareService", "_count=2&_include=HealthcareService:location"),
        ("Location", "_summary=count"),
    ],
)
def test_driver_level_first_pages_answer_as_sqlalchemy(run, store: ResourceStore, res_type: str, query: str) -> None:
    """SQLite reads a kept plan's count and first page at driver level (no sort): same matches, total, includes
    and cursors as through SQLAlchemy's result layer (PostgreSQL always takes the latter)."""
    items = [tuple(p.split("=", 1)) for p in query.split("&")]
    parser = QueryParser(default_registry(), make_system_resolver(lookup), CENTROIDS.get)
    plan = run.engine._plan(parser.parse(res_type, items), None)  # type: ignore[attr-defined]
    assert (plan.raw_first is not None) == (store.engine.dialect.name == "sqlite")
    through_sqlalchemy = SearchEngine(store.engine)
    through_sqlalchemy._with_raw = lambda p: p  # type: ignore[method-assign]
    for _ in range(2):  # the second time from the kept plan
        raw = run(res_type, query)
        ref = through_sqlalchemy.search(parser.parse(res_type, items))  # type: ignore[arg-type]
        assert raw.total == ref.total and raw.total is not None
        assert [(m.res_id, m.content) for m in raw.matches] == [(m.res_id, m.content) for m in ref.matches]
        assert [m.res_id for m in raw.included] == [m.res_id for m in ref.included]
        assert (raw.next_cursor, raw.prev_cursor) == (ref.next_cursor, ref.prev_cursor)


def test_string_starts_with_uses_the_lookup_index_in_byte_order(store: ResourceStore) -> None:
    """Starts-with is a byte-ordered range of `ix_idx_string_lookup`: on PostgreSQL the column is in the C
    collation (migration 0015, which replaced the separate `ix_idx_string_prefix` of 0011; downgrade restores
    it), so the one index serves it; the matches are the same on both engines and both layouts."""
    from alembic import command
    from sqlalchemy import text

    from ror.db import migrate

    for rid, name in (("org-s1", "Centre Hospitalier"), ("org-s2", "Centre Éole"), ("org-s3", "Clinique")):
        store.update("Organization", rid, {"resourceType": "Organization", "id": rid, "name": name})
    parser = QueryParser(default_registry(), make_system_resolver(lookup), CENTROIDS.get)
    engine = SearchEngine(store.engine)

    def found(value: str) -> list[str]:
        return ids_of(engine.search(parser.parse("Organization", [("name", value)])))

    def check() -> None:
        assert found("centre") == ["org-s1", "org-s2"]
        assert found("centre e") == ["org-s2"] and found("CENTRE É") == ["org-s2"]
        assert found("cl") == ["org-s3"] and found("z") == []

    pg = store.engine.dialect.name == "postgresql"

    def layout() -> tuple[str | None, bool, str]:
        """(collation of idx_string.value, whether the 0011 index exists, the plan of a starts-with range)"""
        with store.engine.connect() as c:
            collation = c.execute(
                text(
                    "SELECT collation_name FROM information_schema.columns"
                    " WHERE table_name = 'idx_string' AND column_name = 'value'"
                )
            ).scalar()
            prefix = c.execute(text("SELECT to_regclass('ix_idx_string_prefix') IS NOT NULL")).scalar()
            c.execute(text("SET LOCAL enable_seqscan = off"))
            q = "SELECT resource_pk FROM idx_string WHERE res_type = 'Organization' AND param = 'name'"
            plan = c.execute(text(f"EXPLAIN {q} AND value >= 'centre' AND value < 'centrf'")).scalars().all()
        return collation, bool(prefix), "\n".join(plan)

    check()
    if not pg:
        return
    collation, prefix, plan = layout()
    assert (collation, prefix) == ("C", False) and "ix_idx_string_lookup" in plan
    cfg = migrate.alembic_config()
    try:
        with store.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0014")
        collation, prefix, plan = layout()
        assert collation != "C" and prefix
        check()
    finally:
        migrate.upgrade(store.engine)
    assert layout()[:2] == ("C", False)
    check()
