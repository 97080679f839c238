"""What the store maintains in every resource: id, meta (versionId, lastUpdated, region tag), creation date."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import orjson

from ror.search.normalise import fhir_instant

IG_SD = "https://interop.esante.gouv.fr/ig/fhir/ror/StructureDefinition/"
CREATION_DATE_URL = IG_SD + "ror-meta-creation-date"
REGION_SYSTEM = "https://mos.esante.gouv.fr/NOS/TRE_R30-RegionOM/FHIR/TRE-R30-RegionOM"
COMMUNE_COG_URL = IG_SD + "ror-commune-cog"
FR_CORE_INSEE_CODE_URL = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code"
STORE_MANAGED_RESOURCE_TYPES = {
    "Organization",
    "HealthcareService",
    "Location",
    "Practitioner",
    "PractitionerRole",
}


def dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def content_hash(resource: dict[str, Any]) -> str:
    """Hash of the business content: ignores id, meta and the store-maintained creation date, so that an
    unchanged re-import or re-submission produces no new version."""
    body = {k: v for k, v in resource.items() if k not in ("id", "meta")}
    if "extension" in body:
        ext = [e for e in body["extension"] if e.get("url") != CREATION_DATE_URL]
        if ext:
            body["extension"] = ext
        else:
            del body["extension"]
    return hashlib.md5(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def region_tag(resource: dict[str, Any]) -> str | None:
    for tag in (resource.get("meta") or {}).get("tag") or []:
        if tag.get("system") == REGION_SYSTEM and tag.get("code"):
            return str(tag["code"])
    return None


def commune_code(resource: dict[str, Any]) -> str | None:
    """The INSEE commune code a resource declares (Location ror-commune-cog, else address INSEE code)."""
    for ext in resource.get("extension") or []:
        if ext.get("url") == COMMUNE_COG_URL:
            for c in (ext.get("valueCodeableConcept") or {}).get("coding") or []:
                if c.get("code"):
                    return str(c["code"])
    addresses = resource.get("address")
    if isinstance(addresses, dict):
        addresses = [addresses]
    for addr in addresses or []:
        for ext in addr.get("extension") or []:
            if ext.get("url") == FR_CORE_INSEE_CODE_URL:
                v = ext.get("valueCoding") or {}
                if v.get("code"):
                    return str(v["code"])
    return None


def creation_date(resource: dict[str, Any]) -> str | None:
    for ext in resource.get("extension") or []:
        if ext.get("url") == CREATION_DATE_URL:
            return ext.get("valueDateTime")
    return None


def finalise(
    resource: dict[str, Any],
    *,
    res_id: str,
    version_id: int,
    last_updated: datetime,
    region: str | None,
    created: str | None,
) -> dict[str, Any]:
    """Return the resource as stored: resourceType, id and meta first; region tag and creation date set."""
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = str(version_id)
    meta["lastUpdated"] = fhir_instant(last_updated)
    tags = [t for t in meta.get("tag") or [] if t.get("system") != REGION_SYSTEM]
    if region:
        tags.insert(0, {"system": REGION_SYSTEM, "code": region})
    if tags:
        meta["tag"] = tags
    else:
        meta.pop("tag", None)
    out: dict[str, Any] = {"resourceType": resource["resourceType"], "id": res_id, "meta": meta}
    for k, v in resource.items():
        if k not in ("resourceType", "id", "meta"):
            out[k] = v
    if resource["resourceType"] in STORE_MANAGED_RESOURCE_TYPES:
        value = {"url": CREATION_DATE_URL, "valueDateTime": created or fhir_instant(last_updated)}
        ext = list(out.get("extension") or [])
        positions = [i for i, e in enumerate(ext) if e.get("url") == CREATION_DATE_URL]
        if positions:  # keep the element where the client put it
            ext[positions[0]] = value
            ext = [e for i, e in enumerate(ext) if i == positions[0] or e.get("url") != CREATION_DATE_URL]
        else:
            ext.insert(0, value)
        out["extension"] = ext
    return out
