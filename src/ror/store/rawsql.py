"""Driver-level statements of one write, without SQLAlchemy's per-row parameter processing.

A write of the store is a handful of small statements (index rows deleted and inserted, the current row and the
version rows). On PostgreSQL each statement was one or two network round trips (COPY takes two), and under load
every round trip waits for a CPU: `Batch` sends them all in one psycopg pipeline — one round trip — unless some
insert is large (an import), in which case they run in order with COPY for the large ones. On SQLite (no network)
they run one by one through the DBAPI."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from itertools import chain
from typing import Any

from sqlalchemy import Connection, DateTime, Table
from sqlalchemy.exc import DBAPIError

# SQLite: a large insert binds this many parameters per statement, several rows each (the national FINESS import's
# 3.5 M index rows: ~25 % less time than a statement per row; 999 is SQLite's historical limit of parameters)
MULTI_ROW_PARAMS = 999
COPY_MIN_ROWS = 200  # below this, an INSERT in the pipeline beats COPY (two round trips of its own)
Row = tuple[Any, ...]


def sqlite_datetime(v: Any) -> Any:
    """SQLAlchemy's SQLite DateTime storage format (always with microseconds), so that raw rows compare equal."""
    return _sqlite_text(v) if isinstance(v, datetime) else v


@lru_cache(maxsize=4096)
def _sqlite_text(v: datetime) -> str:  # a batch stamps all its rows with one instant: formatted once
    return v.strftime("%Y-%m-%d %H:%M:%S.%f")


def sqlite_datetime_value(v: Any) -> Any:
    """A DateTime column read at driver level: SQLite gives the stored text (see `sqlite_datetime`), PostgreSQL
    a datetime already."""
    return datetime.fromisoformat(v) if isinstance(v, str) else v


@lru_cache(maxsize=256)
def _pg_sql(sql: str) -> str:
    return sql.replace("?", "%s")


def marks(n: int) -> str:
    """`?, ?, …` for n parameters of a `fetch_all` statement."""
    return ", ".join(["?"] * n)


def fetch_all(c: Connection, sql: str, params: Sequence[Any] = ()) -> list[Row]:
    """A read at driver level (`?` marks the parameters on both engines): ~0.1 ms of Python where SQLAlchemy's
    execution of the same prebuilt statement costs 0.25–0.35 ms (measured; a capacity PATCH runs several).
    Values come as the driver gives them: on SQLite a DateTime column is text (`sqlite_datetime_value`)."""
    raw = c.connection.driver_connection
    try:
        if c.dialect.name == "postgresql":
            return raw.cursor().execute(_pg_sql(sql), tuple(params)).fetchall()  # type: ignore[no-any-return]
        return raw.execute(sql, _sqlite_row(tuple(params))).fetchall()  # type: ignore[no-any-return]
    except c.dialect.loaded_dbapi.Error as exc:
        raise _dbapi_error(c, sql, exc) from exc


def _dbapi_error(c: Connection, sql: str, exc: Exception) -> DBAPIError:
    """A driver error as SQLAlchemy would raise it (503 mapping, retries)."""
    raw = c.connection.driver_connection
    return DBAPIError.instance(
        sql,
        None,
        exc,
        c.dialect.loaded_dbapi.Error,
        connection_invalidated=bool(getattr(raw, "broken", False)),
        dialect=c.dialect,
    )


def _sqlite_row(row: Row) -> Row:
    return tuple(sqlite_datetime(v) for v in row)


def _datetime_positions(table: Table, cols: Sequence[str]) -> tuple[int, ...]:
    return tuple(i for i, name in enumerate(cols) if isinstance(table.c[name].type, DateTime))


def _with_sqlite_datetimes(rows: list[Row], positions: tuple[int, ...]) -> list[Row]:
    """`rows` with the values at `positions` in SQLite's DateTime text (a bulk load's 240 k resource and version
    rows: a list per row and two assignments cost a third of a generator over every column)."""
    out = []
    for r in rows:
        values = list(r)
        for i in positions:
            values[i] = sqlite_datetime(values[i])
        out.append(tuple(values))
    return out


class Batch:
    """Statements run in the order given, on the caller's connection and transaction (`run`)."""

    def __init__(self, c: Connection) -> None:
        self.c = c
        self.pg = c.dialect.name == "postgresql"
        self.mark = "%s" if self.pg else "?"
        self._ops: list[tuple[str, list[Row], bool]] = []  # (sql, rows, executemany)
        self._copies: dict[int, tuple[Table, Sequence[str], list[Row]]] = {}  # op position -> COPY

    def marks(self, n: int) -> str:
        return ", ".join([self.mark] * n)

    def execute(self, sql: str, params: Row) -> None:
        self._ops.append((sql, [params if self.pg else _sqlite_row(params)], False))

    def executemany(self, sql: str, rows: list[Row]) -> None:
        if rows:
            self._ops.append((sql, rows if self.pg else [_sqlite_row(r) for r in rows], True))

    def insert(self, table: Table, cols: Sequence[str], rows: list[Row], utf8: Sequence[str] = ()) -> None:
        """`utf8`: text columns given as UTF-8 bytes on SQLite (stored as text: `CAST(? AS TEXT)` reuses the
        bytes, where a `str` parameter is encoded again by the driver); PostgreSQL rows give them as `str`."""
        if not rows:
            return
        if self.pg and len(rows) >= COPY_MIN_ROWS:
            self._copies[len(self._ops)] = (table, cols, rows)
            self._ops.append(("", [], True))
            return
        if not self.pg:  # only the DateTime columns need converting (millions of index rows in an import)
            positions = _datetime_positions(table, cols)
            if positions:
                rows = _with_sqlite_datetimes(rows, positions)
        m = self.mark
        one = "(" + ", ".join(f"CAST({m} AS TEXT)" if col in utf8 and not self.pg else m for col in cols) + ")"
        head = f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES "
        k = MULTI_ROW_PARAMS // len(cols)
        if not self.pg and len(rows) >= 2 * k:  # many rows: k per statement (one step of SQLite per k rows)
            full = len(rows) // k * k
            groups = [tuple(chain.from_iterable(rows[i : i + k])) for i in range(0, full, k)]
            self._ops.append((head + ", ".join([one] * k), groups, True))
            rows = rows[full:]
        if rows:
            self._ops.append((head + one, rows, True))

    def run(self) -> None:
        ops, self._ops = self._ops, []
        copies, self._copies = self._copies, {}
        if not ops:
            return
        if not self.pg:
            for sql, rows, many in ops:
                self.c.exec_driver_sql(sql, rows if many else rows[0])
            return
        raw = self.c.connection.driver_connection
        sql = ""
        try:
            cursor = raw.cursor()
            if copies:  # an import: in order, large inserts by COPY
                for i, (sql, rows, many) in enumerate(ops):
                    if i in copies:
                        table, cols, copy_rows = copies[i]
                        sql = f"COPY {table.name} ({', '.join(cols)}) FROM STDIN"
                        with cursor.copy(sql) as copy:
                            for row in copy_rows:
                                copy.write_row(row)
                    elif many:
                        cursor.executemany(sql, rows)
                    else:
                        cursor.execute(sql, rows[0])
                return
            with raw.pipeline():
                for sql, rows, many in ops:
                    if many:
                        cursor.executemany(sql, rows)
                    else:
                        cursor.execute(sql, rows[0])
        except self.c.dialect.loaded_dbapi.Error as exc:  # as SQLAlchemy would raise it (503 mapping, retries)
            raise _dbapi_error(self.c, sql, exc) from exc
