"""One capacity indicator = one `ror-location-supported-capacity` extension (docs/ror-fhir-api.md §2).

Its *key* is the full combination of codes (nature, status, temporality, gender, closing type, additional bed
type, crisis type, temporary assignment): two indicators with the same key on one Location are impossible."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

import orjson

from ror.directory import ids
from ror.errors import InvalidRequest, client_json
from ror.memo import Lru
from ror.search.normalise import date_range

CAPACITY_URL = ids.EXT_CAPACITY
# sub-extension url -> (attribute, code system, value set)
CODED: dict[str, tuple[str, str, str]] = {
    "capacityType": ("nature", ids.TRE_R329, "J187"),
    "capacityStatus": ("status", ids.TRE_R330, "J188"),
    "temporalityCapacity": ("temporality", ids.TRE_R331, "J189"),
    "capacitySourceType": ("source_type", ids.TRE_R335, "J193"),
    "genderCapacityAvailable": ("gender", ids.TRE_R332, "J190"),
    "capacityClosingType": ("closing_type", ids.TRE_R333, "J191"),
    "additionalBedType": ("additional_bed_type", ids.TRE_R334, "J192"),
    "crisisType": ("crisis_type", ids.TRE_R336, "J194"),
    "temporaryAssignement": ("temporary_assignment", ids.TRE_R337, "J195"),
}
REQUIRED = (
    "capacityType",
    "capacityStatus",
    "temporalityCapacity",
    "nbCapacity",
    "capacitySourceType",
    "capacityUpdateDate",
    "temporaryAssignement",
)
KEY_FIELDS = (
    "nature",
    "status",
    "temporality",
    "gender",
    "closing_type",
    "additional_bed_type",
    "crisis_type",
    "temporary_assignment",
)


@dataclass(frozen=True)
class Indicator:
    nature: str
    status: str
    temporality: str
    nb: int
    source_type: str
    update_date: str  # FHIR dateTime as given
    temporary_assignment: str
    gender: str | None = None
    closing_type: str | None = None
    additional_bed_type: str | None = None
    crisis_type: str | None = None
    comment: str | None = None

    @cached_property
    def key(self) -> tuple[str, ...]:
        """Computed once per indicator (a capacity write compares keys a dozen times: rules, patch, projection)."""
        return tuple(getattr(self, f) or "" for f in KEY_FIELDS)

    @property
    def updated_at(self) -> datetime:
        """capacityUpdateDate as a naive UTC datetime."""
        return date_range(self.update_date)[0]

    def describe(self) -> str:
        parts = [f"{f}={getattr(self, f)}" for f in KEY_FIELDS if getattr(self, f)]
        return ", ".join(parts)

    def to_extension(self) -> dict[str, Any]:
        def coded(url: str, code: str) -> dict[str, Any]:
            return {"url": url, "valueCodeableConcept": {"coding": [{"system": CODED[url][1], "code": code}]}}

        sub = [
            coded("capacityType", self.nature),
            coded("capacityStatus", self.status),
            coded("temporalityCapacity", self.temporality),
            {"url": "nbCapacity", "valueInteger": self.nb},
            coded("capacitySourceType", self.source_type),
        ]
        if self.gender:
            sub.append(coded("genderCapacityAvailable", self.gender))
        sub.append({"url": "capacityUpdateDate", "valueDateTime": self.update_date})
        for url, attr in (
            ("capacityClosingType", "closing_type"),
            ("additionalBedType", "additional_bed_type"),
            ("crisisType", "crisis_type"),
        ):
            if getattr(self, attr):
                sub.append(coded(url, getattr(self, attr)))
        sub.append(coded("temporaryAssignement", self.temporary_assignment))
        if self.comment:
            sub.append({"url": "comment", "valueString": self.comment})
        return {"url": CAPACITY_URL, "extension": sub}


def _at(path: str, i: int, element: str = "") -> str:
    """The FHIRPath of a sub-extension (built only when an error names it: this parse is on the write path)."""
    return f"{path}.extension[{i}]{element}"


@client_json("Location.extension")
def parse_indicator(ext: Mapping[str, Any], path: str = "Location.extension") -> Indicator:
    """Read one capacity extension; InvalidRequest names the faulty element (FHIRPath) on any problem."""
    if ext.get("url") != CAPACITY_URL:
        raise InvalidRequest(f"not a capacity indicator (url {ext.get('url')!r})", expression=f"{path}.url")
    values: dict[str, Any] = {}
    seen: set[str] = set()
    for i, sub in enumerate(ext.get("extension") or []):
        url = sub.get("url")
        if url in seen:
            raise InvalidRequest(f"sub-extension {url} is repeated (0..1)", expression=_at(path, i))
        seen.add(url)
        if url in CODED:
            codings = (sub.get("valueCodeableConcept") or {}).get("coding") or []
            if len(codings) < 1 or not codings[0].get("code"):
                raise InvalidRequest(f"{url} needs valueCodeableConcept.coding with a code", expression=_at(path, i))
            system = codings[0].get("system")
            if system and system != CODED[url][1]:
                raise InvalidRequest(
                    f"{url}: coding.system must be {CODED[url][1]}, got {system}",
                    expression=_at(path, i, ".valueCodeableConcept"),
                )
            values[CODED[url][0]] = str(codings[0]["code"])
        elif url == "nbCapacity":
            nb = sub.get("valueInteger")
            if isinstance(nb, bool) or not isinstance(nb, int) or nb < 0:
                raise InvalidRequest(
                    f"nbCapacity must be an integer ≥ 0, got {nb!r}", expression=_at(path, i, ".valueInteger")
                )
            values["nb"] = nb
        elif url == "capacityUpdateDate":
            dt = sub.get("valueDateTime")
            try:
                date_range(str(dt))
            except ValueError as exc:
                raise InvalidRequest(f"capacityUpdateDate: {exc}", expression=_at(path, i, ".valueDateTime")) from exc
            values["update_date"] = dt
        elif url == "comment":
            values["comment"] = sub.get("valueString")
        else:
            raise InvalidRequest(f"unknown capacity sub-extension {url!r}", expression=_at(path, i))
    missing = [u for u in REQUIRED if u not in seen]
    if missing:
        raise InvalidRequest(f"capacity indicator lacks {', '.join(missing)} (1..1)", expression=path)
    return Indicator(**values)


# indicators by their JSON: a write reads the Location's indicators before and after the change, and the next
# write of that Location reads them again; one of them changed. Indicators are immutable, errors never kept.
_PARSED: Lru[bytes, Indicator] = Lru(8192)


def indicators_of(location: Mapping[str, Any]) -> list[Indicator]:
    out = []
    for i, ext in enumerate(location.get("extension") or []):
        if ext.get("url") == CAPACITY_URL:
            try:
                key: bytes | None = orjson.dumps(ext)
            except TypeError:  # not JSON (a caller's own object): parsed, not kept
                key = None
            found = _PARSED.get(key) if key is not None else None
            if found is None:
                found = parse_indicator(ext, f"Location.extension[{i}]")
                if key is not None:
                    _PARSED.put(key, found)
            out.append(found)
    return out
