"""Export jobs persisted in `export_job` (migration 0007): kick-off, claim by a runner (compare-and-set, so that
several server processes never run one job twice), heartbeat, completion, failure, cancellation.

Lifecycle: `accepted` → `in-progress` → `completed` | `error`; `cancelled` at any time (DELETE). A job whose
runner died (no heartbeat for `LEASE`) is claimed again and restarted from the beginning."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Engine, and_, or_, select, update

from ror.access.policy import Profile
from ror.db.tables import export_job
from ror.export.request import ExportRequest
from ror.search.normalise import utcnow

ACCEPTED, RUNNING, COMPLETED, ERROR, CANCELLED = "accepted", "in-progress", "completed", "error", "cancelled"
UNFINISHED = (ACCEPTED, RUNNING)
LEASE = timedelta(seconds=60)  # a running job without a heartbeat for this long is taken over


@dataclass(frozen=True)
class OutputFile:
    res_type: str
    name: str  # file name inside the job's directory
    count: int

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.res_type, "name": self.name, "count": self.count}


@dataclass(frozen=True)
class Job:
    id: str
    status: str
    request_url: str
    request: ExportRequest
    profile: Profile
    caller: str
    transaction_time: datetime
    created_at: datetime
    updated_at: datetime
    progress: int
    output: list[OutputFile] = field(default_factory=list)
    error: str | None = None

    def owned_by(self, caller: str, profile: Profile) -> bool:
        return self.caller == caller and self.profile == profile


def _job(row: Any) -> Job:
    outputs = [OutputFile(o["type"], o["name"], o["count"]) for o in orjson.loads(row.output or "[]")]
    return Job(
        id=row.id,
        status=row.status,
        request_url=row.request_url,
        request=ExportRequest.from_json(row.params),
        profile=Profile(row.profile),
        caller=row.caller or "",
        transaction_time=row.transaction_time,
        created_at=row.created_at,
        updated_at=row.updated_at,
        progress=row.progress or 0,
        output=outputs,
        error=row.error,
    )


class JobStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _write(self) -> Any:
        return self.engine.connect().execution_options(ror_write=True)

    def create(self, request: ExportRequest, *, request_url: str, profile: Profile, caller: str) -> Job:
        now = utcnow()
        job_id = secrets.token_urlsafe(24)  # unguessable: the status URL is the handle
        with self._write() as c, c.begin():
            c.execute(
                export_job.insert().values(
                    id=job_id,
                    status=ACCEPTED,
                    request_url=request_url,
                    params=request.to_json(),
                    profile=int(profile),
                    caller=caller,
                    transaction_time=now,
                    created_at=now,
                    updated_at=now,
                    progress=0,
                )
            )
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str) -> Job | None:
        with self.engine.connect() as c:
            row = c.execute(select(export_job).where(export_job.c.id == job_id)).first()
        return None if row is None else _job(row)

    def status(self, job_id: str) -> str | None:
        with self.engine.connect() as c:
            return c.execute(select(export_job.c.status).where(export_job.c.id == job_id)).scalar()

    def claimable(self, now: datetime | None = None) -> list[Job]:
        """Jobs waiting for a runner: accepted, or running without a heartbeat for `LEASE` (their runner died)."""
        now = now or utcnow()
        t = export_job.c
        cond = or_(t.status == ACCEPTED, and_(t.status == RUNNING, t.updated_at < now - LEASE))
        with self.engine.connect() as c:
            rows = c.execute(select(export_job).where(cond).order_by(t.created_at, t.id)).all()
        return [_job(r) for r in rows]

    def claim(self, job: Job) -> bool:
        """Take `job` as seen by `claimable` (compare-and-set on status and heartbeat): True for one runner only.
        The transaction time is the start of this run (the export reads the data as of then)."""
        now = utcnow()
        t = export_job.c
        with self._write() as c, c.begin():
            res = c.execute(
                update(export_job)
                .where(t.id == job.id, t.status == job.status, t.updated_at == job.updated_at)
                .values(status=RUNNING, updated_at=now, transaction_time=now, progress=0, output=None, error=None)
            )
        return res.rowcount == 1

    def heartbeat(self, job_id: str, progress: int) -> bool:
        """Record progress; False when the job is no longer ours to run (cancelled meanwhile)."""
        t = export_job.c
        with self._write() as c, c.begin():
            res = c.execute(
                update(export_job)
                .where(t.id == job_id, t.status == RUNNING)
                .values(progress=progress, updated_at=utcnow())
            )
        return res.rowcount == 1

    def complete(self, job_id: str, outputs: list[OutputFile], progress: int) -> bool:
        t = export_job.c
        with self._write() as c, c.begin():
            res = c.execute(
                update(export_job)
                .where(t.id == job_id, t.status == RUNNING)
                .values(
                    status=COMPLETED,
                    progress=progress,
                    updated_at=utcnow(),
                    output=orjson.dumps([o.as_dict() for o in outputs]).decode(),
                )
            )
        return res.rowcount == 1

    def fail(self, job_id: str, message: str) -> None:
        t = export_job.c
        with self._write() as c, c.begin():
            c.execute(
                update(export_job)
                .where(t.id == job_id, t.status == RUNNING)
                .values(status=ERROR, updated_at=utcnow(), error=message[:2000])
            )

    def release(self, job_id: str) -> None:
        """Give a running job back (the server is stopping): the next runner to start takes it at once."""
        t = export_job.c
        with self._write() as c, c.begin():
            c.execute(
                update(export_job)
                .where(t.id == job_id, t.status == RUNNING)
                .values(status=ACCEPTED, updated_at=utcnow(), progress=0)
            )

    def cancel(self, job_id: str) -> bool:
        t = export_job.c
        with self._write() as c, c.begin():
            res = c.execute(
                update(export_job)
                .where(t.id == job_id, t.status != CANCELLED)
                .values(status=CANCELLED, updated_at=utcnow())
            )
        return res.rowcount == 1
