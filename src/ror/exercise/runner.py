"""The exercise runner: declares the crisis, then replays a plan through the real capacity write service
(`CapacityService.patch`, FHIRPath Patch bodies as a feeder sends them), so the projection, the capacity events,
the live stream, freshness, the dashboards and search all see the changes.

* pace: `speed` simulated seconds per real second (`60x`: one simulated hour a minute), or as fast as possible
  (`max`); the clock and the sleep are injected, so the pacing is tested without waiting;
* the first write of a unit replaces its availability indicators (the demo's) by the exercise's, keeping its
  installed capacity; later writes replace occupied (03) and available (02, gender 04 Indéterminé) and add,
  replace or remove the supplementary beds (06, additionalBedType 01 Mobilisé, crisisType of the scenario);
* a unit is written when its figures change; in a paced run also when its last write is older than half the
  crisis freshness interval, so it never turns stale (a real bed-management feed sends periodically);
* capacityUpdateDate is the wall-clock time of the write (what a live feed sends): the simulated instant is in the
  indicator's comment ("EXERCICE …"), in the run's state and in the progress;
* the run is one `import_run` row (kind `exercise`) whose JSON report holds the state, updated at every step:
  `ror exercise status` reads it; `ror exercise stop` (or ending the crisis from the administration page) ends
  the exercise's crisis, and the runner stops at its next check (≤ 1 s)."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, insert, select, update

from ror.access.policy import Profile
from ror.access.tokens import Caller
from ror.capacity import patch
from ror.capacity.crisis import DEFAULT_CRISIS_FRESHNESS_MIN, Crisis, CrisisRegistry
from ror.capacity.model import CAPACITY_URL, Indicator, indicators_of
from ror.capacity.patch import CAP_PATH
from ror.capacity.service import PatchRequest
from ror.db.tables import geo_region, import_run
from ror.directory.scope import Scope
from ror.directory.units import fhir_datetime
from ror.errors import InvalidRequest, RorError
from ror.exercise.plan import ReplayPlan, UnitState
from ror.exercise.scenario import Scenario
from ror.search.normalise import utcnow
from ror.services import Services

log = logging.getLogger("ror.exercise")

AUTHOR = "exercise"  # capacity_event.actor, audit actor, crisis started_by
RUN_KIND = "exercise"  # import_run.kind of the database marker and of every run
MARKER = "EXERCICE"
SOURCE_TYPE = "02"  # TRE_R335 Bed management: an automated feed (R335 has no code for an exercise)
BED, OCCUPIED, AVAILABLE, SUPPLEMENTARY, CURRENT = "01", "03", "02", "06", "01"
NO_ASSIGNMENT = "01"
UNDETERMINED = "04"  # TRE_R332 genre indéterminé
MOBILISED = "01"  # TRE_R334 Mobilisé
POLL_S = 1.0  # how often a waiting runner looks for a stop
BATCH = 200  # units written in one transaction of the bulk feed
MAX_FAILURES_KEPT = 20

RUNNING, DONE, STOPPED, INTERRUPTED = "en cours", "terminé", "arrêté", "interrompu"


def parse_speed(text: str) -> float | None:
    """`60x`, `60`, `1.5x` → simulated seconds per real second; `max` → None (as fast as possible)."""
    t = text.strip().lower()
    if t in ("max", "maximum"):
        return None
    try:
        value = float(t.removesuffix("x"))
    except ValueError:
        raise InvalidRequest(f"vitesse invalide {text!r} : 60x, 3600x ou max", expression="speed") from None
    if not math.isfinite(value) or value <= 0:
        raise InvalidRequest("la vitesse doit être positive", expression="speed")
    return value


def speed_label(speed: float | None) -> str:
    return "max" if speed is None else f"{speed:g}x"


# --- the feeder's patch bodies ----------------------------------------------------------------------------------
def _selector(**codes: str) -> str:
    conds = "".join(
        f" and extension.where(url='{url}' and valueCodeableConcept.coding[0].code='{code}')"
        for url, code in codes.items()
    )
    return f"Location.extension.where(url='{CAPACITY_URL}'{conds})"


OCCUPIED_PATH = _selector(
    capacityType=BED, capacityStatus=OCCUPIED, temporalityCapacity=CURRENT, temporaryAssignement=NO_ASSIGNMENT
)
AVAILABLE_PATH = _selector(
    capacityType=BED,
    capacityStatus=AVAILABLE,
    temporalityCapacity=CURRENT,
    genderCapacityAvailable=UNDETERMINED,
    temporaryAssignement=NO_ASSIGNMENT,
)


def supplementary_path(crisis_type: str) -> str:
    return _selector(
        capacityType=BED,
        capacityStatus=SUPPLEMENTARY,
        temporalityCapacity=CURRENT,
        additionalBedType=MOBILISED,
        crisisType=crisis_type,
        temporaryAssignement=NO_ASSIGNMENT,
    )


def _op(kind: str, path: str, indicators: list[Indicator] | None = None) -> dict[str, Any]:
    return patch.operation(kind, path, [i.to_extension() for i in indicators] if indicators else None)


def _parameters(ops: list[dict[str, Any]]) -> dict[str, Any]:
    return patch.parameters(*ops)


@dataclass(frozen=True)
class Stamp:
    """What every indicator of one step carries: the write time and the exercise comment."""

    at: str  # capacityUpdateDate (FHIR dateTime, wall clock)
    comment: str
    crisis_type: str


def exercise_indicators(state: UnitState, stamp: Stamp) -> tuple[Indicator, Indicator, Indicator | None]:
    def ind(status: str, nb: int, **kw: str) -> Indicator:
        return Indicator(BED, status, CURRENT, nb, SOURCE_TYPE, stamp.at, NO_ASSIGNMENT, comment=stamp.comment, **kw)

    supp = (
        ind(SUPPLEMENTARY, state.supplementary, additional_bed_type=MOBILISED, crisis_type=stamp.crisis_type)
        if state.supplementary
        else None
    )
    return ind(OCCUPIED, state.occupied), ind(AVAILABLE, state.available, gender=UNDETERMINED), supp


def initial_body(current: list[Indicator], state: UnitState, stamp: Stamp) -> dict[str, Any]:
    """Replace the whole capacity list: the installed indicators kept, the exercise's figures instead of the rest."""
    kept = [i for i in current if i.status == "01"]
    occ, avail, supp = exercise_indicators(state, stamp)
    return _parameters([_op("replace", CAP_PATH, [*kept, occ, avail, *([supp] if supp else [])])])


def step_body(previous: UnitState, state: UnitState, stamp: Stamp) -> dict[str, Any]:
    occ, avail, supp = exercise_indicators(state, stamp)
    ops = [_op("replace", OCCUPIED_PATH, [occ]), _op("replace", AVAILABLE_PATH, [avail])]
    supp_path = supplementary_path(stamp.crisis_type)
    if supp is not None:
        ops.append(_op("replace", supp_path, [supp]) if previous.supplementary else _op("add", "Location", [supp]))
    elif previous.supplementary:
        ops.append(_op("delete", supp_path))
    return _parameters(ops)


# --- the run's bookkeeping (import_run, kind "exercise") ------------------------------------------------------------
def mark_database(engine: Engine, note: str) -> None:
    """The marker of an exercise database (checked before reusing or resetting one)."""
    now = utcnow()
    with engine.begin() as c:
        c.execute(
            insert(import_run).values(
                kind=RUN_KIND,
                source=note[:500],
                started=now,
                finished=now,
                report=orjson.dumps({"state": "base d'exercice", "marker": MARKER}).decode(),
            )
        )


def is_exercise_database(engine: Engine) -> bool:
    with engine.connect() as c:
        return c.execute(select(import_run.c.pk).where(import_run.c.kind == RUN_KIND).limit(1)).first() is not None


def latest_run(engine: Engine) -> tuple[int, dict[str, Any]] | None:
    """(row pk, report) of the latest exercise run (the database marker rows are not runs)."""
    with engine.connect() as c:
        rows = c.execute(
            select(import_run.c.pk, import_run.c.report)
            .where(import_run.c.kind == RUN_KIND)
            .order_by(import_run.c.pk.desc())
            .limit(20)
        ).all()
    for pk, report in rows:
        data = orjson.loads(report or "{}")
        if "scenario" in data:
            return int(pk), data
    return None


def request_stop(engine: Engine, by: str = "exercise stop") -> dict[str, Any] | None:
    """End the crisis of the running exercise: its runner stops at its next check. None: no run in progress."""
    found = latest_run(engine)
    if found is None or found[1].get("state") != RUNNING:
        return None
    state = found[1]
    registry = CrisisRegistry(engine)
    crisis = registry.get(int(state["crisis"]))
    if crisis.ended_at is None:
        registry.end(crisis.id, by)
    return state  # the runner owns its row: it records the stop itself


# --- the runner --------------------------------------------------------------------------------------------------
@dataclass
class StepProgress:
    step: int  # steps done
    steps: int
    simulated: datetime
    planned_total: int  # occupied beds of the plan at this step
    writes: int  # Location writes so far
    errors: int
    lag_s: float  # how far behind the pace (paced runs)


@dataclass
class RunResult:
    state: str
    steps_done: int
    writes: int
    errors: int
    seconds: float
    crisis: Crisis
    run_pk: int
    failures: list[str] = field(default_factory=list)

    @property
    def writes_per_second(self) -> float:
        return self.writes / self.seconds if self.seconds else 0.0


def crisis_scope(engine: Engine, scope: Scope, plan: ReplayPlan) -> tuple[str, list[str]]:
    """What the exercise's crisis covers: the scope's région or département; for a national exercise every région
    (else the plan's départements when the geography is not loaded)."""
    if scope.kind in ("region", "departement") and scope.code:
        return scope.kind, [scope.code]
    with engine.connect() as c:
        regions = list(c.execute(select(geo_region.c.code).order_by(geo_region.c.code)).scalars())
    return ("region", regions) if regions else ("departement", list(plan.departements))


class ExerciseRunner:
    def __init__(
        self,
        services: Services,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.services = services
        self.engine = services.engine
        self.clock, self.sleep, self.now = clock, sleep, now
        self.crises = CrisisRegistry(self.engine)

    def run(
        self,
        plan: ReplayPlan,
        scenario: Scenario,
        scope: Scope,
        *,
        speed: float | None,
        on_step: Callable[[StepProgress], None] | None = None,
        freshness_minutes: int = DEFAULT_CRISIS_FRESHNESS_MIN,
    ) -> RunResult:
        kind, codes = crisis_scope(self.engine, scope, plan)
        reason = (
            f"{MARKER} — scénario {scenario.key} ({scenario.title}), rejeu à {speed_label(speed)}, "
            f"facteur d'échelle {plan.scale:.4f}"
        )
        crisis = self.crises.declare(
            scenario.crisis_type, kind, codes, AUTHOR, reason=reason, freshness_minutes=freshness_minutes
        )
        state: dict[str, Any] = {
            "marker": MARKER,
            "scenario": scenario.key,
            "scope": str(scope),
            "speed": speed_label(speed),
            "from": plan.times[0].isoformat(),
            "until": plan.times[-1].isoformat(),
            "steps": plan.steps,
            "step": 0,
            "simulated": plan.times[0].isoformat(),
            "planned_total": plan.total(0),
            "writes": 0,
            "errors": 0,
            "state": RUNNING,
            "crisis": crisis.id,
            "scale": plan.scale,
            "scale_basis": plan.scale_basis,
            "fraction": plan.fraction,
            "installed": plan.installed,
            "peak_day": plan.peak_day.isoformat(),
            "peak_census": plan.peak_census,
            "units": len(plan.units),
            "pid": os.getpid(),
            "heartbeat": self.now().isoformat(),
        }
        run_pk = self._open_run(scenario, state)
        replay = _Replay(self, plan, scenario, speed, crisis, freshness_minutes)
        started = self.clock()
        try:
            replay.play(state, run_pk, on_step)
        finally:
            if state["state"] == RUNNING:  # an exception (or ^C) left it running
                state["state"] = INTERRUPTED
            current = self.crises.get(crisis.id)
            if current.ended_at is None:
                self.crises.end(crisis.id, AUTHOR)
            state["heartbeat"] = self.now().isoformat()
            self._save(run_pk, state, finished=True)
        return RunResult(
            state["state"],
            int(state["step"]),
            replay.writes,
            replay.errors,
            self.clock() - started,
            self.crises.get(crisis.id),
            run_pk,
            replay.failures,
        )

    def _open_run(self, scenario: Scenario, state: dict[str, Any]) -> int:
        with self.engine.begin() as c:
            pk = c.execute(
                insert(import_run)
                .values(kind=RUN_KIND, source=scenario.key, started=utcnow(), report=orjson.dumps(state).decode())
                .returning(import_run.c.pk)
            ).scalar_one()
        return int(pk)

    def _save(self, run_pk: int, state: dict[str, Any], finished: bool = False) -> None:
        values: dict[str, Any] = {
            "report": orjson.dumps(state).decode(),
            "updated": int(state["writes"]),
            "errors": int(state["errors"]),
        }
        if finished:
            values["finished"] = utcnow()
        with self.engine.begin() as c:
            c.execute(update(import_run).where(import_run.c.pk == run_pk).values(**values))

    def stopped(self, crisis_id: int) -> bool:
        return self.crises.get(crisis_id).ended_at is not None


class _Replay:
    """One run's loop state: what each unit was last written with, and when."""

    def __init__(
        self,
        runner: ExerciseRunner,
        plan: ReplayPlan,
        scenario: Scenario,
        speed: float | None,
        crisis: Crisis,
        freshness_minutes: int,
    ) -> None:
        self.runner, self.plan, self.scenario, self.speed, self.crisis = runner, plan, scenario, speed, crisis
        self.caller = Caller(
            Profile.ALL,
            "client",
            subject=AUTHOR,
            feeds=tuple(sorted({f for u in plan.units for f in u.finess})),
            scopes=frozenset({"write"}),
        )
        self.refresh_s = freshness_minutes * 60 / 2
        self.last: dict[str, UnitState] = {}
        self.last_at: dict[str, float] = {}
        self.writes = 0
        self.errors = 0
        self.failures: list[str] = []

    @property
    def interval_s(self) -> float:
        """Real seconds between two steps (0: as fast as possible)."""
        if self.speed is None or self.plan.steps < 2:
            return 0.0
        return (self.plan.times[1] - self.plan.times[0]).total_seconds() / self.speed

    def play(self, state: dict[str, Any], run_pk: int, on_step: Callable[[StepProgress], None] | None) -> None:
        r = self.runner
        origin = r.clock()
        for i, simulated in enumerate(self.plan.times):
            lag = self._wait_until(origin + i * self.interval_s)
            if lag is None:
                state["state"] = STOPPED
                state["stopped_by"] = r.crises.get(self.crisis.id).ended_by
                return
            self._write_step(i, simulated)
            state.update(
                step=i + 1,
                simulated=simulated.isoformat(),
                planned_total=self.plan.total(i),
                writes=self.writes,
                errors=self.errors,
                heartbeat=r.now().isoformat(),
                lag_s=round(lag, 3),
            )
            r._save(run_pk, state)
            if on_step is not None:
                on_step(
                    StepProgress(i + 1, self.plan.steps, simulated, self.plan.total(i), self.writes, self.errors, lag)
                )
        state["state"] = DONE

    def _wait_until(self, due: float) -> float | None:
        """Sleep until `due` (monotonic), looking for a stop at least every second; None when stopped, else how
        late the step starts."""
        r = self.runner
        if r.stopped(self.crisis.id):
            return None
        while (left := due - r.clock()) > 0:
            r.sleep(min(left, POLL_S))
            if r.stopped(self.crisis.id):
                return None
        return max(0.0, r.clock() - due) if self.interval_s else 0.0

    def _write_step(self, i: int, simulated: datetime) -> None:
        """The step's changes through the bulk capacity feed (`CapacityService.patch_many`: one transaction per
        batch, one version, event and audit row per unit); an entry refused (a trainee changed the unit's
        indicators under us) is written again from the unit's current content."""
        r = self.runner
        stamp = Stamp(
            fhir_datetime(r.now()),
            f"{MARKER} {self.scenario.key} : situation simulée du {simulated:%d/%m/%Y %H:%M}",
            self.scenario.crisis_type,
        )
        paced = self.speed is not None
        due: list[tuple[str, UnitState]] = []
        for location_id, unit_state in self.plan.states(i).items():
            previous = self.last.get(location_id)
            if previous == unit_state and not (paced and r.clock() - self.last_at[location_id] >= self.refresh_s):
                continue
            due.append((location_id, unit_state))
        for start in range(0, len(due), BATCH):
            batch = due[start : start + BATCH]
            requests = [PatchRequest(self._body(loc, new, stamp), location_id=loc) for loc, new in batch]
            results = r.services.capacity.patch_many(self.caller, requests)
            for (location_id, new), result in zip(batch, results, strict=True):
                if isinstance(result, RorError):
                    self._write_again(location_id, new, stamp)
                else:
                    self._written(location_id, new)

    def _body(self, location_id: str, new: UnitState, stamp: Stamp) -> dict[str, Any]:
        previous = self.last.get(location_id)
        if previous is not None:
            return step_body(previous, new, stamp)
        current = self.runner.services.store.read("Location", location_id).resource()
        return initial_body(indicators_of(current), new, stamp)

    def _write_again(self, location_id: str, new: UnitState, stamp: Stamp) -> None:
        try:
            current = self.runner.services.store.read("Location", location_id).resource()
            self.runner.services.capacity.patch(
                self.caller, initial_body(indicators_of(current), new, stamp), location_id=location_id
            )
        except RorError as exc:
            self.errors += 1
            if len(self.failures) < MAX_FAILURES_KEPT:
                self.failures.append(f"{location_id}: {exc.diagnostics}")
            log.warning("exercise write refused for %s: %s", location_id, exc.diagnostics)
            return
        self._written(location_id, new)

    def _written(self, location_id: str, new: UnitState) -> None:
        self.writes += 1
        self.last[location_id] = new
        self.last_at[location_id] = self.runner.clock()
