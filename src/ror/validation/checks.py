"""The rules that need code (`Check` entries of rules.py): one function per rule id, each returning findings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from ror.capacity.model import CAPACITY_URL, indicators_of
from ror.capacity.rules import validate_indicators
from ror.directory import ids
from ror.errors import RorError
from ror.search.fhirpath import evaluate
from ror.validation.model import Finding
from ror.validation.rules import CHANNEL, CONFIDENTIALITY, HS_CONTACT, ID_NAT_PS, PATIENT_TYPE, Check


class Lookups(Protocol):
    """What the checks need from the database and the reference data."""

    def exists(self, res_type: str, res_id: str) -> bool: ...

    def same_identifier(self, res_type: str, system: str | None, value: str) -> list[dict[str, Any]]: ...

    def commune_known(self, code: str) -> bool | None: ...  # None: geography not loaded

    def validate_code(self, value_set: str, system: str | None, code: str) -> object: ...


@dataclass
class Context:
    res: dict[str, Any]
    res_type: str
    res_id: str | None
    lookups: Lookups


CheckFn = Callable[[Check, Context], list[Finding]]
CONFIDENTIALITY_LEVEL = ids.SD + "ror-confidentiality-level"


def _f(rule: Check, expression: str, message: str, code: str = "required", severity: str | None = None) -> Finding:
    return Finding(rule.id, severity or rule.severity, code, expression, message)


def _contact_points(ctx: Context) -> Iterator[tuple[str, Any]]:
    rt, res = ctx.res_type, ctx.res
    for i, cp in enumerate(res.get("telecom") or []):
        yield f"{rt}.telecom[{i}]", cp
    if rt == "Organization":
        for j, contact in enumerate(res.get("contact") or []):
            if isinstance(contact, dict):
                for i, cp in enumerate(contact.get("telecom") or []):
                    yield f"Organization.contact[{j}].telecom[{i}]", cp


def _count_ext(node: Any, url: str) -> int:
    if not isinstance(node, dict):
        return 0
    return sum(1 for e in node.get("extension") or [] if isinstance(e, dict) and e.get("url") == url)


def contact_point_value(rule: Check, ctx: Context) -> list[Finding]:
    return [
        _f(rule, f"{path}.value", f"{path}: value is required (1..1)")
        for path, cp in _contact_points(ctx)
        if not isinstance(cp, dict) or not isinstance(cp.get("value"), str) or not cp["value"].strip()
    ]


def _one_ext(rule: Check, ctx: Context, url: str, label: str) -> list[Finding]:
    out = []
    for path, cp in _contact_points(ctx):
        n = _count_ext(cp, url)
        if n != 1:
            out.append(_f(rule, f"{path}.extension('{url}')", f"{path}: {label} 1..1 (found {n})"))
    return out


def contact_point_channel(rule: Check, ctx: Context) -> list[Finding]:
    return _one_ext(rule, ctx, CHANNEL, "communication channel (ror-telecom-communication-channel)")


def contact_point_confidentiality(rule: Check, ctx: Context) -> list[Finding]:
    return _one_ext(rule, ctx, CONFIDENTIALITY, "confidentiality level (ror-telecom-confidentiality-level)")


def healthcareservice_contact(rule: Check, ctx: Context) -> list[Finding]:
    out: list[Finding] = []
    contacts = [e for e in ctx.res.get("extension") or [] if isinstance(e, dict) and e.get("url") == HS_CONTACT]
    for i, contact in enumerate(contacts):
        base = f"HealthcareService.extension('{HS_CONTACT}')[{i}]"
        n = _count_ext(contact, CONFIDENTIALITY_LEVEL)
        if n != 1:
            out.append(_f(rule, f"{base}.extension('{CONFIDENTIALITY_LEVEL}')", f"{base}: confidentiality 1..1"))
        telecoms = [e for e in contact.get("extension") or [] if e.get("url") == HS_CONTACT + "-telecom"]
        for j, tel in enumerate(telecoms):
            tpath = f"{base}.extension('{HS_CONTACT}-telecom')[{j}]"
            for url, label in (
                (CHANNEL, "channel"),
                (CONFIDENTIALITY, "confidentiality"),
                ("telecomAddress", "address"),
            ):
                if _count_ext(tel, url) != 1:
                    out.append(_f(rule, f"{tpath}.extension('{url}')", f"{tpath}: {label} 1..1"))
    return out


def age_range(rule: Check, ctx: Context) -> list[Finding]:
    out: list[Finding] = []
    for rng in evaluate(ctx.res, rule.expression):
        if not isinstance(rng, dict):
            continue
        values: dict[str, float] = {}
        for bound in ("low", "high"):
            q = rng.get(bound)
            if not isinstance(q, dict):
                continue  # hs-age-range-low / -high report it
            path = f"{rule.expression}.{bound}"
            v = q.get("value")
            if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
                out.append(_f(rule, f"{path}.value", f"{bound} age must be a number ≥ 0", "value"))
                continue
            if q.get("code") != "a":
                out.append(_f(rule, f"{path}.code", f"{bound} age must be in years (UCUM code 'a')", "value"))
            values[bound] = float(v)
        if "low" in values and "high" in values and values["low"] > values["high"]:
            out.append(
                _f(rule, rule.expression, f"age range low {values['low']:g} > high {values['high']:g}", "invariant")
            )
    return out


def commune_known(rule: Check, ctx: Context) -> list[Finding]:
    out: list[Finding] = []
    for coding in evaluate(ctx.res, rule.expression):
        code = coding.get("code") if isinstance(coding, dict) else None
        if not isinstance(code, str) or not code:
            out.append(_f(rule, rule.expression, "the commune coding has no code", "required"))
            continue
        if coding.get("system") not in (None, ids.TRE_R13):
            out.append(_f(rule, f"{rule.expression}.system", f"the commune system must be {ids.TRE_R13}", "value"))
        known = ctx.lookups.commune_known(code)
        if known is None:
            out.append(
                _f(rule, rule.expression, f"commune {code} not checked: no geography", "informational", "warning")
            )
        elif not known:
            out.append(_f(rule, rule.expression, f"commune {code} is not an INSEE COG commune", "code-invalid"))
    return out


def capacity(rule: Check, ctx: Context) -> list[Finding]:
    if not any(isinstance(e, dict) and e.get("url") == CAPACITY_URL for e in ctx.res.get("extension") or []):
        return []
    try:
        validate_indicators(indicators_of(ctx.res), ctx.lookups.validate_code)
    except RorError as exc:
        return [
            Finding(rule.id, "error", i.code or "business-rule", (i.expression or [rule.expression])[0], i.diagnostics)
            for i in exc.issues
        ]
    return []


# reference elements per type: element -> allowed target types
REFERENCES: dict[str, dict[str, tuple[str, ...]]] = {
    "Organization": {"partOf": ("Organization",)},
    "HealthcareService": {"providedBy": ("Organization",), "location": ("Location",), "coverageArea": ("Location",)},
    "Location": {"managingOrganization": ("Organization",), "partOf": ("Location",)},
    "Practitioner": {},
    "PractitionerRole": {
        "practitioner": ("Practitioner",),
        "organization": ("Organization",),
        "healthcareService": ("HealthcareService",),
        "location": ("Location",),
    },
    "Task": {
        "focus": ("Organization", "HealthcareService", "Location", "Practitioner", "PractitionerRole"),
        "partOf": ("Task",),
        "owner": ("Organization", "Practitioner", "PractitionerRole", "HealthcareService"),
        "requester": ("Organization", "Practitioner", "PractitionerRole"),
        "location": ("Location",),
    },
}


def references(rule: Check, ctx: Context) -> list[Finding]:
    out: list[Finding] = []
    for element, targets in REFERENCES.get(ctx.res_type, {}).items():
        value = ctx.res.get(element)
        items = value if isinstance(value, list) else [value] if value is not None else []
        for i, ref in enumerate(items):
            path = f"{ctx.res_type}.{element}" + (f"[{i}]" if isinstance(value, list) else "")
            if not isinstance(ref, dict):
                continue
            text = ref.get("reference")
            if text is None:
                if not ref.get("identifier"):
                    out.append(_f(rule, path, f"{path}: a reference or an identifier is required", "required"))
                continue
            parts = str(text).split("/")
            if "://" in str(text) or str(text).startswith("#"):
                out.append(_f(rule, f"{path}.reference", f"{text} is not resolved here", "not-found", "warning"))
                continue
            if len(parts) == 4 and parts[2] == "_history":
                parts = parts[:2]
            if len(parts) != 2 or parts[0] not in targets:
                out.append(_f(rule, f"{path}.reference", f"{text}: expected {' or '.join(targets)}/<id>", "value"))
            elif not ctx.lookups.exists(parts[0], parts[1]):
                out.append(_f(rule, f"{path}.reference", f"{text} does not exist in the directory", "not-found"))
    return out


def _unique_keys(ctx: Context) -> Iterator[tuple[str, str | None, str, Callable[[dict[str, Any]], bool]]]:
    """(expression, system, value, same-scope predicate) of every identifier that must be unique."""
    rt, res = ctx.res_type, ctx.res
    for i, ident in enumerate(res.get("identifier") or []):
        if not isinstance(ident, dict) or not isinstance(ident.get("value"), str):
            continue
        system, value = ident.get("system"), ident["value"]
        path = f"{rt}.identifier[{i}]"
        if rt == "Location":
            itype = ident.get("type")
            codings = itype.get("coding") if isinstance(itype, dict) else None
            codes = {c.get("code") for c in codings if isinstance(c, dict)} if isinstance(codings, list) else set()
            if "26" in codes:  # idExterneSynchro: unique within its establishment
                owner = (res.get("managingOrganization") or {}).get("reference")
                yield (
                    path,
                    system,
                    value,
                    lambda other, owner=owner: (other.get("managingOrganization") or {}).get("reference") == owner,
                )
                continue
        if rt == "Practitioner" and system != ID_NAT_PS:
            continue
        if system == ids.SIRENE:
            # not unique in the real data: the national FINESS file gives one SIRET to several establishments
            # (a round trip of the national demo found 211 in a 1-in-50 sample); FINESS and idNatStruct are.
            continue
        yield path, system, value, lambda _other: True


def identifiers_unique(rule: Check, ctx: Context) -> list[Finding]:
    out: list[Finding] = []
    for path, system, value, same_scope in _unique_keys(ctx):
        for other in ctx.lookups.same_identifier(ctx.res_type, system, value):
            if other.get("id") == ctx.res_id or not same_scope(other):
                continue
            out.append(
                _f(
                    rule,
                    path,
                    f"identifier {system + '|' if system else ''}{value} is already used by "
                    f"{ctx.res_type}/{other.get('id')}",
                    "duplicate",
                )
            )
            break
    return out


FUNCTIONS: dict[str, CheckFn] = {
    "contact_point_value": contact_point_value,
    "contact_point_channel": contact_point_channel,
    "contact_point_confidentiality": contact_point_confidentiality,
    "healthcareservice_contact": healthcareservice_contact,
    "age_range": age_range,
    "commune_known": commune_known,
    "capacity": capacity,
    "references": references,
    "identifiers_unique": identifiers_unique,
}
__all__ = ["FUNCTIONS", "PATIENT_TYPE", "Context", "Lookups"]
