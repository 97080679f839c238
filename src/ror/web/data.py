"""Reading resources for the pages, filtered for the person's access profile (same rules as the FHIR API:
ror.access.policy + ror.access.context), a batch at a time."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy import Connection, and_, select

from ror.access.context import contexts
from ror.access.policy import Profile, filter_resource
from ror.db.tables import resource
from ror.directory import ids
from ror.services import Services

Res = dict[str, Any]
PHONE_SYSTEMS = {"phone": "Téléphone", "fax": "Télécopie", "email": "Courriel", "url": "Site", "sms": "SMS"}


def filtered(
    conn: Connection, profile: Profile, rows: Iterable[tuple[int, str, str, str]]
) -> dict[tuple[str, str], Res]:
    """(pk, type, id, content) rows -> {(type, id): content as the profile may see it}; hidden ones are left out."""
    rows = list(rows)
    if not rows:
        return {}
    ctx = contexts(conn, [(pk, rt, rid) for pk, rt, rid, _ in rows])
    out: dict[tuple[str, str], Res] = {}
    for pk, rt, rid, content in rows:
        seen = filter_resource(orjson.loads(content), profile, ctx[pk])
        if seen is not None:
            out[(rt, rid)] = seen
    return out


def read_many(conn: Connection, profile: Profile, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Res]:
    by_type: dict[str, list[str]] = {}
    for rt, rid in sorted(set(keys)):
        by_type.setdefault(rt, []).append(rid)
    rows: list[tuple[int, str, str, str]] = []
    for rt, res_ids in by_type.items():  # one type at a time: `res_type = ? AND res_id IN (…)` uses the unique
        for start in range(0, len(res_ids), 500):  # index (a row-value IN scans the table on SQLite)
            chunk = res_ids[start : start + 500]
            rows += [
                (r.pk, r.res_type, r.res_id, r.content)
                for r in conn.execute(
                    select(resource.c.pk, resource.c.res_type, resource.c.res_id, resource.c.content).where(
                        resource.c.res_type == rt, resource.c.res_id.in_(chunk), resource.c.deleted.is_(False)
                    )
                )
            ]
    return filtered(conn, profile, rows)


def read_one(services: Services, profile: Profile, res_type: str, res_id: str) -> Res | None:
    with services.store.read_conn() as conn:
        return read_many(conn, profile, [(res_type, res_id)]).get((res_type, res_id))


def ref_id(ref: Any, res_type: str | None = None) -> str | None:
    if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
        parts = ref["reference"].split("/")
        if len(parts) >= 2 and (res_type is None or parts[-2] == res_type):
            return parts[-1]
    return None


def finess_of(org: Res | None) -> str | None:
    for ident in (org or {}).get("identifier") or []:
        if ident.get("system") == ids.FINESS and ident.get("value"):
            return str(ident["value"])
    return None


def region_of(res: Res | None) -> str | None:
    for tag in ((res or {}).get("meta") or {}).get("tag") or []:
        if str(tag.get("system", "")).endswith("TRE-R30-RegionOM"):
            return tag.get("code")
    return None


def contacts(res: Res | None) -> list[tuple[str, str]]:
    """(label, value) of the telecoms a resource shows (already filtered by level)."""
    out = []
    for t in (res or {}).get("telecom") or []:
        if t.get("value"):
            out.append((PHONE_SYSTEMS.get(str(t.get("system")), str(t.get("system") or "Contact")), str(t["value"])))
    return out


def display(cc_list: Any, system: str) -> list[tuple[str, str]]:
    """(code, label) of the codings of `system` in a CodeableConcept or a list of them."""
    items = cc_list if isinstance(cc_list, list) else [cc_list] if cc_list else []
    out = []
    for cc in items:
        for c in (cc or {}).get("coding") or []:
            if c.get("system") == system and c.get("code"):
                out.append((str(c["code"]), str(c.get("display") or c["code"])))
    return out


def age_range(hs: Res) -> tuple[int | None, int | None]:
    for ext in hs.get("extension") or []:
        if ext.get("url") == ids.EXT_PATIENT_TYPE:
            for sub in ext.get("extension") or []:
                if sub.get("url") == "ageRange":
                    rng = sub.get("valueRange") or {}
                    low, high = (rng.get("low") or {}).get("value"), (rng.get("high") or {}).get("value")
                    return (int(low) if low is not None else None, int(high) if high is not None else None)
    return None, None


def offers_of_locations(conn: Connection, location_ids: list[str]) -> dict[str, list[tuple[int, str]]]:
    """Location id -> [(pk, id)] of the HealthcareServices delivered there."""
    from ror.db.tables import idx_reference as r

    out: dict[str, list[tuple[int, str]]] = {}
    if not location_ids:
        return out
    rows = conn.execute(
        select(r.c.target_id, resource.c.pk, resource.c.res_id)
        .select_from(r.join(resource, resource.c.pk == r.c.resource_pk))
        .where(
            and_(
                r.c.res_type == "HealthcareService",
                r.c.param == "location",
                r.c.target_type == "Location",
                r.c.target_id.in_(location_ids),
                resource.c.deleted.is_(False),
            )
        )
    )
    for target, pk, rid in rows:
        out.setdefault(target, []).append((pk, rid))
    return out
