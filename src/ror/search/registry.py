"""The SearchParameter registry. Definitions are data (`parameters.json`); this module only loads them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ror.search.fhirpath import compile_path

PARAMETERS_FILE = Path(__file__).with_name("parameters.json")
SEARCH_TYPES = {"token", "string", "number", "date", "quantity", "reference", "uri", "special"}
# Resource-table columns and engine-level parameters (not extracted into index tables).
SPECIAL_PARAMS = {"_id": "token", "_lastUpdated": "date"}


@dataclass(frozen=True)
class SearchParam:
    code: str
    base: tuple[str, ...]
    type: str
    expression: str
    url: str
    group: str | None = None
    target: tuple[str, ...] = ()
    description: str = ""
    transform: str | None = None  # a named function applied to extracted token codes (see extract.TRANSFORMS)
    # parameters of the same resource whose index rows are also values of this one, not stored twice: `address`
    # reads `address-city` and `address-postalcode` rows besides its own (line, text, district, state, country)
    includes: tuple[str, ...] = ()

    @property
    def row_params(self) -> tuple[str, ...]:
        """The `param` values of the index rows a criterion on this parameter reads."""
        return (self.code, *self.includes)


class Registry:
    def __init__(self, params: list[SearchParam]) -> None:
        self.params = params
        self._by_type: dict[str, dict[str, SearchParam]] = {}
        for p in params:
            if p.type not in SEARCH_TYPES:
                raise ValueError(f"SearchParameter {p.code}: unknown type {p.type}")
            for sub in p.expression.split("|"):
                compile_path(sub.strip())
            if p.group:
                compile_path(p.group)
            if p.transform is not None:
                from ror.search.extract import TRANSFORMS

                if p.transform not in TRANSFORMS:
                    raise ValueError(f"SearchParameter {p.code}: unknown transform {p.transform}")
            for base in p.base:
                self._by_type.setdefault(base, {})[p.code] = p
        for p in params:
            for base in p.base:
                for name in p.includes:
                    other = self._by_type[base].get(name)
                    if other is None or other.type != p.type or other.group != p.group:
                        raise ValueError(f"SearchParameter {p.code}: includes {name}, not a {p.type} of {base}")

    def for_type(self, res_type: str) -> dict[str, SearchParam]:
        return self._by_type.get(res_type, {})

    def get(self, res_type: str, code: str) -> SearchParam | None:
        return self._by_type.get(res_type, {}).get(code)

    @property
    def resource_types(self) -> list[str]:
        return sorted(self._by_type)


def load_registry(path: Path = PARAMETERS_FILE) -> Registry:
    data = json.loads(path.read_text(encoding="utf-8"))
    params = [
        SearchParam(
            code=d["code"],
            base=tuple(d["base"]),
            type=d["type"],
            expression=d["expression"],
            url=d["url"],
            group=d.get("group"),
            target=tuple(d.get("target", ())),
            description=d.get("description", ""),
            transform=d.get("transform"),
            includes=tuple(d.get("includes", ())),
        )
        for d in data["parameters"]
    ]
    return Registry(params)


@lru_cache(maxsize=1)
def default_registry() -> Registry:
    return load_registry()
