"""Crisis mode (Plan blanc / SSE, PMIE): declared for a région or a set of départements, with a start, an end and
who; while active, the freshness rule tightens (default 60 min) and supplementary capacity (status 06 with the
crisis type) is expected. History is kept (rows are ended, never deleted)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, insert, select, update

from ror.db.tables import crisis
from ror.errors import InvalidRequest, NotFound
from ror.search.normalise import utcnow

CRISIS_TYPES = {"01": "PMIE 1", "02": "Situation sanitaire exceptionnelle (SSE) (Plan blanc)"}
DEFAULT_FRESHNESS = timedelta(hours=24)
DEFAULT_CRISIS_FRESHNESS_MIN = 60


@dataclass(frozen=True)
class Crisis:
    id: int
    crisis_type: str
    scope_kind: str
    scope_codes: tuple[str, ...]
    freshness_minutes: int
    reason: str | None
    started_at: datetime
    started_by: str
    ended_at: datetime | None
    ended_by: str | None

    @property
    def label(self) -> str:
        return CRISIS_TYPES.get(self.crisis_type, self.crisis_type)

    def covers(self, region: str | None, departement: str | None) -> bool:
        code = region if self.scope_kind == "region" else departement
        return code is not None and code in self.scope_codes

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "type": {"code": self.crisis_type, "display": self.label},
            "scope": self.scope_kind,
            "codes": list(self.scope_codes),
            "freshnessMinutes": self.freshness_minutes,
            "reason": self.reason,
            "start": self.started_at.isoformat() + "Z",
            "startedBy": self.started_by,
            "end": self.ended_at.isoformat() + "Z" if self.ended_at else None,
            "endedBy": self.ended_by,
        }


def _row(r: object) -> Crisis:
    return Crisis(
        r.pk,
        r.crisis_type,
        r.scope_kind,
        tuple(r.scope_codes.split()),
        r.freshness_minutes,  # type: ignore[attr-defined]
        r.reason,
        r.started_at,
        r.started_by,
        r.ended_at,
        r.ended_by,  # type: ignore[attr-defined]
    )


class CrisisRegistry:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def declare(
        self,
        crisis_type: str,
        scope_kind: str,
        codes: list[str],
        by: str,
        *,
        reason: str | None = None,
        freshness_minutes: int = DEFAULT_CRISIS_FRESHNESS_MIN,
        at: datetime | None = None,
    ) -> Crisis:
        if crisis_type not in CRISIS_TYPES:
            raise InvalidRequest(f"crisis type must be one of {sorted(CRISIS_TYPES)} (TRE_R336)", expression="type")
        if scope_kind not in ("region", "departement") or not codes:
            raise InvalidRequest("a crisis covers a région or départements", expression="scope")
        if not 5 <= freshness_minutes <= 24 * 60:
            raise InvalidRequest("freshness interval must be between 5 minutes and 24 hours", expression="freshness")
        with self.engine.begin() as c:
            pk = c.execute(
                insert(crisis)
                .values(
                    crisis_type=crisis_type,
                    scope_kind=scope_kind,
                    scope_codes=" ".join(sorted(set(codes))),
                    freshness_minutes=freshness_minutes,
                    reason=reason,
                    started_at=at or utcnow(),
                    started_by=by,
                )
                .returning(crisis.c.pk)
            ).scalar_one()
        return self.get(int(pk))

    def end(self, crisis_id: int, by: str, at: datetime | None = None) -> Crisis:
        current = self.get(crisis_id)
        if current.ended_at is not None:
            raise InvalidRequest(f"crisis {crisis_id} already ended at {current.ended_at:%Y-%m-%d %H:%M}")
        with self.engine.begin() as c:
            c.execute(update(crisis).where(crisis.c.pk == crisis_id).values(ended_at=at or utcnow(), ended_by=by))
        return self.get(crisis_id)

    def get(self, crisis_id: int) -> Crisis:
        with self.engine.connect() as c:
            row = c.execute(select(crisis).where(crisis.c.pk == crisis_id)).first()
        if row is None:
            raise NotFound(f"crisis {crisis_id} is not known")
        return _row(row)

    def history(self) -> list[Crisis]:
        with self.engine.connect() as c:
            return [_row(r) for r in c.execute(select(crisis).order_by(crisis.c.started_at.desc()))]

    def active(self, at: datetime | None = None) -> list[Crisis]:
        at = at or utcnow()
        with self.engine.connect() as c:
            rows = c.execute(
                select(crisis).where(
                    crisis.c.started_at <= at, (crisis.c.ended_at.is_(None)) | (crisis.c.ended_at > at)
                )
            )
            return [_row(r) for r in rows]

    def freshness_limit(self, region: str | None, departement: str | None, at: datetime | None = None) -> timedelta:
        """How old current availability may be before it is stale here: 24 h, or the tightest active crisis."""
        return limit_for(self.active(at), region, departement)


def limit_for(active: list[Crisis], region: str | None, departement: str | None) -> timedelta:
    limits = [timedelta(minutes=cr.freshness_minutes) for cr in active if cr.covers(region, departement)]
    return min([DEFAULT_FRESHNESS, *limits])
