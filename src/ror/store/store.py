"""Create / read / update / delete / history of FHIR resources, with versions, ETags and search indexes.

Every write happens in one database transaction: the current row, the version row and the index rows change
together, so a reader never sees a version without its indexes. Callers that must write more in the same
transaction (the capacity projection) pass their own connection."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, bindparam, func, insert, select, text, update

from ror.db.engine import is_sqlite
from ror.db.tables import (
    drop_bulk_structures,
    ensure_indexes,
    idx_date,
    idx_geo,
    idx_number,
    idx_quantity,
    idx_reference,
    idx_string,
    idx_token,
    resource,
    resource_version,
)
from ror.errors import Gone, InvalidRequest, NotFound, PreconditionFailed, RorError
from ror.search.extract import IndexRows, RowChanges, extract, update_rows
from ror.search.normalise import fhir_instant, utcnow
from ror.search.registry import Registry, default_registry
from ror.store.meta import commune_code, content_hash, creation_date, dumps, finalise, region_tag
from ror.store.rawsql import Batch, fetch_all, marks, sqlite_datetime_value

ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
# A version row's content is NULL while it is the current version: the content is then resource.content.
_VERSION_CONTENT = func.coalesce(resource_version.c.content, resource.c.content).label("content")

# Statements built once (bind parameters t = res_type, i = res_id): building a select costs ~0.3 ms of Python,
# paid several times per write on the capacity feed's hot path.
_BY_KEY = (resource.c.res_type == bindparam("t"), resource.c.res_id == bindparam("i"))
_READ = select(resource.c.version_id, resource.c.last_updated, resource.c.deleted, resource.c.content).where(*_BY_KEY)
# The current row(s) a write starts from, read at driver level (`fetch_all`: the capacity feed's hot path);
# on PostgreSQL locked until the transaction ends (`FOR UPDATE`; SQLite writers hold the database lock).
_CURRENT_COLS = "pk, version_id, last_updated, deleted, region, content_hash, content"
_CURRENT_SQL = f"SELECT {_CURRENT_COLS} FROM resource WHERE res_type = ? AND res_id = ?"


def _current_many_sql(n: int, lock: bool) -> str:
    sql = f"SELECT {_CURRENT_COLS}, res_id FROM resource WHERE res_type = ? AND res_id IN ({marks(n)}) ORDER BY res_id"
    return sql + " FOR UPDATE" if lock else sql


_EXISTS = select(resource.c.pk).where(*_BY_KEY, resource.c.deleted.is_(False))


def _versions() -> Any:
    """Version rows with their content (the resource's current content where the version row holds NULL)."""
    return select(
        resource_version.c.version_id,
        resource_version.c.last_updated,
        resource_version.c.deleted,
        _VERSION_CONTENT,
        resource_version.c.method,
    ).join(resource, resource.c.pk == resource_version.c.resource_pk)


_RESOURCE_COLS = ("pk", "res_type", "res_id", "version_id", "last_updated", "created", "deleted", "region")
_RESOURCE_COLS += ("content_hash", "content")
_INDEX_COLS = {
    t: tuple(col.name for col in t.columns)
    for t in (idx_token, idx_string, idx_number, idx_quantity, idx_date, idx_reference, idx_geo)
}
_FIELD_OF_TABLE = {
    idx_token: "token",
    idx_string: "string",
    idx_number: "number",
    idx_quantity: "quantity",
    idx_date: "date",
    idx_reference: "reference",
}
_VERSION_COLS = ("resource_pk", "version_id", "last_updated", "deleted", "method", "author", "content")
RegionOf = Callable[[str], str | None]  # commune INSEE code -> region code


@dataclass(frozen=True)
class WriteEvent:
    """One accepted write, given to observers inside the writing transaction (projections stay consistent)."""

    res_type: str
    res_id: str
    pk: int
    version_id: int
    at: datetime
    previous: str | None  # content of the previous current version (None on creation or after a deletion)
    current: str | None  # new content (None on deletion)
    author: str | None
    region: str | None


Observer = Callable[[Connection, list[WriteEvent]], None]
# an observer that only writes: its statements join the write's own batch (one round trip on PostgreSQL)
BatchedObserver = Callable[[Connection, Batch, list[WriteEvent]], None]


@dataclass(frozen=True)
class Stored:
    res_type: str
    res_id: str
    version_id: int
    last_updated: datetime
    deleted: bool
    content: str  # serialised JSON of this version
    method: str = ""
    pk: int | None = None  # the resource's primary key, when the write that returned this version knows it

    @property
    def etag(self) -> str:
        return f'W/"{self.version_id}"'

    def resource(self) -> dict[str, Any]:
        return orjson.loads(self.content)


Also = Callable[[Batch, Stored], None]  # a caller's statements joining a write's batch (`modify`)


@dataclass
class UpsertCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, other: UpsertCounts) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged


@dataclass
class _Pending:
    """A version ready to be written (`ResourceStore.prepare_new` computes first versions before the write
    transaction, `bulk_upsert(prepared=…)` writes them)."""

    pk: int | None
    res_type: str
    res_id: str
    version_id: int
    created: datetime
    region: str | None
    hash: str
    data: bytes  # the stored content, UTF-8 JSON as serialised (`content`: as text)
    deleted: bool
    previous: str | None = None
    rows: IndexRows = field(default_factory=IndexRows)
    changes: RowChanges | None = None  # on an update, the index rows to replace; None: all of them
    _text: str | None = field(default=None, repr=False, compare=False)

    @property
    def content(self) -> str:
        """The content as text, decoded once when asked: a SQLite bulk load writes `data` as it is (SQLite's
        driver encoded every text again, ~1.5 s of the national FINESS import's 240 k resources)."""
        if self._text is None:
            self._text = self.data.decode()
        return self._text


@dataclass
class _Row:
    """The current row of a resource as a write needs it (the columns of `_CURRENT_COLS`)."""

    pk: int | None
    version_id: int
    last_updated: datetime
    deleted: bool
    region: str | None
    content_hash: str
    content: str

    @classmethod
    def of(cls, row: Any) -> _Row:
        """From a driver row of `_CURRENT_COLS` (in that order)."""
        pk, version_id, last_updated, deleted, region, content_hash, content = row[:7]
        return cls(pk, version_id, sqlite_datetime_value(last_updated), bool(deleted), region, content_hash, content)


PreparedVersion = _Pending  # what `prepare_new` returns: opaque to callers


def _stored(p: _Pending, method: str) -> Stored:
    return Stored(p.res_type, p.res_id, p.version_id, p.created, False, p.content, method, p.pk)


def parse_etag(value: str | None) -> int | None:
    """`W/"3"`, `"3"` or `3` -> 3. None when absent; InvalidRequest when malformed."""
    if value is None or value == "":
        return None
    v = value.strip()
    if v.startswith("W/"):
        v = v[2:]
    v = v.strip('"')
    if not v.isdigit():
        raise InvalidRequest(f'If-Match must be a version ETag such as W/"3", got {value!r}')
    return int(v)


def check_version(res_type: str, res_id: str, version_id: int, if_match: int | None) -> None:
    """412 when the client's If-Match names another version than the current one."""
    if if_match is not None and if_match != version_id:
        raise PreconditionFailed(
            f"{res_type}/{res_id} is at version {version_id}, If-Match asked for {if_match}", expression=res_type
        )


class ResourceStore:
    def __init__(self, engine: Engine, registry: Registry | None = None, region_of: RegionOf | None = None):
        self.engine = engine
        self.registry = registry or default_registry()
        self.region_of = region_of
        self._sqlite = is_sqlite(engine)
        self.observers: dict[str, list[Observer]] = {}
        self.batched_observers: dict[str, list[BatchedObserver]] = {}
        self._bulk: bool | None = None  # inside a bulk_load block: whether its bulk mode is on

    def observe(self, res_type: str, observer: Observer) -> None:
        """Call `observer(conn, events)` in the transaction of every write of `res_type`, after the write's own
        statements (it may read the new versions and their index rows)."""
        self.observers.setdefault(res_type, []).append(observer)

    def observe_batched(self, res_type: str, observer: BatchedObserver) -> None:
        """Call `observer(conn, batch, events)` in the transaction of every write of `res_type`: it adds its
        statements to the write's batch (run with the write's own, before the other observers)."""
        if observer not in self.batched_observers.get(res_type, []):
            self.batched_observers.setdefault(res_type, []).append(observer)

    def _notify_batched(self, c: Connection, batch: Batch, events: list[WriteEvent]) -> None:
        by_type: dict[str, list[WriteEvent]] = {}
        for e in events:
            if e.res_type in self.batched_observers:
                by_type.setdefault(e.res_type, []).append(e)
        for rt, evs in by_type.items():
            for obs in self.batched_observers[rt]:
                obs(c, batch, evs)

    def _notify(self, c: Connection, events: list[WriteEvent]) -> None:
        by_type: dict[str, list[WriteEvent]] = {}
        for e in events:
            by_type.setdefault(e.res_type, []).append(e)
        for rt, evs in by_type.items():
            for obs in self.observers.get(rt, []):
                obs(c, evs)

    # -- transactions ------------------------------------------------------------------------------------------
    @contextmanager
    def write_tx(self) -> Iterator[Connection]:
        with self.engine.connect().execution_options(ror_write=True) as conn, conn.begin():
            yield conn

    @contextmanager
    def bulk_write_tx(self) -> Iterator[Connection]:
        """A write transaction of a bulk load's own batches (`bulk_upsert` of an importer). On SQLite in bulk
        mode the per-row foreign-key checks are off for it: the version and index rows the store writes carry
        the primary keys it assigned in the same transaction, and the check was a B-tree probe of `resource`
        per row — ~3 s of the national FINESS import's 3.8 M rows. (PostgreSQL drops its foreign keys for the
        whole load, `drop_bulk_structures`, and validates them at the end.) Otherwise `write_tx`."""
        if not (self._bulk and self._sqlite):
            with self.write_tx() as conn:
                if self._bulk:  # PostgreSQL: the commit does not wait for the disk; the load is durable at its
                    # end, whose transaction (`ensure_indexes`) commits synchronously, flushing the log up to it
                    conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
                yield conn
            return
        with self.engine.connect().execution_options(ror_write=True) as conn:
            raw = conn.connection.driver_connection
            raw.execute("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction: set before BEGIN
            raw.execute("PRAGMA synchronous=OFF")  # durable at the end of the load (`_sqlite_durable`)
            try:
                with conn.begin():
                    yield conn
            finally:
                raw.execute("PRAGMA foreign_keys=ON")
                raw.execute("PRAGMA synchronous=NORMAL")

    @contextmanager
    def bulk_load(self) -> Iterator[bool]:
        """Loading into an empty store (first import of a fresh database): the secondary indexes of the search
        index tables and of the version table (on PostgreSQL also their foreign keys to `resource`) are dropped
        during the load and built once at the end — one sort instead of millions of random B-tree insertions,
        one validating join instead of a trigger call per row. Yields whether that mode is on; on a store that
        already holds data nothing changes (readers keep their indexes). The indexes are rebuilt even when the
        load fails; a process killed meanwhile leaves them to `ensure_indexes` (run by every migration). A block
        opened inside another (an importer called by a larger load) joins it: the indexes are built once, when
        the outermost block ends."""
        if self._bulk is not None:
            yield self._bulk
            return
        with self.read_conn() as c:
            empty = c.execute(select(resource.c.pk).limit(1)).first() is None
        self._bulk = empty
        try:
            if not empty:
                yield False
                return
            with self.write_tx() as c:
                drop_bulk_structures(c)
            try:
                yield True
            finally:
                with self.write_tx() as c:
                    ensure_indexes(c)
                if self._sqlite:
                    self._sqlite_durable()
        finally:
            self._bulk = None

    def _sqlite_durable(self) -> None:
        """End of a SQLite bulk load: its batches were committed without waiting for the disk
        (`synchronous=OFF`, `bulk_write_tx`): a crash of the process loses nothing, a power cut during the load
        could. The write-ahead log is copied into the database file and the file synced to disk (a checkpoint
        with `synchronous=NORMAL` syncs), so that the load is durable when `bulk_load` returns."""
        with self.engine.connect() as conn:
            raw = conn.connection.driver_connection
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    @contextmanager
    def bulk_load_joined(self) -> Iterator[None]:
        """In another process of a bulk load that a first one opened (`bulk_load`, which found the store empty
        and rebuilds the indexes at its end): this store's batches are written as that load's
        (`bulk_write_tx`). The opener waits for this process before it ends its block."""
        if self._bulk is not None:
            raise RuntimeError("bulk_load_joined inside a bulk_load block")
        self._bulk = True
        try:
            yield
        finally:
            self._bulk = None

    @contextmanager
    def read_conn(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    # -- reads -------------------------------------------------------------------------------------------------
    def read(self, res_type: str, res_id: str, conn: Connection | None = None) -> Stored:
        with self._maybe(conn) as c:
            row = c.execute(_READ, {"t": res_type, "i": res_id}).first()
        if row is None:
            raise NotFound(f"{res_type}/{res_id} is not known", expression=res_type)
        if row.deleted:
            raise Gone(f"{res_type}/{res_id} was deleted (version {row.version_id})", expression=res_type)
        return Stored(res_type, res_id, row.version_id, row.last_updated, False, row.content)

    def pk_of(self, res_type: str, res_id: str) -> int:
        with self.read_conn() as c:
            pk = c.execute(
                select(resource.c.pk).where(resource.c.res_type == res_type, resource.c.res_id == res_id)
            ).scalar()
        if pk is None:
            raise NotFound(f"{res_type}/{res_id} is not known", expression=res_type)
        return int(pk)

    def exists(self, res_type: str, res_id: str, conn: Connection | None = None) -> bool:
        with self._maybe(conn) as c:
            return c.execute(_EXISTS, {"t": res_type, "i": res_id}).first() is not None

    def vread(self, res_type: str, res_id: str, version_id: int) -> Stored:
        with self.read_conn() as c:
            row = c.execute(
                _versions().where(
                    resource.c.res_type == res_type,
                    resource.c.res_id == res_id,
                    resource_version.c.version_id == version_id,
                )
            ).first()
        if row is None:
            raise NotFound(f"{res_type}/{res_id} has no version {version_id}", expression=res_type)
        if row.deleted:
            raise Gone(f"{res_type}/{res_id} version {version_id} is a deletion", expression=res_type)
        return Stored(res_type, res_id, row.version_id, row.last_updated, False, row.content, row.method)

    def history(
        self, res_type: str, res_id: str, *, count: int | None = None, since: datetime | None = None
    ) -> list[Stored]:
        """All versions of one resource, newest first (deletions included, flagged)."""
        with self.read_conn() as c:
            pk = c.execute(
                select(resource.c.pk).where(resource.c.res_type == res_type, resource.c.res_id == res_id)
            ).scalar()
            if pk is None:
                raise NotFound(f"{res_type}/{res_id} is not known", expression=res_type)
            q = _versions().where(resource_version.c.resource_pk == pk).order_by(resource_version.c.version_id.desc())
            if since is not None:
                q = q.where(resource_version.c.last_updated >= since)
            if count is not None:
                q = q.limit(count)
            rows = c.execute(q).all()
        return [Stored(res_type, res_id, r.version_id, r.last_updated, r.deleted, r.content, r.method) for r in rows]

    # -- writes ------------------------------------------------------------------------------------------------
    def create(
        self,
        res: dict[str, Any],
        *,
        author: str | None = None,
        conn: Connection | None = None,
        method: str = "POST",
    ) -> Stored:
        """Create with a new server-assigned id (any id in the body is ignored, as FHIR create says)."""
        res_type = _resource_type(res)
        new_id = str(uuid.uuid4())
        with self._tx(conn) as c:
            return self._write(c, res_type, new_id, res, if_match=None, author=author, method=method, must_exist=False)[
                0
            ]

    def update(
        self,
        res_type: str,
        res_id: str,
        res: dict[str, Any],
        *,
        if_match: int | None = None,
        author: str | None = None,
        conn: Connection | None = None,
        method: str = "PUT",
    ) -> tuple[Stored, bool]:
        """Update (or create with a client id). Returns (stored, created). 412 when If-Match does not match."""
        if _resource_type(res) != res_type:
            raise InvalidRequest(
                f"resourceType {res.get('resourceType')!r} does not match the URL ({res_type})",
                expression="resourceType",
            )
        if res.get("id") not in (None, res_id):
            raise InvalidRequest(f"id {res.get('id')!r} does not match the URL ({res_id})", expression=f"{res_type}.id")
        if not ID_RE.match(res_id):
            raise InvalidRequest(f"invalid resource id {res_id!r}", expression=f"{res_type}.id")
        with self._tx(conn) as c:
            return self._write(
                c, res_type, res_id, res, if_match=if_match, author=author, method=method, must_exist=False
            )

    def delete(
        self,
        res_type: str,
        res_id: str,
        *,
        if_match: int | None = None,
        author: str | None = None,
        conn: Connection | None = None,
    ) -> Stored | None:
        """Logical delete: a new version flagged deleted; reads answer 410, history keeps everything."""
        with self._tx(conn) as c:
            cur = self._current(c, res_type, res_id)
            if cur is None:
                raise NotFound(f"{res_type}/{res_id} is not known", expression=res_type)
            if cur.deleted:
                return None
            check_version(res_type, res_id, cur.version_id, if_match)
            now = utcnow()
            vid = cur.version_id + 1
            marker = dumps(
                {
                    "resourceType": res_type,
                    "id": res_id,
                    "meta": {"versionId": str(vid), "lastUpdated": fhir_instant(now)},
                }
            )
            batch = Batch(c)
            for table in _INDEX_COLS:
                _delete_rows(batch, table.name, [cur.pk], ())
            _supersede(batch, [(cur.content, cur.pk, cur.version_id)])
            batch.run()
            c.execute(
                update(resource).where(resource.c.pk == cur.pk).values(version_id=vid, last_updated=now, deleted=True)
            )
            c.execute(
                insert(resource_version).values(
                    resource_pk=cur.pk,
                    version_id=vid,
                    last_updated=now,
                    deleted=True,
                    method="DELETE",
                    author=author,
                    content=marker,
                )
            )
            events = [WriteEvent(res_type, res_id, cur.pk, vid, now, cur.content, None, author, cur.region)]
            batch = Batch(c)
            self._notify_batched(c, batch, events)
            batch.run()
            self._notify(c, events)
            return Stored(res_type, res_id, vid, now, True, marker, "DELETE")

    def bulk_upsert(
        self,
        resources: Sequence[dict[str, Any]] = (),
        *,
        author: str | None = None,
        method: str = "IMPORT",
        conn: Connection | None = None,
        prepared: Sequence[PreparedVersion] = (),
    ) -> UpsertCounts:
        """Idempotent batch write of resources that carry their id: unchanged content writes nothing, changed
        content becomes a new version. One transaction for the batch; callers choose the batch size.
        `prepared` (instead of `resources`): first versions from `prepare_new`, written as they are when the
        resource is new; an existing resource is compared and updated as a plain resource would be."""
        counts = UpsertCounts()
        if not resources and not prepared:
            return counts
        with self._tx(conn) as c:
            by_type: dict[str, list[dict[str, Any]]] = {}
            for r in resources:
                by_type.setdefault(_resource_type(r), []).append(r)
            for res_type, items in by_type.items():
                counts.add(self._bulk_type(c, res_type, items, author=author, method=method))
            by_type_prepared: dict[str, list[PreparedVersion]] = {}
            for p in prepared:
                by_type_prepared.setdefault(p.res_type, []).append(p)
            for res_type, versions in by_type_prepared.items():
                counts.add(self._bulk_type(c, res_type, [], author=author, method=method, prepared=versions))
        return counts

    def prepare_new(self, resources: Sequence[dict[str, Any]], now: datetime | None = None) -> list[PreparedVersion]:
        """The first version of each resource (stored content, content hash, index rows), computed without the
        database: an importer prepares its batch before its write transaction, so that the processes of a
        partitioned load hold the write lock only to write (`bulk_upsert(prepared=…)`). Region: the resource's
        tag, else its commune's (`region_of`)."""
        now = now or utcnow()
        out: list[PreparedVersion] = []
        for r in resources:
            res_type, rid = _resource_type(r), r.get("id")
            if not isinstance(rid, str) or not ID_RE.match(rid):
                raise InvalidRequest(f"invalid resource id {rid!r}", expression=f"{res_type}.id")
            created = self._kept_creation_date(None, r)
            out.append(self._prepare(r, res_type, rid, 1, now, created, None, None, content_hash(r)))
        return out

    # -- internals ---------------------------------------------------------------------------------------------
    @contextmanager
    def _maybe(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
        else:
            with self.read_conn() as c:
                yield c

    @contextmanager
    def _tx(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
        else:
            with self.write_tx() as c:
                yield c

    def _current(self, c: Connection, res_type: str, res_id: str) -> _Row | None:
        rows = fetch_all(c, _CURRENT_SQL if self._sqlite else _CURRENT_SQL + " FOR UPDATE", (res_type, res_id))
        return _Row.of(rows[0]) if rows else None

    @staticmethod
    def _kept_creation_date(previous: dict[str, Any] | None, res: dict[str, Any]) -> str | None:
        """The stored creation date (of the live current version `previous`) wins on update; on creation, a date
        the client brings (migration of existing data) is kept; otherwise the store sets it to now."""
        return creation_date(previous if previous is not None else res)

    def _region(self, res: dict[str, Any], previous: str | None) -> str | None:
        tag = region_tag(res)
        if tag:
            return tag
        code = commune_code(res)
        if code and self.region_of is not None:
            found = self.region_of(code)
            if found:
                return found
        return previous

    def _prepare(
        self,
        res: dict[str, Any],
        res_type: str,
        res_id: str,
        version_id: int,
        now: datetime,
        created: str | None,
        previous_region: str | None,
        pk: int | None,
        hash_: str,
        previous: str | None = None,
        previous_res: dict[str, Any] | None = None,
    ) -> _Pending:
        """`previous_res`: the current version, parsed, when it is live: only the index rows that differ between
        the two versions are then replaced (`search.extract.update_rows`, among the parameters whose elements
        changed)."""
        region = self._region(res, previous_region)
        final = finalise(res, res_id=res_id, version_id=version_id, last_updated=now, region=region, created=created)
        changes: RowChanges | None = None
        if previous_res is not None and pk is not None:
            changed = frozenset(k for k in final.keys() | previous_res.keys() if final.get(k) != previous_res.get(k))
            changes = update_rows(self.registry, previous_res, final, changed)
        return _Pending(
            pk=pk,
            res_type=res_type,
            res_id=res_id,
            version_id=version_id,
            created=now,
            region=region,
            hash=hash_,
            data=orjson.dumps(final),
            deleted=False,
            previous=previous,
            rows=extract(self.registry, final) if changes is None else changes.rows,
            changes=changes,
        )

    def _write(
        self,
        c: Connection,
        res_type: str,
        res_id: str,
        res: dict[str, Any],
        *,
        if_match: int | None,
        author: str | None,
        method: str,
        must_exist: bool,
    ) -> tuple[Stored, bool]:
        """Returns (stored, created)."""
        cur = self._current(c, res_type, res_id)
        if cur is None and (must_exist or if_match is not None):
            raise NotFound(f"{res_type}/{res_id} is not known", expression=res_type)
        if cur is not None:
            check_version(res_type, res_id, cur.version_id, if_match)
        return self._write_over(c, cur, res_type, res_id, res, author=author, method=method)

    def _write_over(
        self,
        c: Connection,
        cur: Any,
        res_type: str,
        res_id: str,
        res: dict[str, Any],
        *,
        author: str | None,
        method: str,
        also: Also | None = None,
    ) -> tuple[Stored, bool]:
        """Write `res` as the next version after the current row `cur` (None: a creation), already read (and
        locked on PostgreSQL) in this transaction. `also(batch, stored)`: the caller's statements for the new
        version, sent with the write's own (not called when nothing changed: no version is written)."""
        planned = self._next_version(cur, res_type, res_id, res, method)
        if isinstance(planned, Stored):
            return planned, False
        stored = _stored(planned, method)
        self._persist(
            c, [planned], author=author, method=method, also=None if also is None else lambda b: also(b, stored)
        )
        return stored, cur is None or bool(cur.deleted)

    def _next_version(
        self, cur: Any, res_type: str, res_id: str, res: dict[str, Any], method: str
    ) -> _Pending | Stored:
        """The version that `res` makes after the current row `cur`, ready to persist — or the current version
        itself when nothing changed (no new version: idempotent PUT)."""
        previous = None if cur is None or cur.deleted else orjson.loads(cur.content)
        h = content_hash(res)
        if previous is not None and cur.content_hash == h and region_tag(res) in (None, region_tag(previous)):
            return Stored(res_type, res_id, cur.version_id, cur.last_updated, False, cur.content, method)
        return self._prepare(
            res,
            res_type,
            res_id,
            (cur.version_id + 1) if cur is not None else 1,
            utcnow(),
            self._kept_creation_date(previous, res),
            cur.region if cur else None,
            cur.pk if cur else None,
            h,
            None if previous is None else cur.content,
            previous,
        )

    def modify_many(
        self,
        res_type: str,
        changes: Sequence[tuple[str, Callable[[Stored], dict[str, Any]]]],
        *,
        author: str | None = None,
        conn: Connection | None = None,
        method: str = "PATCH",
        prepare: Callable[[Connection, list[Stored]], None] | None = None,
    ) -> list[Stored | RorError]:
        """`modify` for many (id, change) pairs in one transaction, written together (one statement per table
        instead of one per resource): the bulk capacity feed. A change that raises a RorError (or an unknown or
        deleted id) is reported at its position and writes nothing; the others are not affected. Rows are
        locked in id order, so concurrent batches cannot deadlock. Several changes of one resource apply in
        order, each making its own version (written in successive rounds). `prepare` sees the current versions
        first, once (to read in one query what the changes will need)."""
        out: list[Stored | RorError | None] = [None] * len(changes)
        with self._tx(conn) as c:
            ids = sorted({rid for rid, _ in changes})
            rows: dict[str, Any] = {}
            for start in range(0, len(ids), 900):
                chunk = ids[start : start + 900]
                for row in fetch_all(c, _current_many_sql(len(chunk), not self._sqlite), (res_type, *chunk)):
                    rows[row[7]] = _Row.of(row)
            if prepare is not None:
                prepare(
                    c,
                    [
                        Stored(res_type, rid, r.version_id, r.last_updated, False, r.content, method)
                        for rid, r in rows.items()
                        if not r.deleted
                    ],
                )
            rounds: list[list[int]] = []
            seen: dict[str, int] = {}
            for i, (rid, _) in enumerate(changes):
                n = seen.get(rid, 0)
                seen[rid] = n + 1
                if n == len(rounds):
                    rounds.append([])
                rounds[n].append(i)
            for round_ in rounds:
                pending: list[tuple[int, _Pending]] = []
                for i in round_:
                    rid, change = changes[i]
                    cur = rows.get(rid)
                    try:
                        if cur is None:
                            raise NotFound(f"{res_type}/{rid} is not known", expression=res_type)
                        if cur.deleted:
                            raise Gone(f"{res_type}/{rid} was deleted (version {cur.version_id})", expression=res_type)
                        res = change(
                            Stored(res_type, rid, cur.version_id, cur.last_updated, False, cur.content, method)
                        )
                        if _resource_type(res) != res_type or res.get("id") not in (None, rid):
                            raise InvalidRequest(f"the change must keep {res_type}/{rid}", expression=f"{res_type}.id")
                        planned = self._next_version(cur, res_type, rid, res, method)
                    except RorError as exc:
                        out[i] = exc
                        continue
                    if isinstance(planned, Stored):
                        out[i] = planned
                    else:
                        pending.append((i, planned))
                self._persist(c, [p for _, p in pending], author=author, method=method)
                for i, p in pending:
                    out[i] = _stored(p, method)
                    rows[p.res_id] = _Row(p.pk, p.version_id, p.created, False, p.region, p.hash, p.content)
        return [o if o is not None else RorError("not processed") for o in out]

    def modify(
        self,
        res_type: str,
        res_id: str,
        change: Callable[[Stored], dict[str, Any]],
        *,
        if_match: int | None = None,
        author: str | None = None,
        conn: Connection | None = None,
        method: str = "PATCH",
        also: Also | None = None,
    ) -> Stored:
        """Read-modify-write of one live resource: the current version is read once, locked until the end of the
        transaction on PostgreSQL (SQLite writers hold the database lock), given to `change`, which returns the
        new content (or raises: nothing is written), then checked against If-Match and written. Concurrent
        writers are applied one after the other on the latest version, never lost. `also`: see `_write_over`."""
        with self._tx(conn) as c:
            cur = self._current(c, res_type, res_id)
            if cur is None:
                raise NotFound(f"{res_type}/{res_id} is not known", expression=res_type)
            if cur.deleted:
                raise Gone(f"{res_type}/{res_id} was deleted (version {cur.version_id})", expression=res_type)
            res = change(Stored(res_type, res_id, cur.version_id, cur.last_updated, False, cur.content, method))
            check_version(res_type, res_id, cur.version_id, if_match)
            if _resource_type(res) != res_type or res.get("id") not in (None, res_id):
                raise InvalidRequest(f"the change must keep {res_type}/{res_id}", expression=f"{res_type}.id")
            return self._write_over(c, cur, res_type, res_id, res, author=author, method=method, also=also)[0]

    def _bulk_type(
        self,
        c: Connection,
        res_type: str,
        items: list[dict[str, Any]],
        *,
        author: str | None,
        method: str,
        prepared: list[PreparedVersion] | None = None,
    ) -> UpsertCounts:
        """`items`, or `prepared` first versions (then `items` is empty): see `bulk_upsert`."""
        counts = UpsertCounts()
        ids = [r["id"] for r in items] if prepared is None else [p.res_id for p in prepared]
        for rid in ids:
            if not isinstance(rid, str) or not ID_RE.match(rid):
                raise InvalidRequest(f"invalid resource id {rid!r}", expression=f"{res_type}.id")
        existing: dict[str, Any] = {}
        for chunk_start in range(0, len(ids), 900):
            chunk = ids[chunk_start : chunk_start + 900]
            for row in c.execute(
                select(
                    resource.c.pk,
                    resource.c.res_id,
                    resource.c.version_id,
                    resource.c.deleted,
                    resource.c.region,
                    resource.c.content_hash,
                    resource.c.content,
                ).where(resource.c.res_type == res_type, resource.c.res_id.in_(chunk))
            ):
                existing[row.res_id] = row
        now = utcnow()
        pending: list[_Pending] = []
        seen: set[str] = set()
        for i, rid in enumerate(ids):
            if rid in seen:
                raise InvalidRequest(f"{res_type}/{rid} appears twice in one batch", expression=f"{res_type}.id")
            seen.add(rid)
            cur = existing.get(rid)
            spec = prepared[i] if prepared is not None else None
            h = content_hash(items[i]) if spec is None else spec.hash
            if cur is not None and not cur.deleted and cur.content_hash == h:
                counts.unchanged += 1
                continue
            if cur is None and spec is not None:  # new, as prepared (its lastUpdated: when it was prepared)
                pending.append(spec)
                counts.created += 1
                continue
            # the stored form of a prepared version is a valid input: meta and creation date are set again
            r = items[i] if spec is None else orjson.loads(spec.content)
            previous = orjson.loads(cur.content) if cur is not None and not cur.deleted else None
            vid = (cur.version_id + 1) if cur is not None else 1
            pending.append(
                self._prepare(
                    r,
                    res_type,
                    rid,
                    vid,
                    now,
                    self._kept_creation_date(previous, r),
                    cur.region if cur else None,
                    cur.pk if cur else None,
                    h,
                    cur.content if previous is not None else None,
                    previous,
                )
            )
            if cur is None:
                counts.created += 1
            else:
                counts.updated += 1
        self._persist(c, pending, author=author, method=method)
        return counts

    def _persist(
        self,
        c: Connection,
        pending: list[_Pending],
        *,
        author: str | None,
        method: str,
        also: Callable[[Batch], None] | None = None,
    ) -> None:
        if not pending:
            return
        new = [p for p in pending if p.pk is None]
        old = [p for p in pending if p.pk is not None]
        if new:
            for p, pk in zip(new, self._next_pks(c, len(new)), strict=True):
                p.pk = pk
        batch = Batch(c)
        batch.insert(
            resource,
            _RESOURCE_COLS,
            [
                (
                    p.pk,
                    p.res_type,
                    p.res_id,
                    p.version_id,
                    p.created,
                    p.created,
                    False,
                    p.region,
                    p.hash,
                    p.content if batch.pg else p.data,
                )
                for p in new
            ],
            utf8=("content",),
        )
        if old:
            self._clear_indexes(batch, old)
            _supersede(batch, [(p.previous, p.pk, p.version_id - 1) for p in old if p.previous])
            m = batch.mark
            batch.executemany(
                f"UPDATE resource SET version_id = {m}, last_updated = {m}, deleted = {m}, region = {m},"
                f" content_hash = {m}, content = {m} WHERE pk = {m}",
                [(p.version_id, p.created, False, p.region, p.hash, p.content, p.pk) for p in old],
            )
        batch.insert(
            resource_version,
            _VERSION_COLS,
            [(p.pk, p.version_id, p.created, False, method, author, None) for p in pending],
        )
        self._insert_indexes(batch, pending)
        observed = any(p.res_type in self.observers or p.res_type in self.batched_observers for p in pending)
        events = [
            WriteEvent(p.res_type, p.res_id, p.pk, p.version_id, p.created, p.previous, p.content, author, p.region)
            for p in pending
            if observed and p.pk is not None
        ]
        if events:
            self._notify_batched(c, batch, events)
        if also is not None:
            also(batch)
        batch.run()
        if events:
            self._notify(c, events)

    def _next_pks(self, c: Connection, n: int) -> list[int]:
        """Primary keys for n new resources, taken before the insert so that the rows go in one executemany
        (an INSERT … RETURNING per row cost a round trip each). SQLite: the writer holds the database lock
        (BEGIN IMMEDIATE), so max(pk) + i is safe; PostgreSQL: n values of the serial's sequence."""
        if self._sqlite:
            top = c.execute(select(func.coalesce(func.max(resource.c.pk), 0))).scalar_one()
            return list(range(top + 1, top + 1 + n))
        rows = c.execute(
            text("SELECT nextval(pg_get_serial_sequence('resource', 'pk')) FROM generate_series(1, :n)"), {"n": n}
        )
        return [int(r[0]) for r in rows]

    def _insert_indexes(self, batch: Batch, pending: Iterable[_Pending]) -> None:
        buckets: dict[Any, list[tuple[Any, ...]]] = {table: [] for table in _INDEX_COLS}
        for p in pending:
            pk = p.pk
            for table, rows in (
                (idx_token, p.rows.token),
                (idx_string, p.rows.string),
                (idx_number, p.rows.number),
                (idx_quantity, p.rows.quantity),
                (idx_date, p.rows.date),
                (idx_reference, p.rows.reference),
                (idx_geo, p.rows.geo),
            ):
                if rows:
                    buckets[table].extend([(pk, *row) for row in rows])
        for table, rows in buckets.items():
            batch.insert(table, _INDEX_COLS[table], rows)

    def _clear_indexes(self, batch: Batch, pending: list[_Pending]) -> None:
        """Delete the index rows that the new versions replace: all of them (one statement per table and chunk
        of 900 resources for all such versions), or on an update only the groups of rows that differ (one row
        of an executemany per group: `resource_pk, param` lead the table's index) — a group of one row on both
        sides is updated in place instead (`RowChanges.replaced`)."""
        whole = [p.pk for p in pending if p.pk is not None and p.changes is None]
        if whole:
            for table in _INDEX_COLS:
                _delete_rows(batch, table.name, whole, ())
        m = batch.mark
        stale: dict[str, list[tuple[Any, ...]]] = {}
        geo: list[int] = []
        for p in pending:
            if p.pk is None or p.changes is None:
                continue
            for name, keys in p.changes.stale.items():
                stale.setdefault(name, []).extend((p.pk, param, -1 if grp is None else grp) for param, grp in keys)
            if p.changes.geo:
                geo.append(p.pk)
        replaced: dict[str, list[tuple[Any, ...]]] = {}
        for p in pending:
            if p.pk is not None and p.changes is not None:
                for name, rows in p.changes.replaced.items():
                    replaced.setdefault(name, []).extend(
                        (*row[3:], p.pk, row[1], -1 if row[2] is None else row[2]) for row in rows
                    )
        where = f"resource_pk = {m} AND param = {m} AND coalesce(grp, -1) = {m}"
        for table, name in _FIELD_OF_TABLE.items():
            if stale.get(name):
                batch.executemany(f"DELETE FROM {table.name} WHERE {where}", stale[name])
            if replaced.get(name):
                values = ", ".join(f"{col} = {m}" for col in _INDEX_COLS[table][4:])
                batch.executemany(f"UPDATE {table.name} SET {values} WHERE {where}", replaced[name])
        if geo:
            _delete_rows(batch, idx_geo.name, geo, ())

    def reindex(
        self, res_type: str | None = None, *, size: int = 500, progress: Callable[[int], None] | None = None
    ) -> int:
        """Rebuild every index row of the live resources (of one type): after a change of the SearchParameter
        definitions, since an update rewrites only the rows of the elements it changes. Returns the count."""
        done = 0
        last = 0
        while True:
            with self.write_tx() as c:
                q = select(resource.c.pk, resource.c.content).where(resource.c.deleted.is_(False), resource.c.pk > last)
                if res_type is not None:
                    q = q.where(resource.c.res_type == res_type)
                rows = c.execute(q.order_by(resource.c.pk).limit(size)).all()
                if not rows:
                    return done
                pending = []
                for r in rows:
                    res = orjson.loads(r.content)
                    p = _Pending(r.pk, res["resourceType"], res["id"], 0, utcnow(), None, "", b"", False)
                    p.rows = extract(self.registry, res)
                    pending.append(p)
                batch = Batch(c)
                self._clear_indexes(batch, pending)
                self._insert_indexes(batch, pending)
                batch.run()
            last = rows[-1].pk
            done += len(rows)
            if progress is not None:
                progress(len(rows))


def _supersede(batch: Batch, versions: list[tuple[str, int | None, int]]) -> None:
    """(content, resource_pk, version_id): before a new version replaces the current one, keep the current
    content in its version row (NULL there until then, meaning "same as resource.content")."""
    m = batch.mark
    batch.executemany(
        f"UPDATE resource_version SET content = {m} WHERE resource_pk = {m} AND version_id = {m} AND content IS NULL",
        versions,
    )


def _delete_rows(batch: Batch, table: str, pks: list[int], params: tuple[str, ...]) -> None:
    """DELETE the index rows of these resources (of these parameters only, when given)."""
    where_param = ""
    if len(params) == 1:
        where_param = f" AND param = {batch.mark}"
    elif params:
        where_param = f" AND param IN ({batch.marks(len(params))})"
    for start in range(0, len(pks), 900):
        chunk = tuple(pks[start : start + 900])
        where = f"resource_pk = {batch.mark}" if len(chunk) == 1 else f"resource_pk IN ({batch.marks(len(chunk))})"
        batch.execute(f"DELETE FROM {table} WHERE {where}{where_param}", chunk + params)


def _resource_type(res: Any) -> str:
    if not isinstance(res, dict):
        raise InvalidRequest("the body must be a JSON object (a FHIR resource)", expression="Resource")
    rt = res.get("resourceType")
    if not isinstance(rt, str) or not rt:
        raise InvalidRequest("resourceType is missing", expression="resourceType")
    return rt


__all__ = ["Observer", "ResourceStore", "Stored", "UpsertCounts", "WriteEvent", "parse_etag"]
