"""`$export` round trip of a loaded database (default: the national demo left by `bench_search.py` in
/tmp/ror-bench-search.db): export every type as ndjson (profile 1, content as stored), check every line against
the FHIR structure rules and a deterministic sample against the full ROR profile rules (src/ror/validation), load
the files into an empty SQLite database through the store (bulk load), and compare the two instances: counts per
type and, for every resource, the content apart from meta.versionId / meta.lastUpdated.

    python bench/bench_roundtrip.py [--database URL] [--sample-every 50]

Prints one table; writes bench/results/roundtrip.json."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import peak_rss_mb, write_result
from ror.access.policy import Profile
from ror.db import migrate
from ror.db.engine import make_engine
from ror.db.tables import resource
from ror.export.request import EXPORT_TYPES, ExportRequest
from ror.export.runner import query_parser
from ror.export.stream import ExportWriter
from ror.services import Services
from ror.store import ResourceStore
from ror.validation import Validator
from ror.validation.structure import check_structure

BATCH = 2000


def _comparable(content: str | bytes) -> dict[str, Any]:
    res = orjson.loads(content)
    meta = dict(res.get("meta") or {})
    meta.pop("versionId", None)
    meta.pop("lastUpdated", None)
    res["meta"] = meta
    return res


def _contents(engine: Any) -> dict[tuple[str, str], str]:
    with engine.connect() as c:
        rows = c.execute(
            select(resource.c.res_type, resource.c.res_id, resource.c.content).where(resource.c.deleted.is_(False))
        )
        return {(t, i): content for t, i, content in rows}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database", default="sqlite:////tmp/ror-bench-search.db")
    ap.add_argument("--sample-every", type=int, default=50, help="profile-validate every n-th exported resource")
    args = ap.parse_args()
    source = Services(make_engine(args.database))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ror-roundtrip-") as tmp:
        out = Path(tmp) / "export"
        t0 = time.perf_counter()
        _files, total = ExportWriter(source.engine, query_parser(source)).write(
            ExportRequest(types=EXPORT_TYPES), Profile.ALL, out, lambda _n: True
        )
        rows.append({"step": "$export (profile 1)", "resources": total, "seconds": time.perf_counter() - t0})

        validator = Validator(source.engine, source.terminology, source.geography)
        structural: Counter[str] = Counter()
        profile_errors: Counter[str] = Counter()
        sampled = 0
        t0 = time.perf_counter()
        ndjson = sorted(out.rglob("*.ndjson"))
        with source.engine.connect() as conn:
            n = 0
            for path in ndjson:
                with path.open("rb") as fh:
                    for line in fh:
                        res = orjson.loads(line)
                        for f in check_structure(res):
                            structural[f"{res.get('resourceType')} {f.expression}"] += 1
                        if n % args.sample_every == 0:
                            sampled += 1
                            for f in validator.validate(res, res_id=res.get("id"), conn=conn).errors:
                                profile_errors[f"{res['resourceType']} {f.rule} {f.expression}"] += 1
                        n += 1
        rows.append(
            {
                "step": f"validate ({n} structure, {sampled} profile)",
                "resources": n,
                "seconds": time.perf_counter() - t0,
                "structure_errors": sum(structural.values()),
                "profile_errors": sum(profile_errors.values()),
            }
        )

        target_url = f"sqlite:///{tmp}/target.db"
        target = make_engine(target_url)
        migrate.upgrade(target)
        store = ResourceStore(target)
        t0 = time.perf_counter()
        loaded = 0
        with store.bulk_load():
            for path in ndjson:
                batch: list[dict[str, Any]] = []
                with path.open("rb") as fh:
                    for line in fh:
                        batch.append(orjson.loads(line))
                        if len(batch) >= BATCH:
                            loaded += store.bulk_upsert(batch).created
                            batch = []
                if batch:
                    loaded += store.bulk_upsert(batch).created
        rows.append({"step": "load into an empty instance", "resources": loaded, "seconds": time.perf_counter() - t0})

        t0 = time.perf_counter()
        before, after = _contents(source.engine), _contents(target)
        counts_before = Counter(t for t, _ in before)
        counts_after = Counter(t for t, _ in after)
        different = [k for k in before if k not in after or _comparable(before[k]) != _comparable(after[k])]
        rows.append(
            {
                "step": "compare",
                "resources": len(after),
                "seconds": time.perf_counter() - t0,
                "same_counts": counts_before == counts_after,
                "different": len(different),
            }
        )
    for r in rows:
        extra = {k: v for k, v in r.items() if k not in ("step", "resources", "seconds")}
        print(f"{r['step']:<42} {r['resources']:>8} {r['seconds']:>8.1f} s  {extra or ''}")
    print("counts per type:", dict(sorted(counts_before.items())))
    if structural:
        print("structure findings:", structural.most_common(10))
    if profile_errors:
        print("profile errors (sample):", profile_errors.most_common(15))
    if different:
        print("first differences:", different[:5])
    print(f"peak RSS {peak_rss_mb():.0f} MB")
    write_result(
        "roundtrip",
        {
            "database": args.database,
            "steps": rows,
            "counts": dict(counts_before),
            "profile_errors": dict(profile_errors),
            "structure_errors": dict(structural),
            "different": different[:100],
        },
    )


if __name__ == "__main__":
    main()
