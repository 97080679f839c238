"""The national-scale dataset generator (bench/dataset.py) at its `departement` size (Côtes-d'Armor, 22: the same
code as the `region` and `national` sizes, a CI-sized volume):

* deterministic: two loads give the same counts and the same fingerprint (content hash of every resource, every
  projected indicator, every history event but the load's own reception times) — on SQLite twice; with
  ROR_TEST_DATABASE_URL once into PostgreSQL and once into SQLite (so both engines load it, identically);
* the capacity projection equals the indicators of every stored Location (the check of tests/test_faults.py);
* every indicator is valid (value sets, combinations of docs/capacity.md) and its history is a chain: first event
  from nothing, each `nb_before` the previous `nb_after`, the last one the projected number and date."""

from __future__ import annotations

import hashlib
import sys
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, func, select

from ror.capacity.model import KEY_FIELDS, indicators_of
from ror.capacity.rules import validate_indicators
from ror.db.engine import is_sqlite, make_engine
from ror.db.tables import capacity, capacity_event, resource
from ror.terminology.service import Terminology
from tests.conftest import truncate_store
from tests.test_faults import assert_projection_matches

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import dataset

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
DAYS = 2


def load(url: str, reference_dir: Path) -> dataset.DatasetReport:
    return dataset.build(url, "departement", reference_dir, now=NOW, days=DAYS)


def digest(rows: list[tuple[Any, ...]]) -> str:
    """Order-independent (engines sort text differently): hash of the sorted rows."""
    h = hashlib.sha256()
    for row in sorted(rows, key=repr):
        h.update(repr(row).encode())
    return h.hexdigest()


def fingerprint(engine: Engine) -> dict[str, Any]:
    keys = [capacity_event.c[f] for f in KEY_FIELDS]
    with engine.connect() as c:
        resources = [
            tuple(r) for r in c.execute(select(resource.c.res_type, resource.c.res_id, resource.c.content_hash))
        ]
        indicators = [
            tuple(r)
            for r in c.execute(
                select(
                    capacity.c.location_id, *(capacity.c[f] for f in KEY_FIELDS), capacity.c.nb, capacity.c.updated_at
                )
            )
        ]
        events = [
            tuple(r)
            for r in c.execute(
                select(
                    capacity_event.c.location_id,
                    *keys,
                    capacity_event.c.nb_before,
                    capacity_event.c.nb_after,
                    capacity_event.c.updated_at,
                    capacity_event.c.version_id,
                )
            )
        ]
    counts: dict[str, int] = defaultdict(int)
    for res_type, _, _ in resources:
        counts[res_type] += 1
    return {
        "counts": {**counts, "capacity": len(indicators), "events": len(events)},
        "resources": digest(resources),
        "indicators": digest(indicators),
        "events": digest(events),
    }


@pytest.fixture
def first_url(engine: Engine, tmp_path: Path) -> Iterator[str]:
    """The test database when it is PostgreSQL (emptied before and after), else a fresh SQLite file."""
    if is_sqlite(engine):
        yield f"sqlite:///{tmp_path / 'first.db'}"
        return
    truncate_store(engine)
    yield engine.url.render_as_string(hide_password=False)
    truncate_store(engine)


def test_dataset_is_deterministic_and_consistent(first_url: str, reference_dir: Path, tmp_path: Path) -> None:
    first = load(first_url, reference_dir)
    second = load(f"sqlite:///{tmp_path / 'second.db'}", reference_dir)
    assert first.counts == second.counts
    # département 22 (2026-12-01): 2,080 offers, 2,962 Locations, 33,331 indicators, 38,635 events over 2 days
    assert first.counts["HealthcareService"] > 1500 and first.counts["capacity indicators"] > 25_000
    assert first.counts["capacity events"] > first.counts["capacity indicators"]  # history beyond the creation
    engines = [make_engine(first_url), make_engine(f"sqlite:///{tmp_path / 'second.db'}")]
    try:
        a, b = (fingerprint(e) for e in engines)
        assert a == b
        check_consistency(engines[0])
    finally:
        for e in engines:
            e.dispose()


def check_consistency(engine: Engine) -> None:
    terminology = Terminology(engine)
    with engine.connect() as c:
        locations = c.execute(
            select(resource.c.pk, resource.c.res_id, resource.c.content).where(resource.c.res_type == "Location")
        ).all()
        with_capacity = 0
        for pk, res_id, content in locations:
            res = orjson.loads(content)
            assert_projection_matches(c, pk, res, res_id)
            inds = indicators_of(res)
            validate_indicators(inds, terminology.validate)
            with_capacity += bool(inds)
        assert with_capacity > 1500  # département 22: 2,006 Locations with indicators
        check_history(c)


def check_history(c: Any) -> None:
    """Per indicator: events ordered by source date chain from nothing to the projected number and date."""
    key = [capacity_event.c.location_pk, *(capacity_event.c[f] for f in KEY_FIELDS)]
    events: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    q = select(*key, capacity_event.c.nb_before, capacity_event.c.nb_after, capacity_event.c.updated_at)
    for row in c.execute(q.order_by(capacity_event.c.updated_at, capacity_event.c.pk)):
        events[tuple(row[: len(key)])].append(row)
    projected = {
        tuple(r[: len(key)]): (r.nb, r.updated_at)
        for r in c.execute(
            select(capacity.c.location_pk, *(capacity.c[f] for f in KEY_FIELDS), capacity.c.nb, capacity.c.updated_at)
        )
    }
    assert events.keys() == projected.keys()
    chained = 0
    for k, chain in events.items():
        assert chain[0].nb_before is None, k
        assert [e.nb_before for e in chain[1:]] == [e.nb_after for e in chain[:-1]], k
        assert (chain[-1].nb_after, chain[-1].updated_at) == projected[k], k
        chained += len(chain) > 1
    assert chained > 1000
    n = c.execute(select(func.count()).select_from(capacity_event).where(capacity_event.c.version_id == 0)).scalar_one()
    assert n > 0
