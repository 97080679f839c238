"""Extract search-index rows from a resource, driven by the registry (no per-parameter code)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ror.search.fhirpath import evaluate
from ror.search.normalise import date_range, norm_text
from ror.search.registry import Registry, SearchParam

TEXT_MAX = 500


def departement_of_commune(code: str) -> str:
    """INSEE commune code -> département code (97x/98x overseas are 3 characters; 2A/2B Corsica)."""
    return code[:3] if code[:2] in ("97", "98") else code[:2]


TRANSFORMS = {"departement-of-commune": departement_of_commune}


@dataclass
class IndexRows:
    token: list[dict[str, Any]] = field(default_factory=list)
    string: list[dict[str, Any]] = field(default_factory=list)
    number: list[dict[str, Any]] = field(default_factory=list)
    quantity: list[dict[str, Any]] = field(default_factory=list)
    date: list[dict[str, Any]] = field(default_factory=list)
    reference: list[dict[str, Any]] = field(default_factory=list)
    geo: list[dict[str, Any]] = field(default_factory=list)


def _tokens(value: Any) -> Iterator[tuple[str | None, str | None, str | None]]:
    """(system, code, text) triples for a token-typed value of any FHIR datatype."""
    if isinstance(value, bool):
        yield None, "true" if value else "false", None
    elif isinstance(value, str | int | float):
        yield None, str(value), None
    elif isinstance(value, dict):
        if "coding" in value or ("text" in value and "value" not in value):  # CodeableConcept
            text = value.get("text")
            for c in value.get("coding") or []:
                yield c.get("system"), c.get("code"), c.get("display") or text
            if text and not value.get("coding"):
                yield None, None, text
        elif "code" in value and ("system" in value or "display" in value):  # Coding
            yield value.get("system"), value.get("code"), value.get("display")
        elif "value" in value:  # Identifier, ContactPoint
            yield value.get("system"), str(value["value"]), None
        elif "code" in value:
            yield value.get("system"), value.get("code"), value.get("display")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        if "family" in value or "given" in value:  # HumanName
            if value.get("family"):
                yield value["family"]
            yield from value.get("given") or []
            if value.get("text"):
                yield value["text"]
        else:  # Address and others: every string leaf
            for key in ("text", "line", "city", "district", "state", "postalCode", "country"):
                v = value.get(key)
                if isinstance(v, list):
                    yield from (x for x in v if isinstance(x, str))
                elif isinstance(v, str):
                    yield v


def _dates(value: Any) -> Iterator[tuple[Any, Any]]:
    if isinstance(value, str):
        yield date_range(value)
    elif isinstance(value, dict) and ("start" in value or "end" in value):  # Period
        from datetime import datetime

        low = date_range(value["start"])[0] if value.get("start") else datetime(1, 1, 1)
        high = date_range(value["end"])[1] if value.get("end") else datetime(9999, 12, 31)
        yield low, high


def _reference(value: Any) -> tuple[str | None, str | None, str | None] | None:
    if not isinstance(value, dict) or not value.get("reference"):
        return None
    ref: str = value["reference"]
    parts = ref.split("/")
    if len(parts) >= 2 and not ref.startswith("#"):
        # Type/id, Type/id/_history/v, or an absolute URL ending in Type/id
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        return parts[-2], parts[-1], ref if "://" in ref else None
    return None, None, ref


def _add(rows: IndexRows, res_type: str, p: SearchParam, value: Any, grp: int | None) -> None:
    base = {"res_type": res_type, "param": p.code, "grp": grp}
    if p.type == "token":
        if p.transform:
            fn = TRANSFORMS[p.transform]
            for _system, code, _text in _tokens(value):
                if code:
                    rows.token.append({**base, "system": None, "code": fn(code), "text": None})
            return
        for system, code, text in _tokens(value):
            rows.token.append(
                {**base, "system": system, "code": code, "text": norm_text(text)[:TEXT_MAX] if text else None}
            )
        if p.code == "identifier" and isinstance(value, dict) and value.get("type") and value.get("value"):
            for system, code, _ in _tokens(value["type"]):  # for identifier:of-type
                rows.token.append(
                    {
                        **base,
                        "param": "identifier:of-type",
                        "system": system,
                        "code": code,
                        "text": value["value"],
                    }
                )
    elif p.type in ("string", "uri"):
        values = [value] if p.type == "uri" else list(_strings(value))
        for s in values:
            if isinstance(s, str) and s:
                rows.string.append({**base, "value": norm_text(s)[:TEXT_MAX], "exact": s[:TEXT_MAX]})
    elif p.type == "number":
        if isinstance(value, int | float) and not isinstance(value, bool):
            rows.number.append({**base, "value": float(value)})
    elif p.type == "quantity":
        if isinstance(value, dict) and isinstance(value.get("value"), int | float):
            rows.quantity.append(
                {
                    **base,
                    "value": float(value["value"]),
                    "system": value.get("system"),
                    "code": value.get("code") or value.get("unit"),
                }
            )
    elif p.type == "date":
        for low, high in _dates(value):
            rows.date.append({**base, "low": low, "high": high})
    elif p.type == "reference":
        ref = _reference(value)
        if ref:
            rows.reference.append({**base, "target_type": ref[0], "target_id": ref[1], "url": ref[2]})


def extract(registry: Registry, resource: dict[str, Any]) -> IndexRows:
    """All index rows of one resource (without `resource_pk`, which the store adds)."""
    res_type = resource["resourceType"]
    rows = IndexRows()
    for p in registry.for_type(res_type).values():
        if p.type == "special":
            continue
        try:
            if p.group:
                for grp, node in enumerate(evaluate(resource, p.group)):
                    for value in evaluate(node, p.expression):
                        _add(rows, res_type, p, value, grp)
            else:
                for value in evaluate(resource, p.expression):
                    _add(rows, res_type, p, value, None)
        except ValueError:
            continue  # an unparsable value (e.g. a malformed date) is not indexed; validation reports it
    if res_type == "Location":
        pos = resource.get("position") or {}
        lat, lon = pos.get("latitude"), pos.get("longitude")
        if isinstance(lat, int | float) and isinstance(lon, int | float):
            rows.geo.append({"res_type": res_type, "lat": float(lat), "lon": float(lon)})
    return rows
