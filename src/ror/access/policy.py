"""What each access profile may see — one declarative table (docs/access.md), applied to every FHIR response.

Profiles (ANS "Politique d'accès", docs/ror-fhir-api.md §4):
  0 open data · 1 everything · 2 everything except "très restreint" (level 3) and supplementary capacity ·
  3 médico-social offer like 2, sanitary/ville offer like 0 · 4 everything except contacts and personal data ·
  5 like 2 but installed capacity only.
Confidentiality levels (TRE_R283): 1 public · 2 professionals · 3 regulation and crisis management."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from ror.directory import ids

EXT_CONTACT_LEVEL = ids.SD + "ror-contact-confidentiality-level"
EXT_HS_CONTACT = ids.SD + "ror-healthcareservice-contact"
EXT_HS_CONTACT_LEVEL = "ror-confidentiality-level"
EXT_HS_CONTACT_TELECOM = "ror-healthcareservice-contact-telecom"
STATUS_SUPPLEMENTARY = "06"
STATUS_INSTALLED = "01"
CHAMP_MEDICO_SOCIAL = "04"


class Profile(IntEnum):
    OPEN_DATA = 0
    ALL = 1
    PROFESSIONAL = 2
    MEDICO_SOCIAL = 3
    NO_CONTACTS = 4
    INSTALLED_ONLY = 5


@dataclass(frozen=True)
class Rule:
    """The rights of one profile. `sanitary` applies to profile 3's non médico-social offer."""

    max_level: int  # highest confidentiality level of telecoms/contacts shown (0 = none)
    contacts: bool  # Organization.contact and offer contacts at all
    capacity: frozenset[str] | None  # capacity statuses shown; None = all
    sensitive_units: bool  # sensitive offers, their Locations and PractitionerRoles
    personal_data: bool  # Practitioner names/telecoms, PractitionerRole telecoms


NO_CAPACITY: frozenset[str] = frozenset()
ALL_BUT_SUPPLEMENTARY = frozenset({"01", "02", "03", "04", "05", "07", "08", "09"})

RULES: dict[Profile, Rule] = {
    Profile.OPEN_DATA: Rule(1, True, NO_CAPACITY, False, True),
    Profile.ALL: Rule(3, True, None, True, True),
    Profile.PROFESSIONAL: Rule(2, True, ALL_BUT_SUPPLEMENTARY, False, True),
    Profile.MEDICO_SOCIAL: Rule(2, True, ALL_BUT_SUPPLEMENTARY, False, True),  # médico-social offer
    Profile.NO_CONTACTS: Rule(1, False, None, True, False),
    Profile.INSTALLED_ONLY: Rule(2, True, frozenset({STATUS_INSTALLED}), False, True),
}
# Profile 3 on sanitary / ville offer: as open data.
PROFILE_3_SANITARY = RULES[Profile.OPEN_DATA]


@dataclass(frozen=True)
class Context:
    """Facts about a resource that the filter needs and the resource itself may not carry."""

    sensitive: bool = False  # the offer (or the offer of this Location / PractitionerRole) is a sensitive unit
    medico_social: bool = False  # champ d'activité 04


def rule_for(profile: Profile, ctx: Context) -> Rule:
    if profile == Profile.MEDICO_SOCIAL and not ctx.medico_social:
        return PROFILE_3_SANITARY
    return RULES[profile]


def visible(profile: Profile, ctx: Context) -> bool:
    """Whether the resource is shown at all (sensitive units are hidden, not emptied)."""
    return not ctx.sensitive or RULES[profile].sensitive_units


def _level(ext_holder: dict[str, Any], url: str) -> int:
    """Confidentiality level carried by an element; a missing level is treated as the most restricted (3)."""
    for ext in ext_holder.get("extension") or []:
        if ext.get("url") == url:
            cc = ext.get("valueCodeableConcept") or {}
            for coding in cc.get("coding") or []:
                if str(coding.get("code", "")).isdigit():
                    return int(coding["code"])
            if isinstance(ext.get("valueCode"), str) and ext["valueCode"].isdigit():
                return int(ext["valueCode"])
    return 3


def _telecoms(items: list[dict[str, Any]] | None, rule: Rule) -> list[dict[str, Any]]:
    return [t for t in items or [] if _level(t, ids.EXT_TELECOM_CONFIDENTIALITY) <= rule.max_level]


def _hs_contact(ext: dict[str, Any], rule: Rule) -> dict[str, Any] | None:
    """Filter one `ror-healthcareservice-contact` extension (level on the contact and on each telecom)."""
    if not rule.contacts or _level(ext, EXT_HS_CONTACT_LEVEL) > rule.max_level:
        return None
    kept = []
    for sub in ext.get("extension") or []:
        if sub.get("url") == EXT_HS_CONTACT_TELECOM and _level(sub, ids.EXT_TELECOM_CONFIDENTIALITY) > rule.max_level:
            continue
        kept.append(sub)
    return {**ext, "extension": kept}


def _capacity_status(ext: dict[str, Any]) -> str | None:
    for sub in ext.get("extension") or []:
        if sub.get("url") == "capacityStatus":
            for coding in (sub.get("valueCodeableConcept") or {}).get("coding") or []:
                return coding.get("code")
    return None


def filter_resource(res: dict[str, Any], profile: Profile, ctx: Context) -> dict[str, Any] | None:
    """The resource as `profile` may see it, or None when it must not be shown at all."""
    if not visible(profile, ctx):
        return None
    rule = rule_for(profile, ctx)
    out = dict(res)
    rt = res.get("resourceType")
    if "telecom" in out:
        if rt in ("Practitioner", "PractitionerRole") and not rule.personal_data:
            out.pop("telecom")
        else:
            out["telecom"] = _telecoms(out["telecom"], rule)
    if rt == "Organization" and "contact" in out:
        contacts = []
        if rule.contacts:
            for c in out["contact"]:
                if _level(c, EXT_CONTACT_LEVEL) <= rule.max_level:
                    contacts.append({**c, "telecom": _telecoms(c.get("telecom"), rule)} if "telecom" in c else c)
        out["contact"] = contacts
    if "extension" in out:
        exts = []
        for e in out["extension"]:
            url = e.get("url")
            if url == EXT_HS_CONTACT:
                e = _hs_contact(e, rule)
                if e is None:
                    continue
            elif url == ids.EXT_CAPACITY and rule.capacity is not None and _capacity_status(e) not in rule.capacity:
                continue
            exts.append(e)
        out["extension"] = exts
    if rt == "Practitioner" and not rule.personal_data:
        for key in ("name", "address", "photo", "birthDate", "gender"):
            out.pop(key, None)
    return {k: v for k, v in out.items() if v != []}
