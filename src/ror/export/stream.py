"""Write the ndjson files of one export job: for each type, the resources matching the request (the search's own
parser and SQL compiler evaluate `_typeFilter`), read in keyset batches over `resource.pk` (constant memory, however
large the répertoire), each line filtered for the requester's access profile exactly as a search page is.

All batches of a job are read in one read transaction (a snapshot: REPEATABLE READ on PostgreSQL, a WAL read
transaction on SQLite), so the files are consistent with the job's transaction time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy import ColumnElement, Connection, Engine, and_, func, or_, select

from ror.access.context import contexts, hide_sensitive
from ror.access.policy import RULES, Profile, filter_resource
from ror.db.engine import is_sqlite
from ror.db.tables import resource
from ror.export.jobs import OutputFile
from ror.export.request import ExportRequest
from ror.search.engine import SearchEngine
from ror.search.query import QueryParser

BATCH = 1000
MAX_LINES_PER_FILE = 100_000
Heartbeat = Callable[[int], bool]  # progress so far -> False to stop (cancelled, shutting down)


class Stopped(Exception):
    """The job was cancelled or the runner is stopping: files written so far are discarded."""


@dataclass
class _Part:
    res_type: str
    number: int
    path: Path
    handle: IO[bytes]
    count: int = 0


def type_condition(
    outer: Any,
    res_type: str,
    request: ExportRequest,
    parser: QueryParser,
    search: SearchEngine,
    profile: Profile,
    key: str = "pk",
) -> ColumnElement[bool]:
    """The SQL condition of the resources of `res_type` that the export includes (read in `key` order)."""
    filters = request.filter_items(res_type)
    if filters:
        where = or_(*(search.compiler.where(parser.parse(res_type, items).nodes, outer, res_type) for items in filters))
    elif search.sqlite and key == "pk":
        # keyset over pk: keep SQLite on the primary key (through the type index it would sort every batch)
        where = and_(func.coalesce(outer.c.res_type, "") == res_type, outer.c.deleted.is_(False))
    else:
        where = search.compiler.where([], outer, res_type)
    if request.since is not None:
        where = and_(where, outer.c.last_updated > request.since)
    if not RULES[profile].sensitive_units:
        where = and_(where, hide_sensitive(outer, res_type))  # as the search adapter does
    return where


def iter_rows(
    conn: Connection, where: ColumnElement[bool], outer: Any, batch: int = BATCH, key: str = "pk"
) -> Iterator[list[Any]]:
    """Keyset batches of (pk, res_type, res_id, content) rows in `key` order (pk, or res_id within one type)."""
    col = outer.c[key]
    last: Any = None
    while True:
        stmt = select(outer.c.pk, outer.c.res_type, outer.c.res_id, outer.c.content).where(where)
        if last is not None:
            stmt = stmt.where(col > last)
        rows = conn.execute(stmt.order_by(col).limit(batch)).all()
        if not rows:
            return
        yield rows
        last = rows[-1][0 if key == "pk" else 2]


def visible_resources(conn: Connection, rows: list[Any], profile: Profile) -> list[dict[str, Any]]:
    """The resources of `rows` as `profile` may see them (hidden resources are left out)."""
    ctx = contexts(conn, [(r[0], r[1], r[2]) for r in rows])
    out = []
    for pk, _rt, _rid, content in rows:
        seen = filter_resource(orjson.loads(content), profile, ctx[pk])
        if seen is not None:
            out.append(seen)
    return out


def visible_lines(conn: Connection, rows: list[Any], profile: Profile) -> list[bytes]:
    """The ndjson lines of `rows` as `profile` may see them (profile 1 sees the stored content as is)."""
    if profile == Profile.ALL:
        return [r[3].encode() if isinstance(r[3], str) else orjson.dumps(r[3]) for r in rows]
    return [orjson.dumps(r) for r in visible_resources(conn, rows, profile)]


class ExportWriter:
    def __init__(
        self, engine: Engine, parser: QueryParser, *, batch: int = BATCH, max_lines: int = MAX_LINES_PER_FILE
    ) -> None:
        self.engine = engine
        self.parser = parser
        self.search = SearchEngine(engine)
        self.batch = batch
        self.max_lines = max_lines

    def _snapshot(self) -> Connection:
        conn = self.engine.connect()
        if not is_sqlite(self.engine):
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        return conn

    def write(
        self, request: ExportRequest, profile: Profile, directory: Path, heartbeat: Heartbeat
    ) -> tuple[list[OutputFile], int]:
        """Write every file of the export into `directory`; returns the files and the number of resources."""
        directory.mkdir(parents=True, exist_ok=True)
        outputs: list[OutputFile] = []
        total = 0
        with self._snapshot() as conn, conn.begin():
            for res_type in request.types:
                outer = resource.alias("r")
                where = type_condition(outer, res_type, request, self.parser, self.search, profile)
                part: _Part | None = None
                try:
                    for rows in iter_rows(conn, where, outer, self.batch):
                        for line in visible_lines(conn, rows, profile):
                            if part is None or part.count >= self.max_lines:
                                part = self._next_part(directory, res_type, part, outputs)
                            part.handle.write(line + b"\n")
                            part.count += 1
                            total += 1
                        if not heartbeat(total):
                            raise Stopped
                finally:
                    if part is not None:
                        part.handle.close()
                        outputs.append(OutputFile(res_type, part.path.name, part.count))
        return outputs, total

    @staticmethod
    def _next_part(directory: Path, res_type: str, previous: _Part | None, outputs: list[OutputFile]) -> _Part:
        number = 1
        if previous is not None:
            previous.handle.close()
            outputs.append(OutputFile(res_type, previous.path.name, previous.count))
            number = previous.number + 1
        path = directory / f"{res_type}-{number}.ndjson"
        return _Part(res_type, number, path, path.open("wb"))
