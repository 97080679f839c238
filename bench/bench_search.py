"""Search benchmark: the IG's example queries (docs/ror-fhir-api.md §3.3) on national demo data, through the
FHIR API (in-process ASGI, JSON bundle built) and as hand-written indexed SQL answering the same question.

    python bench/bench_search.py [--sqlite PATH] [--postgres URL] [--scope national] [--repeat 30] [--skip-load]

Prints p50/p95 per query and backend and the ratio API/SQL; writes bench/results/search.json."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import fresh_postgres, peak_rss_mb, percentiles, timed, write_result
from ror.access.policy import Profile
from ror.config import get_settings
from ror.db import migrate
from ror.db.engine import make_engine
from ror.directory.scope import Scope
from ror.server import create_app
from ror.services import Services

R211 = "https://mos.esante.gouv.fr/NOS/TRE_R211-ActiviteOperationnelle/FHIR/TRE-R211-ActiviteOperationnelle"
R330 = "https://mos.esante.gouv.fr/NOS/TRE_R330-TypeStatutCapacite/FHIR/TRE-R330-TypeStatutCapacite"
INC = (
    "_include=HealthcareService:organization&_include:iterate=Organization:partof&_include=HealthcareService:location"
    "&_revinclude=PractitionerRole:service&_include=PractitionerRole:practitioner"
)


def load(engine: Engine, scope: str) -> None:
    from ror.directory.demo import load_demo
    from ror.directory.finess import import_finess
    from ror.geo.loader import load_geography
    from ror.terminology.loader import load_nos

    ref = get_settings().reference_data
    assert ref is not None, "reference data needed (ROR_REFERENCE_DATA)"
    migrate.upgrade(engine)
    services = Services(engine)
    t0 = time.perf_counter()
    load_nos(engine, ref / "nos")
    load_geography(engine, ref / "geo")
    sc = Scope.parse(scope)
    import_finess(
        services.store,
        ref / "finess" / "finess_et_20210108_flat_from_fhir.csv.gz",
        scope=sc,
        geography=services.geography,
        progress=True,
    )
    load_demo(services.store, ref, scope=sc, progress=True)
    print(f"  loaded in {time.perf_counter() - t0:.0f} s", file=sys.stderr)


# (name, FHIR query, hand-written SQL returning the same first page of ids). The SQL is what an engineer would
# write for that one question on our tables: joins on the index tables, same ordering (pk), same page size.
SPEC127 = (
    "EXISTS (SELECT 1 FROM idx_token t WHERE t.resource_pk=r.pk AND t.res_type='HealthcareService' AND "
    f"t.param='specialty' AND t.code='127' AND t.system='{R211}')"
)
DIST = {
    "sqlite": "ror_distance_km(48.11, -1.68, g.lat, g.lon)",
    "postgresql": "2*6371.0088*asin(least(1.0, sqrt(power(sin(radians(g.lat-48.11)/2),2)+cos(radians(48.11))"
    "*cos(radians(g.lat))*power(sin(radians(g.lon+1.68)/2),2))))",
}


PAGE = "ORDER BY r.pk LIMIT 200"


def queries() -> list[tuple[str, str, str]]:
    """The hand-written SQL answers the same question: the total and the first page of resources (ordered by pk).
    It does not fetch the _include/_revinclude resources, so the ratio is an upper bound of our overhead."""
    page = PAGE
    return [
        (
            "A1 Location + revinclude",
            "Location?_revinclude=HealthcareService:location",
            f"SELECT r.pk FROM resource r WHERE r.res_type='Location' AND NOT r.deleted {page}",
        ),
        (
            "A2 postcodes 35,22,29,56",
            "Location?address-postalcode=35,22,29,56&_revinclude=HealthcareService:location",
            "SELECT r.pk FROM resource r WHERE r.res_type='Location' AND NOT r.deleted AND EXISTS (SELECT 1 FROM "
            "idx_string s WHERE s.resource_pk=r.pk AND s.res_type='Location' AND s.param='address-postalcode' AND "
            f"(s.value LIKE '35%' OR s.value LIKE '22%' OR s.value LIKE '29%' OR s.value LIKE '56%')) {page}",
        ),
        (
            "A3 _tag region 53",
            "Location?_tag=53&_revinclude=HealthcareService:location",
            f"SELECT r.pk FROM resource r WHERE r.res_type='Location' AND NOT r.deleted AND r.region='53' {page}",
        ),
        (
            "A6 _lastUpdated",
            "Location?_lastUpdated=ge2022-11-06T15:00&_revinclude=HealthcareService:location",
            "SELECT r.pk FROM resource r WHERE r.res_type='Location' AND NOT r.deleted AND "
            f"r.last_updated >= '2022-11-06 15:00:00' {page}",
        ),
        (
            "C1 specialty réa",
            f"HealthcareService?specialty=R211|127&{INC}",
            "SELECT r.pk FROM resource r JOIN idx_token t ON t.resource_pk=r.pk WHERE r.res_type='HealthcareService' "
            f"AND NOT r.deleted AND t.res_type='HealthcareService' AND t.param='specialty' AND t.code='127' AND "
            f"t.system='{R211}' {page}",
        ),
        (
            "C6 réa within 50 km",
            f"HealthcareService?specialty=R211|127&location.near=48.11|-1.68|50|km&{INC}",
            f"SELECT r.pk FROM resource r WHERE r.res_type='HealthcareService' AND NOT r.deleted AND {SPEC127} AND "
            "EXISTS (SELECT 1 FROM idx_reference f JOIN resource l ON l.res_type='Location' AND l.res_id=f.target_id "
            "JOIN idx_geo g ON g.resource_pk=l.pk WHERE f.resource_pk=r.pk AND f.param='location' AND "
            f"g.lat BETWEEN 47.66 AND 48.56 AND g.lon BETWEEN -2.35 AND -1.01 AND {{dist}} <= 50) {page}",
        ),
        (
            "D1 available bed now",
            "HealthcareService?specialty=R211|127&location.capacity-status=R330|02"
            "&location.nb-capacity=gt0&_include=HealthcareService:location",
            f"SELECT r.pk FROM resource r WHERE r.res_type='HealthcareService' AND NOT r.deleted AND {SPEC127} AND "
            "EXISTS (SELECT 1 FROM idx_reference f JOIN capacity c ON c.location_id=f.target_id "
            "WHERE f.resource_pk=r.pk AND f.param='location' AND c.status='02' AND c.nb>0) "
            f"{page}",
        ),
        (
            "H type 001",
            "Location?type=R343|001",
            "SELECT r.pk FROM resource r WHERE r.res_type='Location' AND NOT r.deleted AND EXISTS (SELECT 1 FROM "
            f"idx_token t WHERE t.resource_pk=r.pk AND t.param='type' AND t.code='001') {page}",
        ),
    ]


def run_backend(name: str, engine: Engine, repeat: int) -> list[dict[str, Any]]:
    app = create_app(engine, anonymous_profile=Profile.ALL)
    out = []
    with TestClient(app) as client, engine.connect() as conn:
        for qname, fhir, sql in queries():

            def api(fhir: str = fhir) -> Any:
                r = client.get("/fhir/" + fhir)
                assert r.status_code == 200, r.text[:300]
                return r

            first = api().json()
            api_ms = timed(api, repeat)
            sql_ms: list[float] = []
            if sql:
                sql = sql.replace("{dist}", DIST[name])
                page_sql = text(sql.replace("SELECT r.pk", "SELECT r.pk, r.content", 1))
                count_sql = text("SELECT count(*) FROM (" + sql.replace(PAGE, "") + ") x")

                def run_sql(page_sql: Any = page_sql, count_sql: Any = count_sql) -> Any:
                    conn.execute(count_sql).scalar()
                    return conn.execute(page_sql).all()

                sql_ms = timed(run_sql, repeat)
            p50, p95 = percentiles(api_ms)
            row = {
                "backend": name,
                "query": qname,
                "total": first.get("total"),
                "entries": len(first.get("entry", [])),
                "api_p50_ms": round(p50, 1),
                "api_p95_ms": round(p95, 1),
            }
            if sql_ms:
                s50, s95 = percentiles(sql_ms)
                row |= {
                    "sql_p50_ms": round(s50, 2),
                    "sql_p95_ms": round(s95, 2),
                    "ratio_p50": round(p50 / max(s50, 0.01), 1),
                }
            out.append(row)
            print(row, file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sqlite", default="/tmp/ror-bench-search.db")
    ap.add_argument("--postgres", default="")
    ap.add_argument("--scope", default="national")
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--skip-load", action="store_true")
    args = ap.parse_args()
    results: list[dict[str, Any]] = []
    backends: list[tuple[str, str]] = [("sqlite", f"sqlite:///{args.sqlite}")]
    if args.postgres != "none":
        backends.append(("postgresql", args.postgres or fresh_postgres("ror_bench_search")))
    for name, url in backends:
        if not args.skip_load and name == "sqlite":
            Path(args.sqlite).unlink(missing_ok=True)
        engine = make_engine(url)
        if not args.skip_load:
            load(engine, args.scope)
        results += run_backend(name, engine, args.repeat)
        engine.dispose()
    print(f"{'backend':<11} {'query':<28} {'total':>7} {'p50 ms':>8} {'p95 ms':>8} {'sql p50':>8} {'ratio':>6}")
    for r in results:
        print(
            f"{r['backend']:<11} {r['query']:<28} {r['total']!s:>7} {r['api_p50_ms']:>8} {r['api_p95_ms']:>8} "
            f"{r.get('sql_p50_ms', '-')!s:>8} {r.get('ratio_p50', '-')!s:>6}"
        )
    print(f"peak RSS {peak_rss_mb():.0f} MB")
    write_result("search", {"scope": args.scope, "repeat": args.repeat, "results": results})


if __name__ == "__main__":
    main()
