"""The parameters of a bulk `$export` kick-off, validated once (a mistake is a 400 whose expression names the
parameter) and kept with the job as JSON so that a restarted server runs the same export."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import parse_qsl

import orjson

from ror.errors import InvalidRequest, RorError
from ror.search.normalise import date_range
from ror.search.query import RESULT_PARAMS, QueryParser

EXPORT_TYPES = ("Organization", "HealthcareService", "Location", "Practitioner", "PractitionerRole", "Task")
NDJSON = "application/fhir+ndjson"
NDJSON_ALIASES = frozenset({NDJSON, "application/ndjson", "ndjson"})  # the Bulk Data spec's accepted spellings
IGNORED = frozenset({"includeAssociatedData"})  # national example sends it; we have no associated data to add
KNOWN = frozenset({"_outputFormat", "_type", "_typeFilter", "_since"}) | IGNORED
_FILTER_START = re.compile(r",(?=(?:" + "|".join(EXPORT_TYPES) + r")\?)")


@dataclass(frozen=True)
class ExportRequest:
    types: tuple[str, ...]
    type_filters: dict[str, tuple[str, ...]] = field(default_factory=dict)  # type -> search query strings (OR-ed)
    since: datetime | None = None  # naive UTC: only resources whose lastUpdated is later
    output_format: str = NDJSON

    def to_json(self) -> str:
        return orjson.dumps(
            {
                "_type": list(self.types),
                "_typeFilter": {k: list(v) for k, v in self.type_filters.items()},
                "_since": self.since.isoformat() if self.since else None,
                "_outputFormat": self.output_format,
            }
        ).decode()

    @classmethod
    def from_json(cls, text: str) -> ExportRequest:
        d = orjson.loads(text)
        return cls(
            types=tuple(d["_type"]),
            type_filters={k: tuple(v) for k, v in (d.get("_typeFilter") or {}).items()},
            since=datetime.fromisoformat(d["_since"]) if d.get("_since") else None,
            output_format=d.get("_outputFormat") or NDJSON,
        )

    def filter_items(self, res_type: str) -> list[list[tuple[str, str]]]:
        """The search criteria of each `_typeFilter` of `res_type` (none: export every resource of the type)."""
        return [parse_qsl(q, keep_blank_values=True) for q in self.type_filters.get(res_type, ())]


def _split(values: list[str]) -> list[str]:
    out: list[str] = []
    for v in values:
        out += [p.strip() for p in v.split(",") if p.strip()]
    return out


def _types(values: list[str], level_type: str | None) -> tuple[str, ...]:
    asked = _split(values)
    for t in asked:
        if t not in EXPORT_TYPES:
            raise InvalidRequest(
                f"_type: {t!r} cannot be exported (exportable: {', '.join(EXPORT_TYPES)})", expression="_type"
            )
        if level_type is not None and t != level_type:
            raise InvalidRequest(f"_type: {t!r} is not {level_type} (type-level export)", expression="_type")
    if not asked:
        return (level_type,) if level_type else EXPORT_TYPES
    return tuple(dict.fromkeys(asked))


def _type_filters(values: list[str], types: tuple[str, ...], parser: QueryParser) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for raw in values:
        for one in (p.strip() for p in _FILTER_START.split(raw)):
            res_type, sep, query = one.partition("?")
            if not sep or res_type not in EXPORT_TYPES:
                raise InvalidRequest(f"_typeFilter {one!r} must be Type?query", expression="_typeFilter")
            if res_type not in types:
                raise InvalidRequest(
                    f"_typeFilter {one!r}: {res_type} is not among the exported types", expression="_typeFilter"
                )
            items = parse_qsl(query, keep_blank_values=True)
            if not items:
                raise InvalidRequest(f"_typeFilter {one!r} has no criterion", expression="_typeFilter")
            for name, _ in items:
                if name in RESULT_PARAMS or name.startswith(("_include", "_revinclude")):
                    raise InvalidRequest(
                        f"_typeFilter {one!r}: result parameter {name} is not allowed in an export filter",
                        expression="_typeFilter",
                    )
            try:
                parser.parse(res_type, items)  # the search's own checks: names, modifiers, codes, values
            except RorError as exc:
                raise InvalidRequest(f"_typeFilter {one!r}: {exc.diagnostics}", expression="_typeFilter") from exc
            out.setdefault(res_type, []).append(query)
    return {k: tuple(v) for k, v in out.items()}


def _since(values: list[str]) -> datetime | None:
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequest("_since may be given once", expression="_since")
    try:
        return date_range(values[0])[0]
    except ValueError as exc:
        raise InvalidRequest(f"_since: {values[0]!r} is not a FHIR instant", expression="_since") from exc


def parse_request(items: list[tuple[str, str]], parser: QueryParser, level_type: str | None = None) -> ExportRequest:
    """Validate the kick-off parameters of `[base]/$export` (level_type None) or `[base]/{Type}/$export`."""
    by_name: dict[str, list[str]] = {}
    for name, value in items:
        if name not in KNOWN:
            raise InvalidRequest(f"parameter {name} is not supported by $export", expression=name)
        by_name.setdefault(name, []).append(value)
    formats = by_name.get("_outputFormat", [NDJSON])
    if len(formats) != 1 or formats[0] not in NDJSON_ALIASES:
        raise InvalidRequest(
            f"_outputFormat {', '.join(formats)!r} is not supported (only {NDJSON})", expression="_outputFormat"
        )
    types = _types(by_name.get("_type", []), level_type)
    return ExportRequest(
        types=types,
        type_filters=_type_filters(by_name.get("_typeFilter", []), types, parser),
        since=_since(by_name.get("_since", [])),
        output_format=NDJSON,
    )
