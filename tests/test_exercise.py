"""Crisis exercise sandbox (docs/exercise.md): the SI-VIC 2020 scenario, the pure replay plan (national peak of
2020-04-08 within its scale factor, per-département shapes), the runner through the real capacity write service
(projection, events, time series, crisis, pacing, stop) and the `ror exercise` commands (separate database,
refusals, status, stop, EXERCICE banner). Real data (ROR_REFERENCE_DATA), real database (SQLite, or PostgreSQL
with ROR_TEST_DATABASE_URL)."""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from ror.capacity.crisis import CrisisRegistry
from ror.capacity.timeseries import capacity_series
from ror.config import get_settings
from ror.db.engine import make_engine
from ror.db.tables import capacity, capacity_event, crisis, geo_commune, import_run, resource
from ror.directory.demo import load_demo
from ror.directory.finess import import_finess
from ror.directory.scope import Scope
from ror.errors import InvalidRequest
from ror.exercise.database import check_url, prepare
from ror.exercise.plan import IcuUnit, ReplayPlan, apportion, apportion_shares, build_plan, round_half_up
from ror.exercise.runner import (
    AUTHOR,
    DONE,
    MARKER,
    STOPPED,
    ExerciseRunner,
    StepProgress,
    crisis_scope,
    latest_run,
    parse_speed,
    request_stop,
)
from ror.exercise.scenario import Curves, Scenario, get_scenario, load_curves
from ror.exercise.units import national_scale, units_from_database, units_from_sae
from ror.services import Services
from ror.store import ResourceStore
from tests.conftest import truncate_store

SCENARIO = "covid-2020-spring"
PEAK_DAY = date(2020, 4, 8)
PEAK_REA = 7019  # national patients in ICU on 2020-04-08 (capacity/README.md)
DEP35 = Scope.parse("departement:35")


# --- the scenario and the pure plan -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return get_scenario(SCENARIO)


@pytest.fixture(scope="module")
def curves(scenario: Scenario, reference_dir: Path) -> Curves:
    return load_curves(scenario, reference_dir)


@pytest.fixture(scope="module")
def national_units(reference_dir: Path, scenario: Scenario) -> list[IcuUnit]:
    return units_from_sae(reference_dir, Scope("national"), scenario.activity)


@pytest.fixture(scope="module")
def national_plan(curves: Curves, national_units: list[IcuUnit]) -> ReplayPlan:
    return build_plan(curves, national_units, scenario=SCENARIO)


def test_sivic_census_both_sexes_only(curves: Curves, reference_dir: Path, scenario: Scenario) -> None:
    assert curves.days[0] == date(2020, 3, 18) and curves.days[-1] == date(2020, 6, 30)
    assert len(curves.days) == 105  # consecutive: 27–29 June (written 27/06/2020 in the file) are read
    assert len(curves.by_departement) == 101
    assert curves.peak() == (PEAK_DAY, PEAK_REA)
    assert curves.departement_peak("68")[0] == date(2020, 4, 3)
    # sexe 0 only: the value of one row read straight from the file
    lines = (reference_dir / scenario.file).read_text(encoding="utf-8").splitlines()
    row = next(line for line in lines if line.startswith('"75";0;"2020-04-08"')).split(";")
    assert curves.by_departement["75"][curves.days.index(PEAK_DAY)] == int(row[4])


def test_unknown_scenario_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        get_scenario("grippe-1918")


def test_plan_reproduces_the_national_peak_of_2020_04_08(national_plan: ReplayPlan) -> None:
    plan = national_plan
    # national SAE 2023 adult ICU beds, every département of the census has some
    assert plan.installed == sum(u.installed for u in plan.units) > 5000
    assert plan.unplaced == ()
    assert (plan.peak_day, plan.peak_census) == (PEAK_DAY, PEAK_REA)
    assert plan.scale == pytest.approx(0.95 * plan.installed / PEAK_REA)
    at_peak = plan.times.index(datetime(2020, 4, 8))
    assert abs(plan.total(at_peak) - round_half_up(PEAK_REA * plan.scale)) <= len(plan.departements)
    assert plan.total(at_peak) == round_half_up(PEAK_REA * plan.scale)  # rounded once for the nation
    assert plan.times[plan.peak_step()] == datetime(2020, 4, 8)
    # the peak fills the stated fraction of installed beds (within per-département rounding)
    assert abs(plan.total(at_peak) - 0.95 * plan.installed) <= len(plan.departements)


def test_plan_follows_each_departement_curve(national_plan: ReplayPlan, curves: Curves) -> None:
    plan = national_plan
    day = plan.times.index(datetime(2020, 4, 1))
    for d in plan.departements:  # on day boundaries a département's target is its scaled census, rounded
        census = curves.by_departement[d][curves.days.index(date(2020, 4, 1))]
        assert abs(plan.departement_total(day, d) - plan.scale * census) < 1

    def peak_time(dep: str) -> datetime:
        values = [plan.departement_total(i, dep) for i in range(plan.steps)]
        return plan.times[max(range(plan.steps), key=lambda i: (values[i], -i))]

    national = plan.times[plan.peak_step()]
    for dep in ("68", "67"):  # Grand Est peaked days before the nation; Bouches-du-Rhône after
        assert peak_time(dep) < national - timedelta(days=3)
        assert abs(peak_time(dep) - datetime.combine(curves.departement_peak(dep)[0], datetime.min.time())) <= (
            timedelta(days=1)
        )
    assert peak_time("13") > national


def test_plan_units_sum_and_beds(national_plan: ReplayPlan) -> None:
    plan = national_plan
    installed = {u.location_id: u for u in plan.units}
    for step in (0, plan.peak_step(), plan.peak_step() + 12, plan.steps - 1):
        states = plan.states(step)
        for d in plan.departements:
            assert sum(states[u.location_id].occupied for u in plan.units if u.departement == d) == (
                plan.departement_total(step, d)
            )
        for loc, s in states.items():
            beds = installed[loc].installed
            assert s.available == max(0, beds - s.occupied) >= 0
            assert s.supplementary == max(0, s.occupied - beds)
    peak = plan.states(plan.peak_step())
    assert any(peak[u.location_id].supplementary for u in plan.units if u.departement == "68")  # Haut-Rhin overflows


def test_plan_interpolates_between_days(curves: Curves, national_units: list[IcuUnit]) -> None:
    plan = build_plan(curves, national_units, scenario=SCENARIO, start=date(2020, 4, 7), until=date(2020, 4, 8))
    assert plan.steps == 25 and plan.times[12] == datetime(2020, 4, 7, 12)
    a, b = (curves.by_departement["75"][curves.days.index(d)] for d in (date(2020, 4, 7), PEAK_DAY))
    assert abs(plan.departement_total(12, "75") - plan.scale * (a + b) / 2) < 1
    a, b = (curves.total()[curves.days.index(d)] for d in (date(2020, 4, 7), PEAK_DAY))
    assert plan.total(12) == round_half_up(plan.scale * (a + b) / 2)


@pytest.mark.parametrize("scope", ["region:44", "region:53", "region:11", "departement:68"])
def test_the_peak_of_any_perimeter_is_its_census_peak(
    curves: Curves, reference_dir: Path, scenario: Scenario, scope: str
) -> None:
    units = units_from_sae(reference_dir, Scope.parse(scope), scenario.activity)
    plan = build_plan(curves, units, scenario=SCENARIO, scale=0.7)
    deps = set(plan.departements)
    assert plan.times[plan.peak_step()] == datetime.combine(curves.peak(deps)[0], datetime.min.time())
    assert plan.total(plan.peak_step()) == round_half_up(0.7 * curves.peak(deps)[1])


def test_plan_is_a_pure_function(curves: Curves, national_units: list[IcuUnit], national_plan: ReplayPlan) -> None:
    again = build_plan(curves, list(reversed(national_units)), scenario=SCENARIO)
    assert again == national_plan
    assert again.states(900) == national_plan.states(900)
    given = build_plan(curves, national_units, scenario=SCENARIO, scale=0.5, start=PEAK_DAY, until=PEAK_DAY)
    assert given.scale == 0.5 and given.fraction is None and given.steps == 1
    with pytest.raises(InvalidRequest):
        build_plan(curves, national_units, scenario=SCENARIO, start=date(2020, 3, 1))
    with pytest.raises(InvalidRequest):
        build_plan(curves, [], scenario=SCENARIO)


def test_national_scale_of_a_regional_exercise(
    reference_dir: Path, curves: Curves, scenario: Scenario, national_plan: ReplayPlan
) -> None:
    k, installed = national_scale(reference_dir, curves, scenario.activity, 0.95)
    assert (k, installed) == (pytest.approx(national_plan.scale), national_plan.installed)
    region = units_from_sae(reference_dir, Scope.parse("region:53"), scenario.activity)
    own = build_plan(curves, region, scenario=SCENARIO)  # the perimeter's own peak fills 95 % of its beds
    assert own.scale_basis == "périmètre" and own.scale > k  # Bretagne was spared in 2020


def test_apportion_is_exact_and_proportional() -> None:
    assert apportion_shares(4, [1.4, 1.4, 1.2]) == [2, 1, 1]  # round(4.0) = 4: the largest remainder rounded up
    assert apportion_shares(3, [0.5, 0.5, 2.0]) == [1, 0, 2]
    assert apportion(10, [65, 10]) == [9, 1]
    assert apportion(7, [1, 1, 1]) == [3, 2, 2]  # ties: the first listed
    assert sum(apportion(4961, [3, 17, 40, 1])) == 4961
    assert apportion(5, [0, 0]) == [0, 0]


def test_speed() -> None:
    assert parse_speed("60x") == 60 and parse_speed("1.5") == 1.5 and parse_speed("max") is None
    for bad in ("0x", "-2", "vite"):
        with pytest.raises(InvalidRequest):
            parse_speed(bad)


def test_exercise_is_core_code() -> None:
    src = Path(__file__).resolve().parents[1] / "src" / "ror" / "exercise"
    for path in src.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names.append(node.module)
            assert not [n for n in names if n.startswith(("ror.fhir", "ror.web", "ror.cli", "ror.server"))], path


# --- the runner on a real database ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def services(engine: Engine, reference_dir: Path) -> Services:
    """Département 35 as `ror demo --scope departement:35` loads it: NOS, geography, FINESS, SAE units, demo."""
    from ror.geo.loader import load_geography
    from ror.terminology.loader import load_nos

    truncate_store(engine)
    with engine.begin() as c:
        c.execute(crisis.delete())
    with engine.connect() as c:
        if not c.execute(text("SELECT count(*) FROM code_system")).scalar_one():
            load_nos(engine, reference_dir / "nos")
        empty_geo = not c.execute(select(func.count()).select_from(geo_commune)).scalar_one()
    if empty_geo:
        load_geography(engine, reference_dir / "geo")
    s = Services(engine)
    s.geography.reload()
    src = reference_dir / "finess" / "finess_et_20210108_flat_from_fhir.csv.gz"
    import_finess(s.store, src, scope=DEP35, geography=s.geography)
    load_demo(s.store, reference_dir, scope=DEP35)
    return s


def _plan35(services: Services, curves: Curves, reference_dir: Path, **kw: object) -> ReplayPlan:
    selection = units_from_database(services.engine, DEP35, "rea-adulte")
    assert selection.units and not selection.orphans
    k = kw.pop("scale", None)
    if k is None:
        k, _ = national_scale(reference_dir, curves, "rea-adulte", 0.95)
    return build_plan(curves, selection.units, scenario=SCENARIO, scale=k, scale_basis="national", **kw)  # type: ignore[arg-type]


def _current(engine: Engine, location_id: str) -> dict[tuple[str, str, str, str], int]:
    with engine.connect() as c:
        rows = c.execute(
            select(capacity.c.status, capacity.c.gender, capacity.c.additional_bed_type, capacity.c.crisis_type)
            .add_columns(capacity.c.nb)
            .where(capacity.c.location_id == location_id, capacity.c.temporality == "01")
        ).all()
    return {(r[0], r[1], r[2], r[3]): r[4] for r in rows}


def test_a_national_exercise_declares_the_crisis_for_every_region(services: Services, curves: Curves) -> None:
    plan = build_plan(curves, [IcuUnit("loc-x", "35", 10)], scenario=SCENARIO, scale=1.0)
    kind, codes = crisis_scope(services.engine, Scope("national"), plan)
    assert kind == "region" and {"53", "44", "11", "01"} <= set(codes)  # 01 Guadeloupe
    assert crisis_scope(services.engine, Scope.parse("region:53"), plan) == ("region", ["53"])


def test_units_come_from_the_projection(services: Services, reference_dir: Path) -> None:
    db = units_from_database(services.engine, DEP35, "rea-adulte").units
    sae = units_from_sae(reference_dir, DEP35, "rea-adulte")
    assert [(u.location_id, u.departement, u.installed) for u in db] == [
        (u.location_id, u.departement, u.installed) for u in sae
    ]


def test_replay_writes_through_the_capacity_service(
    services: Services, curves: Curves, scenario: Scenario, reference_dir: Path
) -> None:
    engine = services.engine
    plan = _plan35(services, curves, reference_dir, start=date(2020, 4, 1), until=date(2020, 4, 4))
    seen: list[StepProgress] = []
    result = ExerciseRunner(services).run(plan, scenario, DEP35, speed=None, on_step=seen.append)
    assert (result.state, result.steps_done, result.errors) == (DONE, plan.steps, 0)
    assert len(seen) == plan.steps and seen[-1].planned_total == plan.total(plan.steps - 1)
    last = plan.states(plan.steps - 1)
    for unit in plan.units:  # the projection holds the plan's last step, the demo's availability is gone
        current = _current(engine, unit.location_id)
        s = last[unit.location_id]
        assert current == {
            ("01", "", "", ""): unit.installed,
            ("03", "", "", ""): s.occupied,
            ("02", "04", "", ""): s.available,
        }
    with engine.connect() as c:
        events = c.execute(
            select(capacity_event.c.status, capacity_event.c.nb_after, capacity_event.c.source_type).where(
                capacity_event.c.actor == AUTHOR
            )
        ).all()
        content = c.execute(
            select(resource.c.content).where(resource.c.res_id == plan.units[0].location_id)
        ).scalar_one()
        series = capacity_series(c, "departement", "35", activity="rea-adulte", days=1, bucket="hour")
    assert len(events) >= 2 * len(plan.units) and result.writes >= len(plan.units)
    assert all(nb is None or nb >= 0 for _, nb, _ in events)  # available never negative
    assert {src for _, nb, src in events if nb is not None} == {"02"}  # (removals: the demo's indicators)
    assert f"{MARKER} {SCENARIO} : situation simulée du 0" in content  # the marker, in the indicators' comment
    point = series.points[-1].values  # the live dashboards' series sees the replay
    assert point["occupied"] == plan.departement_total(plan.steps - 1, "35")
    assert point["installed"] == plan.installed
    assert point["available"] == sum(s.available for s in last.values())
    # the crisis: declared for the département by the exercise, ended with it; the run is recorded
    cr = result.crisis
    assert (cr.crisis_type, cr.scope_kind, cr.scope_codes, cr.started_by) == ("02", "departement", ("35",), AUTHOR)
    assert MARKER in (cr.reason or "") and cr.ended_at is not None
    found = latest_run(engine)
    assert found is not None and found[1]["state"] == DONE and found[1]["writes"] == result.writes


def test_overflow_opens_then_closes_supplementary_beds(
    services: Services, curves: Curves, scenario: Scenario, reference_dir: Path
) -> None:
    engine = services.engine
    surge = _plan35(services, curves, reference_dir, start=PEAK_DAY, until=PEAK_DAY, scale=4.0)
    assert ExerciseRunner(services).run(surge, scenario, DEP35, speed=None).errors == 0
    big = max(surge.units, key=lambda u: u.installed)
    s = surge.states(0)[big.location_id]
    assert s.supplementary > 0 and s.available == 0
    assert _current(engine, big.location_id) == {
        ("01", "", "", ""): big.installed,
        ("03", "", "", ""): s.occupied,
        ("02", "04", "", ""): 0,
        ("06", "", "01", "02"): s.supplementary,  # Mobilisé, crisis type SSE (Plan blanc)
    }
    calm = _plan35(services, curves, reference_dir, start=date(2020, 6, 30), until=date(2020, 6, 30), scale=0.1)
    runner = ExerciseRunner(services)
    assert runner.run(calm, scenario, DEP35, speed=None).errors == 0  # first write of a run: the whole list
    assert ("06", "", "01", "02") not in _current(engine, big.location_id)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


def test_paced_run_and_stop(services: Services, curves: Curves, scenario: Scenario, reference_dir: Path) -> None:
    plan = _plan35(services, curves, reference_dir, start=date(2020, 4, 1), until=date(2020, 4, 2))
    clock = FakeClock()
    runner = ExerciseRunner(services, clock=clock, sleep=clock.sleep)

    def on_step(p: StepProgress) -> None:
        if p.step == 3:
            assert request_stop(services.engine) is not None

    result = runner.run(plan, scenario, DEP35, speed=3600, on_step=on_step)  # one simulated hour a second
    assert (result.state, result.steps_done) == (STOPPED, 3)
    assert clock.t == pytest.approx(1002.0)  # steps at 0, 1 and 2 s; the stop seen before the fourth
    assert all(0 < s <= 1.0 for s in clock.sleeps)
    assert result.crisis.ended_by == "exercise stop"
    found = latest_run(services.engine)
    assert found is not None and found[1]["state"] == STOPPED and found[1]["stopped_by"] == "exercise stop"
    assert request_stop(services.engine) is None  # nothing running any more


# --- the commands ---------------------------------------------------------------------------------------------------
@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_the_main_database_is_refused(settings_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from ror.cli import app

    main = f"sqlite:///{tmp_path}/ror-exercise.db"
    settings_env.setenv("ROR_DATABASE_URL", main)
    out = CliRunner().invoke(app, ["exercise", "start", "--database", main, "--speed", "max"])
    assert out.exit_code == 2 and "base principale" in out.output
    settings_env.setenv("ROR_DATABASE_URL", f"sqlite:///{tmp_path}/../{tmp_path.name}/ror-exercise.db")
    get_settings.cache_clear()  # another spelling of the same file
    assert CliRunner().invoke(app, ["exercise", "start", "--database", main]).exit_code == 2
    assert CliRunner().invoke(app, ["exercise", "status", "--database", main]).exit_code == 2
    assert not (tmp_path / "ror-exercise.db").exists()
    with pytest.raises(InvalidRequest, match="exercice"):
        check_url(f"sqlite:///{tmp_path}/ror.db", "sqlite:///./ror.db")  # the name must say exercise


def test_a_database_with_other_data_is_refused(tmp_path: Path, engine: Engine) -> None:
    url = f"sqlite:///{tmp_path}/autre-exercice.db"
    other = make_engine(url)
    from ror.db import migrate

    migrate.upgrade(other)
    ResourceStore(other).bulk_upsert([{"resourceType": "Organization", "id": "eg-1", "name": "Vraie donnée"}])
    other.dispose()
    with pytest.raises(InvalidRequest, match="ne viennent pas d'un exercice"):
        prepare(url, reset=True)


def _cli_database(tmp_path: Path) -> tuple[str, str | None]:
    """(URL, PostgreSQL database to drop): next to ROR_TEST_DATABASE_URL on PostgreSQL, else a SQLite file."""
    pg = os.environ.get("ROR_TEST_DATABASE_URL")
    if not pg:
        return f"sqlite:///{tmp_path}/ror-exercise.db", None
    u = make_url(pg)
    name = f"{u.database}_exercise"
    return u.set(database=name).render_as_string(hide_password=False), name


def _drop_postgres(url: str, name: str) -> None:
    admin = make_engine(make_url(url).set(database="postgres").render_as_string(hide_password=False))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_start_status_stop_and_banner(settings_env: pytest.MonkeyPatch, tmp_path: Path, engine: Engine) -> None:
    from ror.cli import app
    from ror.server import create_app

    url, pg_name = _cli_database(tmp_path)
    if pg_name:
        _drop_postgres(url, pg_name)
    settings_env.setenv("ROR_DEMO_PASSWORD", "exercice-mot-de-passe-long")
    try:
        args = ["exercise", "start", "--database", url, "--scope", "departement:35", "--speed", "max"]
        out = CliRunner().invoke(app, [*args, "--from", "2020-04-06", "--until", "2020-04-07", "--steps-per-day", "4"])
        assert out.exit_code == 0, out.output
        assert "chargement" in out.output and "k = 0.7071 (national" in out.output
        assert "exercice terminé : 5/5 pas" in out.output
        status = CliRunner().invoke(app, ["exercise", "status", "--database", url, "--json"])
        state = orjson.loads(status.stdout)
        assert (state["state"], state["step"], state["crisis_active"], state["errors"]) == (DONE, 5, False, 0)
        assert state["writes"] >= 2 and state["scope"] == "departement:35"
        assert "aucun exercice en cours" in CliRunner().invoke(app, ["exercise", "stop", "--database", url]).output
        ex = make_engine(url)
        try:
            assert CrisisRegistry(ex).history()[0].started_by == AUTHOR
            with ex.connect() as c:
                kinds = c.execute(select(import_run.c.kind)).scalars().all()
            assert "exercise" in kinds and "demo" in kinds
            with TestClient(create_app(ex)) as client:
                assert "bandeau-exercice" in client.get("/recherche").text  # EXERCICE on every page
        finally:
            ex.dispose()
        with TestClient(create_app(engine)) as client:
            assert "bandeau-exercice" not in client.get("/recherche").text  # not on the main database
        reused = CliRunner().invoke(app, [*args, "--from", "2020-06-01", "--until", "2020-06-01"])
        assert reused.exit_code == 0 and "chargement" not in reused.output  # reused: no second demo load
    finally:
        if pg_name:
            _drop_postgres(url, pg_name)
