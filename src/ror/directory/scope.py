"""Territorial scope of an import or of the demo: `national`, `region:53`, `departement:35`."""

from __future__ import annotations

from dataclasses import dataclass

from ror.errors import InvalidRequest


@dataclass(frozen=True)
class Scope:
    kind: str  # national | region | departement
    code: str | None = None

    @classmethod
    def parse(cls, text: str) -> Scope:
        text = text.strip().lower()
        if text in ("national", "france", ""):
            return cls("national")
        kind, _, code = text.partition(":")
        aliases = {
            "region": "region",
            "région": "region",
            "reg": "region",
            "departement": "departement",
            "département": "departement",
            "dep": "departement",
        }
        if kind not in aliases or not code:
            raise InvalidRequest(f"unknown scope {text!r}: use national, region:<INSEE code> or departement:<code>")
        return cls(aliases[kind], code.upper())

    def accepts(self, region: str | None, departement: str | None) -> bool:
        if self.kind == "national":
            return True
        if self.kind == "region":
            return region == self.code
        return departement == self.code

    def __str__(self) -> str:
        return self.kind if self.code is None else f"{self.kind}:{self.code}"
