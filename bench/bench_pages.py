"""Server time of the main web pages on a loaded database (default: a copy of the national demo that
`bench_search.py` leaves in /tmp/ror-bench-search.db), p50/p95 against the 300 ms target of issue 6.

The pages are requested in-process through the ASGI app (httpx TestClient, no network), logged in as a national
administrator created in the benchmark database; the time measured is the request → full HTML response. The source
database is never written: the pages need a person, a session and write audit events, so the script works on a
copy (`--copy`, made once and reused while it is newer than the source). Pages:

* recherche — available adult ICU bed (réanimation polyvalente 127, 45 years) within 50 km of Saint-Brieuc;
* unite — the page of a réanimation unit (Location with the most capacity events), 7-day and 30-day history;
* saisie — the capacity entry page of the establishment with the most units;
* tableau de bord — France, and one région;
* administration — the audit log (first page, and filtered by action)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from common import percentiles, write_result
from ror.access.people import PersonRegistry
from ror.db.engine import make_engine
from ror.db.tables import capacity_event, idx_reference
from ror.errors import NotFound
from ror.server import create_app

TARGET_MS = 300.0
EMAIL = "bench-pages@ror.invalid"
PASSWORD = "bench pages password 2026"


def prepare_copy(source: Path, copy: Path) -> Path:
    if not copy.exists() or copy.stat().st_mtime < source.stat().st_mtime:
        print(f"copying {source} -> {copy} (the source is never written)", flush=True)
        shutil.copyfile(source, copy)
    return copy


def pick_pages(engine: object) -> dict[str, str]:
    with engine.connect() as c:  # type: ignore[attr-defined]
        unit = (
            c.execute(
                select(capacity_event.c.location_id)
                .where(capacity_event.c.location_id.like("%rea%"))
                .group_by(capacity_event.c.location_id)
                .order_by(func.count().desc())
                .limit(1)
            ).scalar()
            or c.execute(select(capacity_event.c.location_id).limit(1)).scalar()
        )
        r = idx_reference
        biggest = c.execute(
            select(r.c.target_id)
            .where(r.c.res_type == "Location", r.c.param == "organization", r.c.target_id.like("eg-%"))
            .group_by(r.c.target_id)
            .order_by(func.count().desc())
            .limit(1)
        ).scalar()
    finess = str(biggest).removeprefix("eg-")
    return {
        "recherche (réa 127, 45 ans, 50 km, lits dispo)": "/recherche?activite=127&age=45&commune=Saint-Brieuc"
        "&rayon=50&dispo=1",
        f"unite ({unit})": f"/unites/{unit}",
        "unite, historique 30 jours": f"/unites/{unit}?historique=30",
        f"saisie (FINESS {finess})": f"/etablissements/{finess}/disponibilites",
        "tableau de bord (France)": "/tableau-de-bord?region=",
        "tableau de bord (région 53)": "/tableau-de-bord?region=53",
        "tableau de bord, fragment direct (France)": "/tableau-de-bord/direct?region=",
        "administration, journal d'audit": "/administration/journal",
        "administration, journal filtré (action=login)": "/administration/journal?action=login",
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", default="/tmp/ror-bench-search.db", help="SQLite file of a loaded database")
    ap.add_argument("--copy", default="/tmp/ror-bench-pages.db", help="working copy (written: person, sessions)")
    ap.add_argument("--database", help="SQLAlchemy URL to use as is instead of a SQLite copy (it is written)")
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    os.environ.setdefault("ROR_LOG_FORMAT", "off")  # one JSON log line per request would drown the figures
    url = args.database or f"sqlite:///{prepare_copy(Path(args.source), Path(args.copy))}"
    engine = make_engine(url)
    people = PersonRegistry(engine)
    try:
        people.get(EMAIL)
    except NotFound:
        people.add(EMAIL, "Bench", "national_admin", PASSWORD)
    client = TestClient(create_app(engine))  # no lifespan: no background workers during the measure
    login = client.get("/connexion")
    token = login.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    r = client.post("/connexion", data={"email": EMAIL, "password": PASSWORD, "csrf": token}, follow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    pages = pick_pages(engine)
    rows = []
    print(f"\n{'page':<52} {'status':>6} {'KB':>6} {'p50 ms':>8} {'p95 ms':>8}  ≤ {TARGET_MS:.0f} ms")
    for name, path in pages.items():
        first = client.get(path)  # warm-up (caches of terminology, geography, templates)
        samples = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            resp = client.get(path)
            samples.append((time.perf_counter() - t0) * 1000)
            assert resp.status_code == first.status_code
        p50, p95 = percentiles(samples)
        ok = "yes" if p95 <= TARGET_MS else "NO"
        print(f"{name:<52} {first.status_code:>6} {len(first.content) / 1024:>6.0f} {p50:>8.1f} {p95:>8.1f}  {ok}")
        rows.append({"page": name, "path": path, "status": first.status_code, "p50_ms": p50, "p95_ms": p95})
    path = write_result("pages", {"database": url, "repeat": args.repeat, "target_ms": TARGET_MS, "pages": rows})
    print(f"\nresults: {path}")
    return 0 if all(r["status"] == 200 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
