"""The exercise's own database: never the main one, its name says it is an exercise, created when missing,
emptied on request (only when it is empty or already an exercise database), migrated."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from ror.db import migrate
from ror.db.database import resource_count
from ror.db.engine import is_sqlite, make_engine, normalise_url
from ror.errors import InvalidRequest
from ror.exercise.runner import is_exercise_database, mark_database

DEFAULT_URL = "sqlite:///./ror-exercise.db"
NAME_MARKERS = ("exercise", "exercice")


def canonical(url: str) -> str:
    """A comparable form of a database URL: driver normalised, SQLite path absolute, no password."""
    u = make_url(normalise_url(url))
    if u.get_backend_name() == "sqlite":
        db = u.database or ""
        if db and db != ":memory:" and not db.startswith("file:"):
            db = str(Path(db).expanduser().resolve())
        return f"sqlite:///{db}"
    return u.set(password=None).render_as_string(hide_password=True)


def check_url(url: str, main_url: str) -> str:
    """The exercise URL, normalised; refused when it is the main database or its name does not say exercise."""
    if canonical(url) == canonical(main_url):
        raise InvalidRequest(
            "refus : la base d'exercice ne peut pas être la base principale (ROR_DATABASE_URL) ; "
            "donnez --database sqlite:///./ror-exercise.db ou une base PostgreSQL dédiée",
            expression="database",
        )
    name = Path(make_url(normalise_url(url)).database or "").name.lower()
    if not any(m in name for m in NAME_MARKERS):
        raise InvalidRequest(
            f"refus : le nom de la base d'exercice doit contenir « exercice » ou « exercise » (reçu {name!r}) : "
            "c'est la marque qui affiche le bandeau EXERCICE",
            expression="database",
        )
    return normalise_url(url)


def _create_postgres(url: URL) -> None:
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as c:
            exists = c.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database}).first()
            if not exists:
                c.execute(text(f'CREATE DATABASE "{url.database}"'))
    finally:
        admin.dispose()


def _wipe(engine: Engine) -> None:
    if is_sqlite(engine):
        path = Path(engine.url.database or "")
        engine.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        return
    with engine.begin() as c:
        c.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        c.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def prepare(url: str, *, reset: bool = False) -> tuple[Engine, bool]:
    """(engine, fresh): create the database when missing, empty it on `reset`, migrate it and mark it. A database
    holding data that no exercise marked is refused (it may be someone's real data). `fresh`: no resource yet (the
    demo data must be loaded)."""
    u = make_url(url)
    if u.get_backend_name() == "postgresql":
        _create_postgres(u)
    engine = make_engine(url)
    migrate.upgrade(engine)
    if resource_count(engine) and not is_exercise_database(engine):
        engine.dispose()
        raise InvalidRequest(
            "refus : cette base contient des données qui ne viennent pas d'un exercice (aucune marque « exercise ») ; "
            "elle n'est ni réutilisée ni effacée",
            expression="database",
        )
    if reset:
        _wipe(engine)
        engine = make_engine(url)
        migrate.upgrade(engine)
    if not is_exercise_database(engine):
        mark_database(engine, "base d'exercice")
    return engine, resource_count(engine) == 0
