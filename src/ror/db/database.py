"""One engine per database URL for the process; schema upgrade; emptiness checks."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Engine, func, select, text

from ror.config import get_settings
from ror.db import migrate
from ror.db.engine import make_engine
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
    """Refresh the planner statistics after a bulk load (both engines plan better with them)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("ANALYZE"))
