"""Search benchmark: the IG's example queries (docs/ror-fhir-api.md §3.3) on national demo data, through the
FHIR API (in-process ASGI, JSON bundle built) and as hand-written indexed SQL answering the same question.

    python bench/bench_search.py [--sqlite PATH] [--postgres URL] [--scope national] [--repeat 30] [--skip-load]

Prints per query and backend: the API's p50/p95 (HTTP + parsing + SQL + JSON bundle), the hand-written SQL's p50/p95
(total + page + the same includes), their ratios, and the search core alone (parse + SQL + rows, no HTTP/JSON) with
its ratio to the hand SQL; totals and resource counts of both sides are printed so that a wrong answer shows.
Writes bench/results/search.json.

`api` is an HTTP request through the whole ASGI app (middlewares, routing, the thread pool of sync routes, the
response body) sent by `httpx.AsyncClient(transport=ASGITransport(app))` in one event loop; `tc` is the same request
through Starlette's TestClient, which adds a thread-portal round trip per ASGI message (a test-harness cost that a
server does not have). `core` runs the parsed query on a warm engine (statements kept per query), `cold` on a fresh
engine each time (statements built again: what a query seen for the first time costs)."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import fresh_postgres, peak_rss_mb, percentiles, write_result
from ror.access.policy import Profile
from ror.config import get_settings
from ror.db import migrate
from ror.db.database import analyze
from ror.db.engine import make_engine
from ror.directory.scope import Scope
from ror.search.engine import RAW_TEXT, SearchEngine
from ror.search.query import QueryParser
from ror.search.systems import make_system_resolver
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
    analyze(engine)  # as `ror demo` / `ror setup` do: both planners need statistics after a bulk load
    print(f"  loaded in {time.perf_counter() - t0:.0f} s", file=sys.stderr)


# (name, FHIR query, hand-written SQL). The SQL is what an engineer who knows our tables would write for that one
# question, in the form that is fast on both engines (index range scans, `IN` sets, a correlated EXISTS where a
# small set drives): `W` selects the matches; the timed work is the total (count over W) plus the page of 200
# (ordered by pk) *with the same _include/_revinclude resources* the API returns, in one statement.
R343 = "https://mos.esante.gouv.fr/NOS/TRE_R343-FonctionLieu/FHIR/TRE-R343-FonctionLieu"
SPEC127 = (
    "r.pk IN (SELECT t.resource_pk FROM idx_token t WHERE t.res_type='HealthcareService' AND "
    f"t.param='specialty' AND t.code='127' AND t.system='{R211}')"
)
DIST = {
    "sqlite": "ror_distance_km(48.11, -1.68, g.lat, g.lon)",
    "postgresql": "2*6371.0088*asin(least(1.0, sqrt(power(sin(radians(g.lat-48.11)/2),2)+cos(radians(48.11))"
    "*cos(radians(g.lat))*power(sin(radians(g.lon+1.68)/2),2))))",
}
FALSE = {"sqlite": "0", "postgresql": "false"}
PAGE = "ORDER BY r.pk LIMIT 200"

# includes, as an application would fetch them: one statement per hop, keyed by the previous hop's rows
# (name, source rows, SQL with {pks} or {ids} of the source rows)
Step = tuple[str, str, str]


def _targets(name: str, source: str, param: str, target_type: str) -> Step:
    return (
        name,
        source,
        f"SELECT x.pk, x.res_id, x.content FROM resource x WHERE x.res_type='{target_type}' AND x.res_id IN "
        f"(SELECT f.target_id FROM idx_reference f WHERE f.resource_pk IN ({{pks}}) AND f.param='{param}')",
    )


def _sources(name: str, source: str, src_type: str, param: str, target_type: str) -> Step:
    return (
        name,
        source,
        "SELECT x.pk, x.res_id, x.content FROM resource x WHERE x.deleted={F} AND x.pk IN (SELECT f.resource_pk "
        f"FROM idx_reference f WHERE f.param='{param}' AND f.target_type='{target_type}' AND "
        f"f.res_type='{src_type}' AND f.target_id IN ({{ids}}))",
    )


REV_HS_LOCATION = [_sources("hs", "page", "HealthcareService", "location", "Location")]
HS_INCLUDES = [
    _targets("org", "page", "organization", "Organization"),
    _targets("parent", "org", "partof", "Organization"),
    _targets("loc", "page", "location", "Location"),
    _sources("roles", "page", "PractitionerRole", "service", "HealthcareService"),
    _targets("pract", "roles", "practitioner", "Practitioner"),
]
NEAR_50KM = (
    "EXISTS (SELECT 1 FROM idx_reference f JOIN resource l ON l.res_type='Location' AND l.res_id=f.target_id "
    "JOIN idx_geo g ON g.resource_pk=l.pk WHERE f.resource_pk=r.pk AND f.param='location' AND "
    "g.lat BETWEEN 47.66 AND 48.56 AND g.lon BETWEEN -2.35 AND -1.01 AND {dist} <= 50)"
)
BED_NOW = (
    "EXISTS (SELECT 1 FROM idx_reference f JOIN resource l ON l.res_type='Location' AND l.res_id=f.target_id "
    "JOIN capacity c ON c.location_pk=l.pk WHERE f.resource_pk=r.pk AND f.param='location' AND "
    "c.status='02' AND c.nb>0)"
)


def _postcodes(*prefixes: str) -> str:
    ranges = " OR ".join(f"(s.value >= '{p}' AND s.value < '{p[:-1]}{chr(ord(p[-1]) + 1)}')" for p in prefixes)
    where = f"s.res_type='Location' AND s.param='address-postalcode' AND ({ranges})"
    return f"SELECT s.resource_pk FROM idx_string s WHERE {where}"


TAG53 = "SELECT t.resource_pk FROM idx_token t WHERE t.res_type='Location' AND t.param='_tag' AND t.code='53'"
TYPE001 = (
    "SELECT t.resource_pk FROM idx_token t WHERE t.res_type='Location' AND "
    f"t.param='type' AND t.code='001' AND t.system='{R343}'"
)
# Queries of one index criterion: index rows exist only for live versions and carry the type, so an engineer
# counts the index set alone and takes the page's keys from it before reading their rows.
INDEX_SETS = {"A2 postcodes 35,22,29,56": _postcodes("35", "22", "29", "56"), "A3 _tag region 53": TAG53}
INDEX_SETS["H type 001"] = TYPE001


def queries() -> list[tuple[str, str, str, list[Step]]]:
    """(name, FHIR query, W: the matches' condition on `resource r`, the include steps)."""
    loc = "r.res_type='Location' AND r.deleted={F}"
    hs = "r.res_type='HealthcareService' AND r.deleted={F}"
    return [
        ("A1 Location + revinclude", "Location?_revinclude=HealthcareService:location", loc, REV_HS_LOCATION),
        (
            "A2 postcodes 35,22,29,56",
            "Location?address-postalcode=35,22,29,56&_revinclude=HealthcareService:location",
            f"{loc} AND r.pk IN ({_postcodes('35', '22', '29', '56')})",
            REV_HS_LOCATION,
        ),
        (
            "A3 _tag region 53",
            "Location?_tag=53&_revinclude=HealthcareService:location",
            f"{loc} AND r.pk IN ({TAG53})",
            REV_HS_LOCATION,
        ),
        (
            "A6 _lastUpdated",
            "Location?_lastUpdated=ge2022-11-06T15:00&_revinclude=HealthcareService:location",
            f"{loc} AND r.last_updated >= '2022-11-06 15:00:00'",
            REV_HS_LOCATION,
        ),
        ("C1 specialty réa + INC", f"HealthcareService?specialty=R211|127&{INC}", f"{hs} AND {SPEC127}", HS_INCLUDES),
        (
            "C6 réa within 50 km + INC",
            f"HealthcareService?specialty=R211|127&location.near=48.11|-1.68|50|km&{INC}",
            f"{hs} AND {SPEC127} AND {NEAR_50KM}",
            HS_INCLUDES,
        ),
        (
            "D1 available bed now",
            "HealthcareService?specialty=R211|127&location.capacity-status=R330|02"
            "&location.nb-capacity=gt0&_include=HealthcareService:location",
            f"{hs} AND {SPEC127} AND {BED_NOW}",
            [_targets("loc", "page", "location", "Location")],
        ),
        (
            "H type 001",
            "Location?type=R343|001",
            f"{loc} AND r.pk IN ({TYPE001})",
            [],
        ),
    ]


async def _interleaved(samplers: dict[str, Callable[[], Any]], repeat: int) -> dict[str, list[float]]:
    """One sample of each measure in turn, `repeat` times (ms): a burst of background load on the shared machine
    weighs on every measure alike instead of on whichever ran during it, so the ratios stay meaningful."""
    out: dict[str, list[float]] = {k: [] for k in samplers}
    for _ in range(repeat):
        for k, fn in samplers.items():
            t0 = time.perf_counter()
            r = fn()
            if inspect.isawaitable(r):
                await r
            out[k].append((time.perf_counter() - t0) * 1000)
    return out


def run_backend(name: str, engine: Engine, repeat: int) -> list[dict[str, Any]]:
    # httpx's ASGITransport tries `import sniffio` on every request (not installed here: a failed import searches
    # sys.path each time, ~0.1 ms of client-side time); None in sys.modules makes it fail at once
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]
    app = create_app(engine, anonymous_profile=Profile.ALL)
    services = Services(engine)
    parser = QueryParser(
        services.registry, make_system_resolver(services.terminology.resolve_system), services.geography.centroid
    )
    search_engine = SearchEngine(engine)
    out = []
    loop = asyncio.new_event_loop()
    asgi = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    with TestClient(app) as client, engine.connect() as conn:  # TestClient: runs the app's start-up too
        for qname, fhir, where, includes in queries():

            def tc(fhir: str = fhir) -> Any:
                r = client.get("/fhir/" + fhir)
                assert r.status_code == 200, r.text[:300]
                return r

            async def api(fhir: str = fhir) -> Any:
                """The request through the whole ASGI app (middlewares, routing, thread pool, response) from an
                HTTP client in the same event loop, without the test client's thread portal per message."""
                r = await asgi.get("/fhir/" + fhir)
                assert r.status_code == 200, r.text[:300]
                return r

            tc()
            first = loop.run_until_complete(api()).json()
            res_type, _, qs = fhir.partition("?")

            def core(res_type: str = res_type, items: list[tuple[str, str]] = parse_qsl(qs)) -> Any:
                return search_engine.search(parser.parse(res_type, items))  # SQL + rows, no HTTP, no JSON

            def core_cold(res_type: str = res_type, items: list[tuple[str, str]] = parse_qsl(qs)) -> Any:
                return SearchEngine(engine).search(parser.parse(res_type, items))  # statements built again

            w = where.replace("{F}", FALSE[name]).replace("{dist}", DIST[name])
            count_sql = text(f"SELECT count(*) FROM resource r WHERE {w}")
            page_sql = text(f"SELECT r.pk, r.res_id, r.content FROM resource r WHERE {w} {PAGE}")
            if qname in INDEX_SETS:
                m = INDEX_SETS[qname]
                count_sql = text(f"SELECT count(DISTINCT m.resource_pk) FROM ({m}) m")
                keys = f"SELECT DISTINCT m.resource_pk FROM ({m}) m ORDER BY m.resource_pk LIMIT 200"
                page_sql = text(f"SELECT r.pk, r.res_id, r.content FROM resource r WHERE r.pk IN ({keys}) {PAGE}")

            def run_sql(
                page_sql: Any = page_sql, count_sql: Any = count_sql, steps: list[Step] = includes, raw: bool = False
            ) -> tuple[int, list[Any]]:
                """`raw`: contents fetched as UTF-8 bytes, as the engine does (a BLOB on SQLite, the text loaded as
                bytes on PostgreSQL) — the hand SQL at its fastest."""

                def run(stmt: Any) -> list[Any]:
                    if raw:
                        sql = str(stmt).replace("x.content", "CAST(x.content AS BLOB)")
                        sql = sql.replace("r.content", "CAST(r.content AS BLOB)")
                        stmt = text(sql) if name == "sqlite" else stmt.execution_options(**{RAW_TEXT: True})
                    return list(conn.execute(stmt).all())

                total = conn.execute(count_sql).scalar()
                rows = {"page": run(page_sql)}
                for step_name, source, sql in steps:
                    src = rows[source]
                    if not src:
                        rows[step_name] = []
                        continue
                    pks = ", ".join(str(x[0]) for x in src)
                    ids = ", ".join(f"'{x[1]}'" for x in src)
                    stmt = sql.replace("{F}", FALSE[name]).replace("{pks}", pks).replace("{ids}", ids)
                    rows[step_name] = run(text(stmt))
                distinct = {x[0] for part in rows.values() for x in part}
                return int(total or 0), sorted(distinct)

            def run_sql_raw(run_sql: Callable[..., Any] = run_sql) -> Any:
                return run_sql(raw=True)

            sql_total, sql_rows = run_sql()
            assert run_sql_raw() == (sql_total, sql_rows)
            samplers = {"api": api, "sql": run_sql, "sqlb": run_sql_raw, "tc": tc, "core": core, "cold": core_cold}
            ms = loop.run_until_complete(_interleaved(samplers, repeat))
            api_ms, sql_ms, sqlb_ms, tc_ms, core_ms, cold_ms = (ms[k] for k in samplers)
            p50, p95 = percentiles(api_ms)
            tc50, tc95 = percentiles(tc_ms)
            row = {
                "backend": name,
                "query": qname,
                "total": first.get("total"),
                "entries": len(first.get("entry", [])),
                "api_p50_ms": round(p50, 1),
                "api_p95_ms": round(p95, 1),
                "tc_p50_ms": round(tc50, 1),
                "tc_p95_ms": round(tc95, 1),
                "core_p50_ms": round(percentiles(core_ms)[0], 1),
                "core_cold_p50_ms": round(percentiles(cold_ms)[0], 1),
            }
            row["sql_total"], row["sql_resources"] = sql_total, len(sql_rows)
            if sql_ms:
                s50, s95 = percentiles(sql_ms)
                row |= {
                    "sql_p50_ms": round(s50, 2),
                    "sql_p95_ms": round(s95, 2),
                    "ratio_p50": round(p50 / max(s50, 0.01), 1),
                    "tc_ratio_p50": round(tc50 / max(s50, 0.01), 1),
                    "ratio_p95": round(p95 / max(s95, 0.01), 1),
                    "core_ratio_p50": round(percentiles(core_ms)[0] / max(s50, 0.01), 1),
                    "sqlb_p50_ms": round(percentiles(sqlb_ms)[0], 2),
                    "ratio_b_p50": round(p50 / max(percentiles(sqlb_ms)[0], 0.01), 1),
                }
            out.append(row)
            print(row, file=sys.stderr)
    loop.run_until_complete(asgi.aclose())
    loop.close()
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
    head = f"{'backend':<11} {'query':<28} {'total':>7} {'sql tot':>7} {'entries':>7} {'sql res':>7} {'p50 ms':>7}"
    head += f" {'p95 ms':>7} {'sql p50':>7} {'sql p95':>7} {'r p50':>5} {'r p95':>5} {'core':>6} {'r core':>6}"
    print(head + f" {'cold':>6} {'tc p50':>7} {'tc p95':>7} {'r tc':>5} {'sqlb':>6} {'r b':>5}")
    for r in results:
        print(
            f"{r['backend']:<11} {r['query']:<28} {r['total']!s:>7} {r['sql_total']!s:>7} {r['entries']:>7} "
            f"{r['sql_resources']:>7} {r['api_p50_ms']:>7} {r['api_p95_ms']:>7} {r.get('sql_p50_ms', '-')!s:>7} "
            f"{r.get('sql_p95_ms', '-')!s:>7} {r.get('ratio_p50', '-')!s:>5} {r.get('ratio_p95', '-')!s:>5} "
            f"{r['core_p50_ms']!s:>6} {r.get('core_ratio_p50', '-')!s:>6} {r['core_cold_p50_ms']!s:>6} "
            f"{r['tc_p50_ms']!s:>7} {r['tc_p95_ms']!s:>7} {r.get('tc_ratio_p50', '-')!s:>5} "
            f"{r.get('sqlb_p50_ms', '-')!s:>6} {r.get('ratio_b_p50', '-')!s:>5}"
        )
    print(f"peak RSS {peak_rss_mb():.0f} MB")
    write_result("search", {"scope": args.scope, "repeat": args.repeat, "results": results})


if __name__ == "__main__":
    main()
