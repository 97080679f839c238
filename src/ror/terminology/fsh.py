"""A parser for the FHIR Shorthand (FSH) of NOS CodeSystems and ValueSets as exported by the ANS terminology
server (`fsh-2026/`). Pure syntax: it neither resolves aliases to NOS URLs nor applies NOS rules (the loader does).

Supported (what the SMT exports use):
  `CodeSystem: Name` / `ValueSet: Name`, `Id:`, `Title:`, `Description:`, `Alias: $X = url`;
  header caret rules `* ^url`, `* ^version`, `* ^name`, `* ^title`, `* ^identifier[.value]` (others are ignored);
  CodeSystem concepts `* #code "display" "definition"` and their properties
  `* #code ^property[0|+|=].code = #dateFin` / `* #code ^property[=].valueDateTime = "…"` (valueCode,
  valueBoolean, valueString, valueInteger…);
  ValueSet concepts `* $ALIAS#code "display"` (or `system#code`), `* include codes from system $ALIAS`.
Not supported: multi-line `\"\"\"` strings, filters (`where`), value set includes (`from valueset`) — a rule that
cannot be read raises `FshError` rather than being dropped silently."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_STRING = r'"((?:[^"\\]|\\.)*)"'
_KIND = re.compile(
    r"^(CodeSystem|ValueSet|Instance|Profile|Extension|Logical|Resource|Invariant|RuleSet|Mapping)\s*:\s*(\S+)"
)
_KEYWORD = re.compile(r"^(Id|Title|Description|InstanceOf|Usage|Parent)\s*:\s*(.*)$")
_ALIAS = re.compile(r"^Alias\s*:\s*(\S+)\s*=\s*(\S+)")
_CARET = re.compile(r"^\*\s+\^([\w.\[\]=+]+)\s*=\s*(.+)$")
_CS_CONCEPT = re.compile(rf"^\*\s+#(\S+)(?:\s+{_STRING})?(?:\s+{_STRING})?\s*$")
_CS_CONCEPT_CARET = re.compile(r"^\*\s+#(\S+)\s+\^([\w.\[\]=+]+)\s*=\s*(.+)$")
_VS_CONCEPT = re.compile(rf"^\*\s+(?:include\s+)?([^\s#]+)#(\S+)(?:\s+{_STRING})?\s*$")
_VS_SYSTEM = re.compile(r"^\*\s+(?:include\s+)?codes\s+from\s+system\s+(\S+)\s*$")
_PROPERTY = re.compile(r"^property\[(\d+|\+|=)\]\.(\w+)$")


class FshError(ValueError):
    """A FSH rule the parser cannot read (with its line number)."""


@dataclass
class FshConcept:
    code: str
    display: str | None = None
    definition: str | None = None
    properties: dict[str, str | bool] = field(default_factory=dict)


@dataclass
class FshInclude:
    system: str  # as written: an alias (`$TRE-R211-…`, resolved through `Alias:` lines when defined) or a URL
    concepts: list[FshConcept] | None = None  # None: every code of the system


@dataclass
class FshResource:
    kind: str  # CodeSystem | ValueSet
    name: str
    id: str | None = None
    title: str | None = None
    description: str | None = None
    url: str | None = None
    version: str | None = None
    oid: str | None = None  # without the urn:oid: prefix
    caret_name: str | None = None  # `* ^name`, when present
    concepts: list[FshConcept] = field(default_factory=list)  # CodeSystem
    includes: list[FshInclude] = field(default_factory=list)  # ValueSet


def unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m[1], m[1]), value)


def parse_value(raw: str) -> str | bool:
    """The right-hand side of a caret rule: a string, a code (`#x`), a boolean or a bare token."""
    raw = raw.strip()
    m = re.fullmatch(_STRING, raw)
    if m:
        return unescape(m[1])
    if raw in ("true", "false"):
        return raw == "true"
    return raw[1:] if raw.startswith("#") else raw


class _Parser:
    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.aliases: dict[str, str] = {}
        self.resources: list[FshResource] = []
        self.current: FshResource | None = None
        self.concepts: dict[str, FshConcept] = {}
        self.property_key: dict[str, str] = {}  # per code: the property being filled by `[=]` rules
        self.includes: dict[str, list[FshConcept]] = {}  # system as written -> its explicit concept list

    def parse(self) -> list[FshResource]:
        for number, raw in enumerate(self.lines, start=1):
            line = raw.strip()
            if not line or line.startswith("//"):
                continue
            try:
                self.line(line)
            except FshError as exc:
                raise FshError(f"line {number}: {exc}: {line[:200]}") from None
        for res in self.resources:
            for inc in res.includes:
                inc.system = self.aliases.get(inc.system, inc.system)
        return self.resources

    def line(self, line: str) -> None:
        if m := _ALIAS.match(line):
            self.aliases[m[1]] = m[2]
        elif m := _KIND.match(line):
            self.start(m[1], m[2])
        elif m := _KEYWORD.match(line):
            self.keyword(m[1], m[2])
        elif line.startswith("*"):
            self.rule(line)
        else:
            raise FshError("unexpected line")

    def start(self, kind: str, name: str) -> None:
        self.current = FshResource(kind=kind, name=name)
        self.concepts, self.property_key, self.includes = {}, {}, {}
        self.resources.append(self.current)

    def res(self) -> FshResource:
        if self.current is None:
            raise FshError("rule before any CodeSystem/ValueSet declaration")
        return self.current

    def keyword(self, key: str, raw: str) -> None:
        value = parse_value(raw)
        text = value if isinstance(value, str) else raw
        res = self.res()
        if key == "Id":
            res.id = text
        elif key == "Title":
            res.title = text
        elif key == "Description":
            res.description = text

    def rule(self, line: str) -> None:
        res = self.res()
        if m := _CARET.match(line):
            self.header(res, m[1], parse_value(m[2]))
        elif res.kind == "CodeSystem":
            self.code_system_rule(res, line)
        elif res.kind == "ValueSet":
            self.value_set_rule(res, line)

    @staticmethod
    def header(res: FshResource, path: str, value: str | bool) -> None:
        if not isinstance(value, str):
            return
        if path == "url":
            res.url = value
        elif path == "version":
            res.version = value
        elif path == "name":
            res.caret_name = value
        elif path == "title":
            res.title = value
        elif re.fullmatch(r"identifier(\[\d+\])?\.value", path) and value.startswith("urn:oid:"):
            res.oid = value.removeprefix("urn:oid:")

    def code_system_rule(self, res: FshResource, line: str) -> None:
        if m := _CS_CONCEPT_CARET.match(line):
            self.concept_property(m[1], m[2], parse_value(m[3]))
        elif m := _CS_CONCEPT.match(line):
            concept = FshConcept(
                code=m[1],
                display=unescape(m[2]) if m[2] is not None else None,
                definition=unescape(m[3]) if m[3] is not None else None,
            )
            if concept.code in self.concepts:
                raise FshError(f"concept {concept.code} declared twice")
            self.concepts[concept.code] = concept
            res.concepts.append(concept)
        else:
            raise FshError("unreadable CodeSystem rule")

    def concept_property(self, code: str, path: str, value: str | bool) -> None:
        concept = self.concepts.get(code)
        if concept is None:
            raise FshError(f"caret rule for undeclared concept {code}")
        m = _PROPERTY.match(path)
        if m is None:
            return  # designations and other concept metadata are not used
        index, attr = m[1], m[2]
        if attr == "code":
            if index == "=":
                raise FshError("property[=].code without a property being started")
            self.property_key[code] = str(value)
            concept.properties.setdefault(str(value), "")
        elif attr.startswith("value"):
            key = self.property_key.get(code)
            if key is None or index == "+":
                raise FshError("property value without its code")
            concept.properties[key] = value

    def value_set_rule(self, res: FshResource, line: str) -> None:
        if m := _VS_SYSTEM.match(line):
            res.includes.append(FshInclude(system=m[1], concepts=None))
        elif m := _VS_CONCEPT.match(line):
            concepts = self.includes.get(m[1])
            if concepts is None:
                concepts = self.includes[m[1]] = []
                res.includes.append(FshInclude(system=m[1], concepts=concepts))
            concepts.append(FshConcept(code=m[2], display=unescape(m[3]) if m[3] is not None else None))
        else:
            raise FshError("unreadable ValueSet rule")


def parse_fsh(text: str) -> list[FshResource]:
    """Every CodeSystem and ValueSet declared in a FSH text (other declarations are returned with their kind)."""
    return _Parser(text).parse()


def parse_fsh_file(path: Path) -> list[FshResource]:
    return parse_fsh(path.read_text(encoding="utf-8"))
