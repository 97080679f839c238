"""The built-in demo seed: a handful of real establishments of one département (`seed_data.json`, written by hand
from public facts) with their units, so that a fresh clone without the reference data directory still shows a
directory, offers and beds.

This module turns the seed into resources shaped like the FINESS import's (EJ `ej-<FINESS EJ>`, EG `eg-<FINESS ET>`
with FINESS / idNatStruct identifiers and its category, EG address Location `eg-<FINESS ET>-adr`) and gives the
`Site` and the unit list of every establishment; `ror.directory.demo` writes them with synthetic availability."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ror.directory import ids
from ror.directory.units import UNIT_TYPES, Site, commune_cog, concept, resource_meta

SEED_FILE = Path(__file__).with_name("seed_data.json")


@dataclass(frozen=True)
class SeedEstablishment:
    finess: str
    finess_ej: str
    ej_name: str | None
    name: str
    category: str  # FINESS catégorie d'établissement (TRE_R66)
    line: str
    postal_code: str
    commune: str  # INSEE COG
    commune_name: str
    latitude: float
    longitude: float
    units: dict[str, int | None]  # unit type key -> installed beds / places (None: the unit counts none)


@dataclass(frozen=True)
class Seed:
    departement: str
    region: str
    installed_year: int
    establishments: tuple[SeedEstablishment, ...]

    @property
    def installed_date(self) -> datetime:
        return datetime(self.installed_year, 12, 31, tzinfo=UTC)


def load_seed(path: Path = SEED_FILE) -> Seed:
    """Read and check the seed: every unit key must be a known unit type."""
    data = orjson.loads(path.read_bytes())
    establishments = tuple(SeedEstablishment(**e) for e in data["establishments"])
    for est in establishments:
        unknown = set(est.units) - set(UNIT_TYPES)
        if unknown:
            raise ValueError(f"seed {path.name}: {est.finess} has unknown unit types {sorted(unknown)}")
    return Seed(str(data["departement"]), str(data["region"]), int(data["installed_year"]), establishments)


def address(est: SeedEstablishment) -> dict[str, Any]:
    return {
        "extension": [
            {"url": ids.EXT_FR_INSEE_CODE, "valueCoding": {"system": ids.TRE_R13, "code": est.commune}},
        ],
        "use": "work",
        "type": "physical",
        "line": [est.line],
        "postalCode": est.postal_code,
        "city": est.commune_name,
        "country": "FRA",
    }


def site(seed: Seed, est: SeedEstablishment) -> Site:
    return Site(
        finess=est.finess,
        region=seed.region,
        commune=est.commune,
        commune_name=est.commune_name,
        address=address(est),
        position={"longitude": est.longitude, "latitude": est.latitude},
    )


def _finess_identifier(value: str) -> dict[str, Any]:
    return {"type": concept(ids.TRE_G07, "1"), "system": ids.FINESS, "value": value}


def _id_nat_struct(finess: str) -> dict[str, Any]:
    return {"type": concept(ids.TRE_G07, "40"), "system": ids.ID_NAT_STRUCT, "value": f"1{finess}"}


def legal_entity(seed: Seed, est: SeedEstablishment) -> dict[str, Any]:
    """The EJ (entité juridique) of a seed establishment; its name only when the seed knows it."""
    res: dict[str, Any] = {
        "resourceType": "Organization",
        "id": ids.ej_id(est.finess_ej),
        "meta": resource_meta(ids.PROFILE_ORGANIZATION, seed.region),
        "identifier": [_id_nat_struct(est.finess_ej), _finess_identifier(est.finess_ej)],
        "active": True,
    }
    if est.ej_name:
        res["name"] = est.ej_name
    return res


def establishment(seed: Seed, est: SeedEstablishment) -> dict[str, Any]:
    """The EG (entité géographique) Organization, part of its EJ."""
    return {
        "resourceType": "Organization",
        "id": ids.eg_id(est.finess),
        "meta": resource_meta(ids.PROFILE_ORGANIZATION, seed.region),
        "identifier": [_id_nat_struct(est.finess), _finess_identifier(est.finess)],
        "active": True,
        "type": [concept(ids.TRE_R66, est.category)],
        "name": est.name,
        "address": [address(est)],
        "partOf": {"reference": f"Organization/{ids.ej_id(est.finess_ej)}"},
    }


def establishment_place(seed: Seed, est: SeedEstablishment) -> dict[str, Any]:
    """The EG's address Location (fonction du lieu 005 Adresse), as the FINESS import writes it."""
    return {
        "resourceType": "Location",
        "id": ids.eg_address_location_id(est.finess),
        "meta": resource_meta(ids.PROFILE_LOCATION, seed.region),
        "extension": [commune_cog(est.commune, est.commune_name)],
        "status": "active",
        "name": est.name,
        "type": [concept(ids.TRE_R343, "005")],
        "address": address(est),
        "position": {"longitude": est.longitude, "latitude": est.latitude},
        "managingOrganization": {"reference": f"Organization/{ids.eg_id(est.finess)}"},
    }


def organization_resources(seed: Seed) -> list[dict[str, Any]]:
    """EJ (once each), EG and EG address Location of every seed establishment."""
    out: list[dict[str, Any]] = []
    seen_ej: set[str] = set()
    for est in seed.establishments:
        if est.finess_ej not in seen_ej:
            seen_ej.add(est.finess_ej)
            out.append(legal_entity(seed, est))
        out += [establishment(seed, est), establishment_place(seed, est)]
    return out
