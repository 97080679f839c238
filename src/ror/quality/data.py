"""The facts the rules read, loaded once per run and only when a rule asks for them (each property is one or two
queries over the whole scope, never one per object).

Kinds of Organization (our data has no OI tree yet): an *EG* carries a FINESS identifier and either a TRE_R66
category or a `partOf`; an *EJ* carries a FINESS or SIREN identifier, no category and no `partOf`."""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, func, select

from ror.db.tables import capacity, geo_departement, resource, value_set, value_set_concept
from ror.directory import ids
from ror.directory.finess import departement_of_finess
from ror.directory.scope import Scope
from ror.search.extract import departement_of_commune
from ror.search.normalise import utcnow
from ror.store.meta import commune_code

EXT_CLOSING_TYPE = ids.SD + "ror-organization-closing-type"
EXT_HS_CONTACT = ids.SD + "ror-healthcareservice-contact"
TRE_R240 = ids.nos("TRE_R240-TemporaliteAccueil")
TRE_R210 = ids.nos("TRE_R210-ActeSpecifique")
FINESS_FLAT = "finess/finess_et_20210108_flat_from_fhir.csv.gz"
SAE_YEAR = 2023


@dataclass
class Establishment:
    """A ROR EG (entité géographique)."""

    id: str
    finess: str | None
    name: str
    category: str | None  # TRE_R66
    ej_id: str | None  # the EJ it is part of
    region: str | None
    departement: str | None
    open: bool
    closing_type: str | None
    id_nat: list[str] = field(default_factory=list)


@dataclass
class LegalEntity:
    id: str
    finess: str | None
    region: str | None
    open: bool
    id_nat: list[str] = field(default_factory=list)


@dataclass
class Offer:
    """A HealthcareService (offre opérationnelle)."""

    id: str
    name: str
    org_id: str | None
    region: str | None
    departement: str | None
    open: bool
    activities: set[str]  # TRE_R211
    care_modes: set[str]  # TRE_R213
    fields: set[str]  # TRE_R227 (type)
    categories: set[str]  # TRE_R244 (category)
    receptions: set[str]  # TRE_R240 (characteristic)
    specific_acts: set[str]  # TRE_R210
    sensitive: bool | None  # None: the extension is missing
    ages: tuple[Any, Any] | None
    locations: list[str]
    last_updated: datetime
    contact_ok: bool  # ≥1 offer contact whose telecom has channel, value and confidentiality level


@dataclass(frozen=True)
class FinessRow:
    finess: str
    finess_ej: str
    name: str
    category: str
    region: str | None
    departement: str


@dataclass(frozen=True)
class Place:
    id: str
    has_address: bool


def _codes(concepts: Any, system: str) -> set[str]:
    out = set()
    for cc in concepts or []:
        for c in (cc or {}).get("coding") or []:
            if c.get("system") == system and c.get("code"):
                out.add(str(c["code"]))
    return out


def _ref(ref: Any, res_type: str) -> str | None:
    if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
        parts = ref["reference"].split("/")
        if len(parts) >= 2 and parts[-2] == res_type:
            return parts[-1]
    return None


def _identifiers(res: dict[str, Any], system: str) -> list[str]:
    return [str(i["value"]) for i in res.get("identifier") or [] if i.get("system") == system and i.get("value")]


def _org_open(res: dict[str, Any], today: date) -> tuple[bool, str | None]:
    closing = None
    for ext in res.get("extension") or []:
        if ext.get("url") == EXT_CLOSING_TYPE:
            cc = ext.get("valueCodeableConcept") or {}
            closing = next((c.get("code") for c in cc.get("coding") or []), None) or ext.get("valueCode")
        if ext.get("url") == ids.EXT_ORG_PERIOD:
            end = (ext.get("valuePeriod") or {}).get("end")
            if end and str(end)[:10] <= today.isoformat():
                return False, closing
    return res.get("active", True) is not False and closing is None, closing


def _offer_open(res: dict[str, Any], today: date) -> bool:
    if res.get("active") is False:
        return False
    for na in res.get("notAvailable") or []:
        during = na.get("during") or {}
        closing = na.get("id") == "closingReopeningDate" and during.get("start") and not during.get("end")
        if closing and str(during["start"])[:10] <= today.isoformat():
            return False
    return True


def _contact_ok(res: dict[str, Any]) -> bool:
    """≥1 offer contact (ror-healthcareservice-contact) with a telecom giving its address, channel and
    confidentiality level."""
    for ext in res.get("extension") or []:
        if ext.get("url") != EXT_HS_CONTACT:
            continue
        for sub in ext.get("extension") or []:
            if sub.get("url") != "ror-healthcareservice-contact-telecom":
                continue
            urls = " ".join(str(s.get("url", "")).lower() for s in sub.get("extension") or [])
            if all(part in urls for part in ("telecomaddress", "channel", "confidentiality")):
                return True
    return False


def _sensitive(res: dict[str, Any]) -> bool | None:
    for ext in res.get("extension") or []:
        if ext.get("url") == ids.EXT_SENSITIVE_UNIT:
            return bool(ext.get("valueBoolean"))
    return None


def _ages(res: dict[str, Any]) -> tuple[Any, Any] | None:
    for ext in res.get("extension") or []:
        if ext.get("url") == ids.EXT_PATIENT_TYPE:
            for sub in ext.get("extension") or []:
                if sub.get("url") == "ageRange":
                    rng = sub.get("valueRange") or {}
                    return (rng.get("low") or {}).get("value"), (rng.get("high") or {}).get("value")
    return None


# -- one object at a time (QualityData reads the scope with these; a page reads one establishment) ----------------
def establishment_of(rid: str, region: str | None, res: dict[str, Any], today: date) -> Establishment | None:
    """The EG an Organization describes (a FINESS identifier and a TRE_R66 category or a `partOf`), else None."""
    finess = next(iter(_identifiers(res, ids.FINESS)), None)
    categories = _codes(res.get("type"), ids.TRE_R66)
    parent = _ref(res.get("partOf"), "Organization")
    if not finess or not (categories or parent):
        return None
    is_open, closing = _org_open(res, today)
    commune = commune_code(res)
    dep = departement_of_commune(commune) if commune else departement_of_finess(finess)
    return Establishment(
        rid,
        finess,
        res.get("name") or rid,
        min(categories) if categories else None,
        parent,
        region,
        dep,
        is_open,
        closing,
        _identifiers(res, ids.ID_NAT_STRUCT),
    )


def offer_of(
    rid: str, region: str | None, dep: str | None, updated: datetime, res: dict[str, Any], today: date
) -> Offer:
    return Offer(
        rid,
        res.get("name") or "",
        _ref(res.get("providedBy"), "Organization"),
        region,
        dep,
        _offer_open(res, today),
        _codes(res.get("specialty"), ids.TRE_R211),
        _codes(res.get("characteristic"), ids.TRE_R213),
        _codes(res.get("type"), ids.TRE_R227),
        _codes(res.get("category"), ids.TRE_R244),
        _codes(res.get("characteristic"), TRE_R240),
        _codes(res.get("characteristic"), TRE_R210),
        _sensitive(res),
        _ages(res),
        [x for x in (_ref(loc, "Location") for loc in res.get("location") or []) if x],
        updated,
        _contact_ok(res),
    )


def place_of(rid: str, res: dict[str, Any]) -> Place:
    addr = res.get("address") or {}
    return Place(rid, bool(addr.get("line") and addr.get("city") and addr.get("postalCode")))


VALUE_SETS = {
    "J17": "JDV_J17-ActiviteOperationnelle-ROR",
    "J19": "JDV_J19-ModePriseEnCharge-ROR",
    "J20": "JDV_J20-ChampActivite-ROR",
    "J238": "JDV_J238-TypeOffre-ROR",
}


def load_value_sets(conn: Connection) -> dict[str, set[str]]:
    """JDV short name (J17, J19, J20, J238) -> current codes (one query); empty when the NOS is not loaded."""
    out: dict[str, set[str]] = {k: set() for k in VALUE_SETS}
    by_name = {v: k for k, v in VALUE_SETS.items()}
    q = (
        select(value_set.c.name, value_set_concept.c.code)
        .join(value_set_concept, value_set_concept.c.vs_url == value_set.c.url)
        .where(value_set.c.name.in_(list(VALUE_SETS.values())), value_set_concept.c.deprecated.is_(False))
    )
    for name, code in conn.execute(q):
        out[by_name[name]].add(code)
    return out


class QualityData:
    """Facts of one scope. `reference` = the reference-data folder (FINESS extract, SAE), None when absent."""

    def __init__(
        self, engine: Engine, scope: Scope, reference: Path | None = None, now: datetime | None = None
    ) -> None:
        self.engine, self.scope, self.reference = engine, scope, reference
        self.now = now or utcnow()  # naive UTC, as stored
        self.today: date = self.now.date()

    # -- helpers -----------------------------------------------------------------------------------------------
    def _rows(self, conn: Connection, res_type: str) -> Iterator[tuple[str, str | None, datetime, dict[str, Any]]]:
        q = select(resource.c.res_id, resource.c.region, resource.c.last_updated, resource.c.content).where(
            resource.c.res_type == res_type, resource.c.deleted.is_(False)
        )
        if self.scope.kind == "region":
            q = q.where(resource.c.region == self.scope.code)
        for rid, region, updated, content in conn.execute(q.execution_options(yield_per=2000)):
            yield rid, region, updated, orjson.loads(content)

    def in_scope(self, region: str | None, departement: str | None) -> bool:
        return self.scope.accepts(region, departement)

    @cached_property
    def departement_regions(self) -> dict[str, str]:
        """Département -> région (INSEE COG); without the geography, the régions of the ROR establishments."""
        with self.engine.connect() as c:
            out = {d: r for d, r in c.execute(select(geo_departement.c.code, geo_departement.c.region)) if r}
        if not out:
            out = {e.departement: e.region for e in self.establishments.values() if e.departement and e.region}
        return out

    # -- organizations -----------------------------------------------------------------------------------------
    @cached_property
    def _organizations(self) -> tuple[dict[str, Establishment], dict[str, LegalEntity]]:
        egs: dict[str, Establishment] = {}
        ejs: dict[str, LegalEntity] = {}
        with self.engine.connect() as conn:
            for rid, region, _updated, res in self._rows(conn, "Organization"):
                eg = establishment_of(rid, region, res, self.today)
                if eg is not None:
                    if self.in_scope(region, eg.departement):
                        egs[rid] = eg
                elif not _ref(res.get("partOf"), "Organization") and (
                    _identifiers(res, ids.FINESS) or _identifiers(res, ids.SIRENE)
                ):
                    finess = next(iter(_identifiers(res, ids.FINESS)), None)
                    is_open, _closing = _org_open(res, self.today)
                    ejs[rid] = LegalEntity(rid, finess, region, is_open, _identifiers(res, ids.ID_NAT_STRUCT))
        return egs, ejs

    @property
    def establishments(self) -> dict[str, Establishment]:
        return self._organizations[0]

    @property
    def legal_entities(self) -> dict[str, LegalEntity]:
        return self._organizations[1]

    @cached_property
    def all_ej_finess(self) -> dict[str, str | None]:
        """id -> FINESS of every EJ whatever the scope (an EG's EJ may be registered elsewhere)."""
        out: dict[str, str | None] = {}
        q = select(resource.c.res_id, resource.c.content).where(
            resource.c.res_type == "Organization", resource.c.res_id.like("ej-%")
        )
        with self.engine.connect() as conn:
            for rid, content in conn.execute(q):
                out[rid] = next(iter(_identifiers(orjson.loads(content), ids.FINESS)), None)
        for e in self.legal_entities.values():
            out[e.id] = e.finess
        return out

    # -- offers and places -------------------------------------------------------------------------------------
    @cached_property
    def offers(self) -> list[Offer]:
        egs = self.establishments
        out = []
        with self.engine.connect() as conn:
            for rid, region, updated, res in self._rows(conn, "HealthcareService"):
                org = _ref(res.get("providedBy"), "Organization")
                eg = egs.get(org or "")
                dep = eg.departement if eg else None
                if self.scope.kind == "departement" and dep != self.scope.code:
                    continue
                out.append(offer_of(rid, region, dep, updated, res, self.today))
        return out

    @cached_property
    def places(self) -> dict[str, Place]:
        wanted = sorted({loc for o in self.offers for loc in o.locations})
        out: dict[str, Place] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), 900):
                q = select(resource.c.res_id, resource.c.content).where(
                    resource.c.res_type == "Location",
                    resource.c.res_id.in_(wanted[start : start + 900]),
                    resource.c.deleted.is_(False),
                )
                for rid, content in conn.execute(q):
                    out[rid] = place_of(rid, orjson.loads(content))
        return out

    # -- capacity projection -----------------------------------------------------------------------------------
    @cached_property
    def capacity_by_location(self) -> dict[str, dict[str, Any]]:
        """location id -> {installed, available, last_available, region, departement} (current, no assignment)."""
        c = capacity
        q = (
            select(
                c.c.location_id,
                c.c.status,
                func.sum(c.c.nb),
                func.max(c.c.updated_at),
                func.min(c.c.region),
                func.min(c.c.departement),
            )
            .where(c.c.temporality == "01", c.c.status.in_(("01", "02")), c.c.temporary_assignment.in_(("", "01")))
            .group_by(c.c.location_id, c.c.status)
        )
        if self.scope.kind == "region":
            q = q.where(c.c.region == self.scope.code)
        elif self.scope.kind == "departement":
            q = q.where(c.c.departement == self.scope.code)
        out: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for loc, status, nb, last, reg, dep in conn.execute(q):
                d = out.setdefault(loc, {"installed": None, "available": None, "last_available": None})
                d["region"], d["departement"] = reg, dep
                if status == "01":
                    d["installed"] = int(nb)
                else:
                    d["available"], d["last_available"] = int(nb), last
        return out

    # -- terminology -------------------------------------------------------------------------------------------
    @cached_property
    def value_sets(self) -> dict[str, set[str]]:
        """JDV short name (J17, J19, J20, J238) -> current codes; empty when the NOS is not loaded."""
        with self.engine.connect() as conn:
            return load_value_sets(conn)

    # -- reference files ---------------------------------------------------------------------------------------
    @cached_property
    def finess(self) -> dict[str, FinessRow] | None:
        """FINESS ET of the scope from the extract in the reference data; None when the file is absent."""
        path = self.reference / FINESS_FLAT if self.reference else None
        if path is None or not path.is_file():
            return None
        regions = self.departement_regions
        out: dict[str, FinessRow] = {}
        with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh, delimiter=";"):
                et = row["nofinesset"]
                dep = departement_of_finess(et)
                region = regions.get(dep)
                if self.in_scope(region, dep):
                    out[et] = FinessRow(et, row["nofinessej"], row["rs"], row["categetab"], region, dep)
        return out

    @cached_property
    def sae_beds(self) -> dict[str, dict[str, int]] | None:
        """FINESS -> installed beds per SAE unit type (rea-adu, rea-ped, neonat-rea…); None without the SAE."""
        from ror.directory.sae import SaeReport, read_beds, sae_directory

        if self.reference is None or not (self.reference / "capacity").is_dir():
            return None
        try:
            folder = sae_directory(self.reference / "capacity", SAE_YEAR)
        except FileNotFoundError:
            return None
        wanted = {e.finess for e in self.establishments.values() if e.finess}
        return read_beds(folder, SAE_YEAR, wanted, SaeReport(SAE_YEAR, str(self.scope)))
