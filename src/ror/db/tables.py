"""All tables (SQLAlchemy Core). Alembic migrations in `migrations/versions` create them; a new table or column
is a new migration, never an edit of a released one."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# Integer primary keys: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
PK = BigInteger().with_variant(Integer(), "sqlite")

# --- resource store -------------------------------------------------------------------------------------------
resource = Table(
    "resource",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("res_type", String(40), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime, nullable=False),  # UTC, naive
    Column("created", DateTime, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("region", String(3)),
    Column("content_hash", String(32), nullable=False),
    Column("content", Text, nullable=False),  # the FHIR JSON of the current version (with meta)
    UniqueConstraint("res_type", "res_id", name="uq_resource_type_id"),
)
Index("ix_resource_type_updated", resource.c.res_type, resource.c.last_updated, resource.c.pk)
Index("ix_resource_updated", resource.c.last_updated, resource.c.pk)
# live resources of a type, index-only: counts, pk-ordered pages, _lastUpdated ranges (migration 0009)
Index("ix_resource_live", resource.c.res_type, resource.c.deleted, resource.c.pk)
Index("ix_resource_live_updated", resource.c.res_type, resource.c.deleted, resource.c.last_updated, resource.c.pk)

resource_version = Table(
    "resource_version",
    metadata,
    Column("resource_pk", PK, ForeignKey("resource.pk", ondelete="CASCADE"), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("method", String(10), nullable=False),  # POST/PUT/PATCH/DELETE/IMPORT
    Column("author", String(200)),
    # NULL for the current version, whose content is resource.content (migration 0008): written once
    Column("content", Text),
    PrimaryKeyConstraint("resource_pk", "version_id", name="pk_resource_version"),
)
Index("ix_resource_version_updated", resource_version.c.last_updated)


def _index_table(name: str, *cols: Column) -> Table:
    """A search-index table: one row per extracted value of one SearchParameter for one resource.
    `grp` numbers the repeated element the value came from (e.g. the capacity indicator), so that several criteria
    can be required to match the same element."""
    t = Table(
        name,
        metadata,
        Column("resource_pk", PK, ForeignKey("resource.pk", ondelete="CASCADE"), nullable=False),
        Column("res_type", String(40), nullable=False),
        Column("param", String(64), nullable=False),
        Column("grp", Integer),
        *cols,
    )
    # (resource_pk, param): the correlated EXISTS of a search probes one resource's rows (migration 0004)
    Index(f"ix_{name}_pk", t.c.resource_pk, t.c.param)
    return t


idx_token = _index_table(
    "idx_token",
    Column("system", String(255)),
    Column("code", String(255)),
    Column("text", String(500)),  # display / text, normalised, for :text
)
Index(
    "ix_idx_token_lookup",
    idx_token.c.res_type,
    idx_token.c.param,
    idx_token.c.code,
    idx_token.c.system,
    idx_token.c.resource_pk,
)

idx_string = _index_table(
    "idx_string",
    # normalised: lower case, no accents; byte order on both engines (PostgreSQL: C collation, migration 0015), so
    # that the lookup index also serves starts-with ranges
    Column("value", String(500).with_variant(String(500, collation="C"), "postgresql"), nullable=False),
    Column("exact", String(500), nullable=False),
)
Index("ix_idx_string_lookup", idx_string.c.res_type, idx_string.c.param, idx_string.c.value)

idx_number = _index_table("idx_number", Column("value", Float, nullable=False))
Index("ix_idx_number_lookup", idx_number.c.res_type, idx_number.c.param, idx_number.c.value)

idx_quantity = _index_table(
    "idx_quantity",
    Column("value", Float, nullable=False),
    Column("system", String(255)),
    Column("code", String(64)),
)
Index("ix_idx_quantity_lookup", idx_quantity.c.res_type, idx_quantity.c.param, idx_quantity.c.value)

idx_date = _index_table(
    "idx_date",
    Column("low", DateTime, nullable=False),
    Column("high", DateTime, nullable=False),
)
Index("ix_idx_date_lookup", idx_date.c.res_type, idx_date.c.param, idx_date.c.low)

idx_reference = _index_table(
    "idx_reference",
    Column("target_type", String(40)),
    Column("target_id", String(64)),
    Column("url", String(500)),
)
Index("ix_idx_reference_lookup", idx_reference.c.param, idx_reference.c.target_type, idx_reference.c.target_id)

idx_geo = Table(
    "idx_geo",
    metadata,
    Column("resource_pk", PK, ForeignKey("resource.pk", ondelete="CASCADE"), primary_key=True),
    Column("res_type", String(40), nullable=False),
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
)
Index("ix_idx_geo_latlon", idx_geo.c.lat, idx_geo.c.lon)

INDEX_TABLES = (idx_token, idx_string, idx_number, idx_quantity, idx_date, idx_reference, idx_geo)
# Indexes a bulk load into an empty store drops and rebuilds (ResourceStore.bulk_load): the search-index tables'
# (millions of rows whose keys come in random order: one sort at the end beats as many random B-tree insertions).
# None is unique, so dropping them cannot let bad data in. The resource and version tables keep theirs: their keys
# grow with the load (type, update date, pk), so maintaining them is cheap, where building each at the end read
# the whole resource table, contents included (SQLite: 4 × 600 MB, ~2 s of the national FINESS import).
BULK_DROPPABLE_INDEXES = tuple(
    ix for t in INDEX_TABLES for ix in sorted(t.indexes, key=lambda i: str(i.name)) if not ix.unique
)
# What `ensure_indexes` creates when missing: those, and the other secondary indexes of the store tables (which
# a bulk load of an earlier version dropped too, should one have been interrupted)
STORE_SECONDARY_INDEXES = tuple(
    ix
    for t in (*INDEX_TABLES, resource_version, resource)
    for ix in sorted(t.indexes, key=lambda i: str(i.name))
    if not ix.unique
)


# Tables whose `resource_pk` references `resource`: on PostgreSQL a bulk load drops these foreign keys (each
# inserted row fired a referential-integrity trigger: 11 s of server CPU on the national FINESS import, 3.7 M
# rows) and adds them back at the end, validated in one pass.
BULK_FOREIGN_KEY_TABLES = (*INDEX_TABLES, resource_version)


def _foreign_key_name(t: Table) -> str:
    return f"{t.name}_resource_pk_fkey"  # PostgreSQL's default name, the one the migrations created


def drop_bulk_structures(conn: Any) -> None:
    """Drop what a bulk load into an empty store rebuilds once at the end (`ensure_indexes`)."""
    pg = conn.dialect.name == "postgresql"
    if pg:
        for t in BULK_FOREIGN_KEY_TABLES:
            conn.exec_driver_sql(f"ALTER TABLE {t.name} DROP CONSTRAINT IF EXISTS {_foreign_key_name(t)}")
    for ix in BULK_DROPPABLE_INDEXES:
        ix.drop(conn, checkfirst=True)


def ensure_indexes(conn: Any) -> None:
    """Create any droppable index or foreign key that is missing (at the end of a bulk load, or after an
    interrupted one: every migration runs this)."""
    pg = conn.dialect.name == "postgresql"
    if pg:  # one sort per index, in memory rather than in temporary files (the default is 64 MB)
        conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
    for ix in STORE_SECONDARY_INDEXES:
        ix.create(conn, checkfirst=True)
    if not pg:
        return
    for t in BULK_FOREIGN_KEY_TABLES:
        found = conn.exec_driver_sql(
            "SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass(%(t)s) AND conname = %(n)s",
            {"t": t.name, "n": _foreign_key_name(t)},
        ).first()
        if found is None:
            conn.exec_driver_sql(
                f"ALTER TABLE {t.name} ADD CONSTRAINT {_foreign_key_name(t)} FOREIGN KEY (resource_pk) "
                "REFERENCES resource (pk) ON DELETE CASCADE"
            )


# --- terminology (NOS) ----------------------------------------------------------------------------------------
code_system = Table(
    "code_system",
    metadata,
    Column("url", String(255), primary_key=True),
    Column("name", String(128), nullable=False),  # e.g. TRE_R211-ActiviteOperationnelle
    Column("oid", String(64)),
    Column("version", String(32)),
    Column("title", String(255)),
    Column("source", String(255)),
)

concept = Table(
    "concept",
    metadata,
    Column("system_url", String(255), ForeignKey("code_system.url", ondelete="CASCADE"), nullable=False),
    Column("code", String(64), nullable=False),
    Column("display", Text, nullable=False),
    Column("definition", Text),
    Column("date_valid", String(32)),
    Column("date_fin", String(32)),
    Column("deprecated", Boolean, nullable=False, default=False),
    PrimaryKeyConstraint("system_url", "code", name="pk_concept"),
)

value_set = Table(
    "value_set",
    metadata,
    Column("url", String(255), primary_key=True),
    Column("name", String(128), nullable=False),  # e.g. JDV_J17-ActiviteOperationnelle-ROR
    Column("oid", String(64)),
    Column("version", String(32)),
    Column("title", String(255)),
    Column("source", String(255)),
)
Index("ix_value_set_name", value_set.c.name)

value_set_concept = Table(
    "value_set_concept",
    metadata,
    Column("vs_url", String(255), ForeignKey("value_set.url", ondelete="CASCADE"), nullable=False),
    Column("system_url", String(255), nullable=False),
    Column("code", String(64), nullable=False),
    Column("display", Text, nullable=False),
    Column("deprecated", Boolean, nullable=False, default=False),
    PrimaryKeyConstraint("vs_url", "system_url", "code", name="pk_value_set_concept"),
)

# --- geography (INSEE COG) ------------------------------------------------------------------------------------
geo_region = Table(
    "geo_region",
    metadata,
    Column("code", String(3), primary_key=True),
    Column("name", String(100), nullable=False),
)

geo_departement = Table(
    "geo_departement",
    metadata,
    Column("code", String(3), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("region", String(3)),
)

geo_commune = Table(
    "geo_commune",
    metadata,
    Column("code", String(5), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("type", String(32), nullable=False),
    Column("departement", String(3)),
    Column("region", String(3)),
    Column("population", Integer),
    Column("postal_codes", String(200)),  # space-separated
    Column("lat", Float),
    Column("lon", Float),
)
Index("ix_geo_commune_dep", geo_commune.c.departement)

# --- import bookkeeping ---------------------------------------------------------------------------------------
import_run = Table(
    "import_run",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),  # nos, geo, finess, sae, demo
    Column("source", String(500), nullable=False),
    Column("started", DateTime, nullable=False),
    Column("finished", DateTime),
    Column("created", Integer, nullable=False, default=0),
    Column("updated", Integer, nullable=False, default=0),
    Column("unchanged", Integer, nullable=False, default=0),
    Column("errors", Integer, nullable=False, default=0),
    Column("report", Text),
)

# --- access: API clients and audit (migration 0002) -----------------------------------------------------------
api_client = Table(
    "api_client",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("client_id", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("profile", Integer, nullable=False),
    Column("feeds", Text, nullable=False, default="[]"),  # JSON list of FINESS EG the client may write
    Column("secret_hash", String(200), nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("created", DateTime, nullable=False),
    Column("rotated", DateTime),
)

audit_event = Table(
    "audit_event",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("recorded", DateTime, nullable=False),
    Column("actor_type", String(16), nullable=False),  # client | person | system | anonymous
    Column("actor_id", String(200)),
    Column("action", String(32), nullable=False),  # create | update | patch | delete | token | denied | login
    Column("outcome", String(16), nullable=False),  # success | denied | error
    Column("res_type", String(40)),
    Column("res_id", String(64)),
    Column("version_id", Integer),
    Column("remote_addr", String(64)),
    Column("detail", Text),
)
Index("ix_audit_event_recorded", audit_event.c.recorded)
Index("ix_audit_event_resource", audit_event.c.res_type, audit_event.c.res_id)

# --- capacity projection and events (migration 0003) -----------------------------------------------------------
_KEY_COLUMNS = (
    "nature",
    "status",
    "temporality",
    "gender",
    "closing_type",
    "additional_bed_type",
    "crisis_type",
    "temporary_assignment",
)

capacity = Table(
    "capacity",
    metadata,
    Column("location_pk", PK, ForeignKey("resource.pk", ondelete="CASCADE"), nullable=False),
    Column("location_id", String(64), nullable=False),
    *[Column(name, String(4), nullable=False, default="") for name in _KEY_COLUMNS],  # '' = not given
    Column("nb", Integer, nullable=False),
    Column("source_type", String(4), nullable=False),
    Column("updated_at", DateTime, nullable=False),  # capacityUpdateDate (source system), UTC
    Column("received_at", DateTime, nullable=False),  # when we accepted it
    Column("version_id", Integer, nullable=False),  # Location version that carries it
    Column("region", String(3)),
    Column("departement", String(3)),
    PrimaryKeyConstraint("location_pk", *_KEY_COLUMNS, name="pk_capacity"),
)
Index("ix_capacity_status", capacity.c.status, capacity.c.temporality, capacity.c.nature)
Index("ix_capacity_territory", capacity.c.region, capacity.c.departement)

capacity_event = Table(
    "capacity_event",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("location_pk", PK, ForeignKey("resource.pk", ondelete="CASCADE"), nullable=False),
    Column("location_id", String(64), nullable=False),
    *[Column(name, String(4), nullable=False, default="") for name in _KEY_COLUMNS],
    Column("nb_before", Integer),  # None: the indicator did not exist
    Column("nb_after", Integer),  # None: the indicator was removed
    Column("source_type", String(4)),
    Column("updated_at", DateTime),
    Column("received_at", DateTime, nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("actor", String(200)),
)
Index("ix_capacity_event_location", capacity_event.c.location_pk, capacity_event.c.received_at)
Index("ix_capacity_event_received", capacity_event.c.received_at)

# --- people (web application accounts) and their sessions (migration 0005) ----------------------------------------
person = Table(
    "person",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("email", String(254), nullable=False, unique=True),  # stored lower case
    Column("name", String(200), nullable=False),
    Column("role", String(32), nullable=False),  # access/people.py ROLES
    Column("password_hash", String(200), nullable=False),  # argon2
    Column("active", Boolean, nullable=False, default=True),
    Column("failed_attempts", Integer, nullable=False, default=0),
    Column("locked_until", DateTime),  # UTC; logins refused until then
    Column("finess", Text, nullable=False, default="[]"),  # JSON list of FINESS EG the person may write
    Column("region", String(3)),  # INSEE region code of a regional administrator
    Column("created", DateTime, nullable=False),
    Column("last_login", DateTime),
)

web_session = Table(
    "web_session",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),  # sha256 of the cookie value
    Column("person_pk", PK, ForeignKey("person.pk", ondelete="CASCADE"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created", DateTime, nullable=False),
    Column("expires", DateTime, nullable=False),
    Column("remote_addr", String(64)),
)
Index("ix_web_session_expires", web_session.c.expires)

# --- crisis mode: Plan blanc / SSE, PMIE (migration 0006) --------------------------------------------------------
crisis = Table(
    "crisis",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("crisis_type", String(4), nullable=False),  # TRE_R336: 01 PMIE, 02 SSE (Plan blanc)
    Column("scope_kind", String(16), nullable=False),  # region | departement
    Column("scope_codes", String(200), nullable=False),  # space-separated INSEE codes
    Column("freshness_minutes", Integer, nullable=False),  # availability older than this is stale while active
    Column("reason", Text),
    Column("started_at", DateTime, nullable=False),
    Column("started_by", String(200), nullable=False),
    Column("ended_at", DateTime),
    Column("ended_by", String(200)),
)
Index("ix_crisis_active", crisis.c.ended_at, crisis.c.started_at)

# --- bulk export jobs, quality snapshots, offer workflow (migration 0007) ----------------------------------------
export_job = Table(
    "export_job",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),  # accepted | in-progress | completed | error | cancelled
    Column("request_url", Text, nullable=False),
    Column("params", Text, nullable=False),  # JSON: _type, _typeFilter, _since, ...
    Column("profile", Integer, nullable=False),  # access profile of the requester, applied to every line
    Column("caller", String(200)),
    Column("transaction_time", DateTime, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("progress", Integer, nullable=False, default=0),  # resources written so far
    Column("output", Text),  # JSON list of {type, url, count}
    Column("error", Text),
)
Index("ix_export_job_status", export_job.c.status, export_job.c.created_at)

quality_indicator = Table(
    "quality_indicator",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # rule | population
    Column("period", String(10), nullable=False),  # 2026-W48 (rules, weekly) | 2026-Q4 (population)
    Column("code", String(32), nullable=False),  # rule id, or population state
    Column("territory_kind", String(16), nullable=False),  # nation | region | departement
    Column("territory_code", String(8), nullable=False),
    Column("value", Integer, nullable=False),
    Column("computed_at", DateTime, nullable=False),
    UniqueConstraint("kind", "period", "code", "territory_kind", "territory_code", name="uq_quality_indicator"),
)

offer_change = Table(
    "offer_change",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("res_type", String(40), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("establishment", String(9)),  # FINESS EG whose rights govern the change
    Column("status", String(16), nullable=False),  # brouillon | soumis | valide | publie | rejete
    Column("content", Text, nullable=False),  # the proposed FHIR resource (JSON)
    Column("base_version", Integer),  # published version the draft started from (None for a creation)
    Column("created_by", String(200), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)
Index("ix_offer_change_status", offer_change.c.status, offer_change.c.updated_at)
Index("ix_offer_change_resource", offer_change.c.res_type, offer_change.c.res_id)

offer_change_transition = Table(
    "offer_change_transition",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("change_pk", PK, ForeignKey("offer_change.pk", ondelete="CASCADE"), nullable=False),
    Column("from_status", String(16)),
    Column("to_status", String(16), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("at", DateTime, nullable=False),
    Column("comment", Text),
)
Index("ix_offer_change_transition_change", offer_change_transition.c.change_pk)

# --- regional modules: tension (TES), emergency activity, FHIR subscriptions (migration 0010) ------------------
tension_declaration = Table(
    "tension_declaration",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("finess", String(9), nullable=False),  # FINESS EG that declares
    Column("organization_id", String(64), nullable=False),  # its Organization resource id
    Column("organization_name", String(300)),
    Column("region", String(3)),
    Column("departement", String(3)),
    Column("level", Integer, nullable=False),  # 1..4 (docs/tension.md)
    Column("previous_level", Integer, nullable=False, default=0),  # level in force just before (0 = normal)
    Column("reasons", Text, nullable=False, default="[]"),  # JSON list of reason codes
    Column("actions", Text, nullable=False, default="[]"),  # JSON list of {code, quantity?}
    Column("comment", Text),
    Column("started_at", DateTime, nullable=False),
    Column("ended_at", DateTime),  # None while in force
    Column("declared_by", String(200), nullable=False),
    Column("ended_by", String(200)),
    Column("recorded_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("version_id", Integer, nullable=False, default=1),
)
Index("ix_tension_establishment", tension_declaration.c.finess, tension_declaration.c.started_at)
Index("ix_tension_region", tension_declaration.c.region, tension_declaration.c.ended_at)

urgences_report = Table(
    "urgences_report",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("service_id", String(64), nullable=False),  # HealthcareService with care mode 33
    Column("location_id", String(64)),
    Column("organization_id", String(64)),
    Column("finess", String(9)),
    Column("region", String(3)),
    Column("departement", String(3)),
    Column("observed_at", DateTime, nullable=False),  # UTC
    Column("present", Integer, nullable=False),  # patients present in the department
    Column("waiting_bed", Integer, nullable=False),  # of whom waiting for a bed (brancards)
    Column("passages_24h", Integer, nullable=False),  # passages over the 24 h before observed_at
    Column("source", String(16), nullable=False),  # manual | feed | demo
    Column("recorded_at", DateTime, nullable=False),
    Column("recorded_by", String(200)),
)
Index("ix_urgences_service", urgences_report.c.service_id, urgences_report.c.observed_at)
Index("ix_urgences_territory", urgences_report.c.region, urgences_report.c.observed_at)

subscription = Table(
    "subscription",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),  # requested | active | error | off
    Column("topic", Text),  # canonical of the topic when the backport form was used
    Column("criteria", Text, nullable=False),  # Type?param=value&…
    Column("res_type", String(40), nullable=False),
    Column("endpoint", Text, nullable=False),
    Column("headers", Text, nullable=False, default="[]"),  # JSON list of "Name: value"
    Column("content", String(16), nullable=False),  # empty | id-only | full-resource
    Column("heartbeat_s", Integer),
    Column("heartbeat_due", DateTime),
    Column("end_at", DateTime),
    Column("reason", Text),
    Column("owner", String(200), nullable=False),  # kind:subject of the creating caller
    Column("profile", Integer, nullable=False),  # access profile applied to what is sent
    Column("events", BigInteger, nullable=False, default=0),  # events since subscription start
    Column("failures", Integer, nullable=False, default=0),  # consecutive failed deliveries
    Column("first_failure_at", DateTime),
    Column("retry_at", DateTime),  # no delivery before (exponential backoff)
    Column("last_error", Text),
    Column("last_delivered_at", DateTime),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)
Index("ix_subscription_type", subscription.c.res_type, subscription.c.status)

subscription_outbox = Table(
    "subscription_outbox",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("subscription_id", String(64), ForeignKey("subscription.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(24), nullable=False),  # handshake | heartbeat | event-notification
    Column("event_number", BigInteger, nullable=False),
    Column("focus_type", String(40)),
    Column("focus_id", String(64)),
    Column("focus_version", Integer),
    Column("focus_content", Text),  # resources not kept by the store (Flag, MeasureReport), as written
    Column("created_at", DateTime, nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivering | delivered | expired
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime, nullable=False),
    Column("claimed_by", String(80)),
    Column("lease_until", DateTime),
    Column("delivered_at", DateTime),
)
Index("ix_subscription_outbox_due", subscription_outbox.c.status, subscription_outbox.c.next_attempt_at)
Index("ix_subscription_outbox_sub", subscription_outbox.c.subscription_id, subscription_outbox.c.event_number)

subscription_error = Table(
    "subscription_error",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("subscription_id", String(64), ForeignKey("subscription.id", ondelete="CASCADE"), nullable=False),
    Column("outbox_pk", PK),
    Column("event_number", BigInteger),
    Column("at", DateTime, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("http_status", Integer),
    Column("error", Text, nullable=False),
)
Index("ix_subscription_error_sub", subscription_error.c.subscription_id, subscription_error.c.at)
