"""One engine per database URL for the process; schema upgrade; emptiness checks."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Engine, func, select, text

from ror.config import get_settings
from ror.db import migrate
from ror.db.engine import is_sqlite, make_engine
from ror.db.tables import resource


@lru_cache(maxsize=8)
def get_engine(url: str | None = None) -> Engine:
    return make_engine(url or get_settings().database_url)


def upgrade(engine: Engine) -> None:
    migrate.upgrade(engine)


def resource_count(engine: Engine, res_type: str | None = None) -> int:
    q = select(func.count()).select_from(resource).where(resource.c.deleted.is_(False))
    if res_type:
        q = q.where(resource.c.res_type == res_type)
    with engine.connect() as c:
        return int(c.execute(q).scalar_one())


def analyze(engine: Engine) -> None:
    """Refresh the planner statistics after a bulk load (both engines plan better with them). SQLite: inside a
    committed write transaction (the engine's own BEGIN: an AUTOCOMMIT connection never committed it, and the
    statistics were rolled back), sampling at most 1,000 rows per index (`analysis_limit`, seconds on a national
    database). PostgreSQL: `VACUUM (ANALYZE)`, which also sets the visibility map of the freshly written pages:
    without it (until autovacuum passes; it may be off) a count over the index, e.g. every Location of the
    national demo, fetches each heap row to check its visibility — 105 ms instead of 32 ms measured; ~3 s on
    the national demo."""
    if is_sqlite(engine):
        with engine.connect().execution_options(ror_write=True) as c, c.begin():
            c.exec_driver_sql("PRAGMA analysis_limit=1000")
            c.exec_driver_sql("ANALYZE")
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("VACUUM (ANALYZE)"))
