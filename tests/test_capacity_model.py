from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, text

from ror.capacity.model import Indicator, indicators_of, parse_indicator
from ror.capacity.rules import BusinessRuleError, check_combination, consistency_warnings, validate_indicators
from ror.db.tables import capacity, capacity_event
from ror.errors import InvalidRequest
from ror.store import ResourceStore
from tests.search_fixtures import capacity as cap
from tests.search_fixtures import location


def ind(status: str, nb: int = 1, **kw: str) -> Indicator:
    return Indicator("01", status, kw.pop("temporality", "01"), nb, "01", "2026-11-30T08:00:00+01:00", "01", **kw)


def test_parse_round_trip_and_errors() -> None:
    ext = cap("02", 3, gender="01")
    i = parse_indicator(ext)
    assert (i.status, i.nb, i.gender) == ("02", 3, "01")
    assert parse_indicator(i.to_extension()) == i
    bad = {"url": ext["url"], "extension": [s for s in ext["extension"] if s["url"] != "nbCapacity"]}
    with pytest.raises(InvalidRequest, match="nbCapacity"):
        parse_indicator(bad)
    neg = {
        "url": ext["url"],
        "extension": [dict(s, valueInteger=-1) if s["url"] == "nbCapacity" else s for s in ext["extension"]],
    }
    with pytest.raises(InvalidRequest) as err:
        parse_indicator(neg, "Location.extension[3]")
    assert err.value.issues[0].expression == ["Location.extension[3].extension[3].valueInteger"]


@pytest.mark.parametrize(
    ("indicator", "ok"),
    [
        (ind("02", gender="01"), True),
        (ind("01", gender="01"), False),
        (ind("05", closing_type="01"), True),
        (ind("05"), False),
        (ind("02", closing_type="01"), False),
        (ind("06", additional_bed_type="02", crisis_type="02"), True),
        (ind("06"), False),
        (ind("03", crisis_type="02"), False),
        (ind("01", temporality="03"), False),
        (ind("02", temporality="03"), True),
    ],
)
def test_valid_combinations(indicator: Indicator, ok: bool) -> None:
    assert check_combination(indicator).ok is ok


def test_duplicate_key_and_bad_code_rejected() -> None:
    with pytest.raises(BusinessRuleError) as err:
        validate_indicators([ind("02", gender="01"), ind("02", gender="01")], None)
    assert "same key" in err.value.diagnostics

    def validate_code(vs: str, system: str, code: str) -> None:
        if vs == "J190" and code == "03":
            raise InvalidRequest("code 03 is deprecated")

    with pytest.raises(BusinessRuleError) as err:
        validate_indicators([ind("02", gender="03")], validate_code)
    assert err.value.code == "business-rule" and "deprecated" in err.value.diagnostics


def test_consistency_warnings() -> None:
    warnings = consistency_warnings([ind("01", 10), ind("02", 12, gender="04"), ind("03", 5)])
    texts = " | ".join(w.diagnostics for w in warnings)
    assert "available (12) > installed (10)" in texts and "occupied + available (17)" in texts
    assert consistency_warnings([ind("01", 10), ind("02", 2, gender="01"), ind("03", 8)]) == []


def test_projection_and_events_follow_writes(store: ResourceStore) -> None:
    loc = location("loc-1", "Réa", 48.1, -1.6, "35238", "35000", [cap("01", 20), cap("02", 3, gender="01")])
    store.bulk_upsert([loc], author="test")
    with store.read_conn() as c:
        rows = c.execute(select(capacity.c.status, capacity.c.gender, capacity.c.nb, capacity.c.departement)).all()
    assert sorted(rows) == [("01", "", 20, "35"), ("02", "01", 3, "35")]
    loc2 = location("loc-1", "Réa", 48.1, -1.6, "35238", "35000", [cap("01", 20), cap("02", 1, gender="01")])
    store.update("Location", "loc-1", loc2, author="feeder")
    with store.read_conn() as c:
        nb = c.execute(select(capacity.c.nb).where(capacity.c.status == "02")).scalar_one()
        events = c.execute(
            select(
                capacity_event.c.status, capacity_event.c.nb_before, capacity_event.c.nb_after, capacity_event.c.actor
            ).order_by(capacity_event.c.pk)
        ).all()
    assert nb == 1
    assert events == [("01", None, 20, "test"), ("02", None, 3, "test"), ("02", 3, 1, "feeder")]
    store.delete("Location", "loc-1")
    with store.read_conn() as c:
        assert c.execute(select(capacity)).all() == []
        assert c.execute(select(capacity_event.c.nb_after).order_by(capacity_event.c.pk.desc())).first() == (None,)
    assert indicators_of(loc) and len(indicators_of(loc)) == 2


def test_a_process_without_live_stream_keeps_no_changes_in_memory(tmp_path: Path) -> None:
    """The projection hands each change to the live stream; a process that serves no stream (a command-line load)
    must not keep them on its pooled connections (they piled up: ~1.6 GB over a national dataset load)."""
    from ror.capacity import projection
    from ror.capacity.stream import INFO_KEY
    from ror.db import migrate
    from ror.db.engine import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'nostream.db'}")
    migrate.upgrade(engine)
    store = ResourceStore(engine)
    projection.install(store)
    for nb in (3, 4, 5):
        store.update(
            "Location", "loc-1", location("loc-1", "Réa Rennes", 48.1, -1.7, "35238", "35000", [cap("02", nb)])
        )
    with engine.connect() as c:
        assert INFO_KEY not in c.info
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM capacity_event WHERE location_id = 'loc-1'")).scalar_one() == 3
    engine.dispose()
