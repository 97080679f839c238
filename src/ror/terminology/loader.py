"""Loading of the NOS (ANS nomenclatures) into the `code_system` / `concept` / `value_set` / `value_set_concept`
tables, from the reference `nos/` folder:

* `smt-2023/` — SMT JSON CodeSystems (TRE) and ValueSets (JDV), July–August 2023;
* `nos-2023/` — older NOS-style JSON ValueSets (`JDV_J198-…-FHIR.xml` is JSON despite its name);
* `fsh-2026/` — FHIR Shorthand of the current ROR value sets and capacity TREs (2025–2026);
* `../ror/ror_capacity_nomenclatures.csv` — the capacity value sets J187–J195, which have no file of their own.

Rules (docs/nomenclatures.md §3, §5, §6):
* one resource per canonical URL; the newest folder wins: fsh-2026 > nos-2023 > smt-2023 (then the higher version);
* URLs are normalised to the NOS pattern (`.tabs` export typos of R340/J237, the truncated R265 URL in J51);
* `dateFin` or `status = deprecated` marks a concept deprecated; value set membership is *not* filtered by it
  (J219 lists all of R35 although every R35 code carries a dateFin): the flag travels with the member;
* a value set that includes a whole system (J51 → R265) is expanded at load time;
* every value set code is resolvable in its code system: codes missing from a (2023) code system are added from
  the value set, and a value set newer than its code system refreshes the labels (J17 2026 → R211 2023);
* idempotent: the resources loaded replace their previous rows (delete + bulk insert, one transaction)."""

from __future__ import annotations

import csv
import json
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine, Table

from ror.db.tables import code_system, concept, value_set, value_set_concept
from ror.directory.ids import nos
from ror.terminology.fsh import FshConcept, FshResource, parse_fsh_file

NOS_BASE = "https://mos.esante.gouv.fr/NOS/"
FOLDERS = ("fsh-2026", "nos-2023", "smt-2023")  # precedence, highest first
TIER = {"fsh-2026": 3, "nos-2023": 2, "smt-2023": 1, "csv": 0}
CAPACITY_CSV = Path("ror") / "ror_capacity_nomenclatures.csv"  # relative to the parent of the nos/ folder

_NOS_URL = re.compile(r"^https?://mos\.esante\.gouv\.fr/NOS/([A-Za-z]{3}[_-][A-Za-z]+\d+[^/]*?)(?:\.tabs)?(?:/.*)?$")
_NOS_NAME = re.compile(r"^\$?([A-Za-z]{3})[_-]([A-Za-z]+\d+)[_-](.+)$")

# JDV OIDs of the capacity value sets, as documented (docs/ror-fhir-api.md §2.1, docs/nomenclatures.md §3).
_CAPACITY_OIDS = {
    "JDV_J188-TypeStatutCapacite-ROR": "1.2.250.1.213.3.4.21",
    "JDV_J189-TemporaliteCapacite-ROR": "1.2.250.1.213.3.4.22",
    "JDV_J193-TypeSourceCapacite-ROR": "1.2.250.1.213.3.4.26",
}
# Boolean TRE properties that move a code into a FINESS-only value set: R330 flags 08 "Installé constaté" and
# 09 "Autorisé" with BTypeStatutCapaciteFiness, the property that defines JDV_J353-TypeStatutCapaciteFiness; the csv
# lists them under J188 but the ROR J188 is 01–06 (docs/ror-fhir-api.md §2.1), so flagged codes are left out.
# (R329's `NatureCapaciteFiness` only says "also used by FINESS+": 02 and 03 stay in J187.)
_FINESS_ONLY_FLAGS = frozenset({"BTypeStatutCapaciteFiness"})
_DATE_FIN_PROPERTIES = ("dateFin", "deprecationDate", "retirementDate")


# --- NOS naming ---------------------------------------------------------------------------------------------------
def nos_name(raw: str) -> str | None:
    """`TRE-R211-ActiviteOperationnelle`, `$TRE_G15_ProfessionSante`, `JDV_J17_ActiviteOperationnelle_ROR` ->
    `TRE_R211-ActiviteOperationnelle` … (underscore after the prefix, hyphens after); None if not a NOS name."""
    m = _NOS_NAME.match(raw)
    if m is None:
        return None
    rest = re.sub(r"[_-]", "-", m[3])
    return f"{m[1].upper()}_{m[2].upper()}-{rest}"


def canonical_url(url: str) -> str:
    """The canonical NOS URL (`…/NOS/TRE_R211-X/FHIR/TRE-R211-X`) for any NOS URL variant; other URLs unchanged."""
    m = _NOS_URL.match(url.strip())
    name = nos_name(m[1]) if m else None
    return nos(name) if name else url.strip()


def url_name(url: str) -> str:
    """The NOS name of a canonical URL (`TRE_R211-ActiviteOperationnelle`), else the URL itself."""
    m = _NOS_URL.match(url)
    return (nos_name(m[1]) if m else None) or url


# --- the model shared by the three formats ------------------------------------------------------------------------
@dataclass
class ConceptRow:
    code: str
    display: str
    definition: str | None = None
    date_valid: str | None = None
    date_fin: str | None = None
    deprecated: bool = False
    flags: frozenset[str] = frozenset()  # boolean properties that are true


@dataclass
class CodeSystemDoc:
    url: str
    name: str
    oid: str | None
    version: str | None
    title: str | None
    source: str
    tier: int
    concepts: dict[str, ConceptRow] = field(default_factory=dict)


@dataclass
class Include:
    system: str
    concepts: list[tuple[str, str | None]] | None  # (code, display); None: the whole code system


@dataclass
class ValueSetDoc:
    url: str
    name: str
    oid: str | None
    version: str | None
    title: str | None
    source: str
    tier: int
    includes: list[Include] = field(default_factory=list)
    excludes: list[Include] = field(default_factory=list)


@dataclass
class Member:
    system: str
    code: str
    display: str


@dataclass
class SkippedItem:
    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


@dataclass
class NosLoadReport:
    code_systems: int = 0
    concepts: int = 0
    value_sets: int = 0
    value_set_concepts: int = 0
    files: int = 0
    concepts_added_from_value_sets: int = 0
    labels_refreshed_from_value_sets: int = 0
    seconds: float = 0.0
    skipped: list[SkippedItem] = field(default_factory=list)

    def skip(self, source: str, reason: str) -> None:
        self.skipped.append(SkippedItem(source, reason))


Resource = CodeSystemDoc | ValueSetDoc


# --- readers ------------------------------------------------------------------------------------------------------
def concept_state(properties: dict[str, Any]) -> tuple[str | None, str | None, bool]:
    """(date_valid, date_fin, deprecated) from NOS concept properties (`dateFin` or `status = deprecated`)."""
    date_fin = next((str(properties[p]) for p in _DATE_FIN_PROPERTIES if properties.get(p)), None)
    deprecated = bool(properties.get("dateFin")) or properties.get("status") == "deprecated"
    valid = properties.get("dateValid")
    return (str(valid) if valid else None), date_fin, deprecated


def _json_properties(item: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for prop in item.get("property", []):
        values = [v for k, v in prop.items() if k.startswith("value")]
        if values:
            out[prop["code"]] = values[0]
    return out


def _concept_row(code: str, display: str | None, definition: str | None, properties: dict[str, Any]) -> ConceptRow:
    date_valid, date_fin, deprecated = concept_state(properties)
    flags = frozenset(k for k, v in properties.items() if v is True)
    return ConceptRow(code, display or code, definition, date_valid, date_fin, deprecated, flags)


def _json_oid(doc: dict[str, Any]) -> str | None:
    idents = doc.get("identifier") or []
    for ident in idents if isinstance(idents, list) else [idents]:
        value = str(ident.get("value", ""))
        if value.startswith("urn:oid:"):
            return value.removeprefix("urn:oid:")
    return None


def _header(doc: dict[str, Any], source: str, tier: int) -> dict[str, Any]:
    url = canonical_url(doc["url"])
    return {
        "url": url,
        "name": url_name(url),
        "oid": _json_oid(doc),
        "version": doc.get("version"),
        "title": doc.get("title") or doc.get("description"),
        "source": source,
        "tier": tier,
    }


def _json_code_system(doc: dict[str, Any], source: str, tier: int) -> CodeSystemDoc:
    cs = CodeSystemDoc(**_header(doc, source, tier))
    for item in _flatten(doc.get("concept", [])):
        row = _concept_row(item["code"], item.get("display"), item.get("definition"), _json_properties(item))
        cs.concepts[row.code] = row
    return cs


def _flatten(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from _flatten(item.get("concept", []))


def _json_includes(entries: list[dict[str, Any]]) -> list[Include]:
    out = []
    for inc in entries:
        concepts = inc.get("concept")
        pairs = [(c["code"], c.get("display")) for c in concepts] if concepts else None
        out.append(Include(canonical_url(inc["system"]), pairs))
    return out


def _json_value_set(doc: dict[str, Any], source: str, tier: int) -> ValueSetDoc:
    compose = doc.get("compose", {})
    unsupported = [i for i in compose.get("include", []) if "system" not in i or "filter" in i or "valueSet" in i]
    if unsupported:
        raise ValueError("compose.include with filter / valueSet / no system is not supported")
    return ValueSetDoc(
        **_header(doc, source, tier),
        includes=_json_includes(compose.get("include", [])),
        excludes=_json_includes(compose.get("exclude", [])),
    )


def read_json(path: Path, source: str, tier: int) -> Resource:
    doc = json.loads(path.read_text(encoding="utf-8"))
    kind = doc.get("resourceType")
    if kind == "CodeSystem":
        return _json_code_system(doc, source, tier)
    if kind == "ValueSet":
        return _json_value_set(doc, source, tier)
    raise ValueError(f"{kind} is not loaded (only CodeSystem and ValueSet)")


def _fsh_url(res: FshResource) -> str:
    if res.url:
        return canonical_url(res.url)
    name = nos_name(res.id or res.name)
    if name is None:
        raise ValueError(f"{res.kind} {res.name} has no ^url and no NOS name")
    return nos(name)


def _alias_url(alias: str) -> str:
    """`$TRE-R211-ActiviteOperationnelle` / `$TRE_G15_ProfessionSante` -> canonical URL (aliases are not declared in
    the SMT FSH exports: they follow the NOS naming)."""
    if "://" in alias:
        return canonical_url(alias)
    name = nos_name(alias)
    if name is None:
        raise ValueError(f"alias {alias} does not name a NOS resource")
    return nos(name)


def _fsh_pairs(concepts: list[FshConcept] | None) -> list[tuple[str, str | None]] | None:
    return None if concepts is None else [(c.code, c.display) for c in concepts]


def _from_fsh(res: FshResource, source: str, tier: int) -> Resource:
    url = _fsh_url(res)
    head = {"url": url, "name": url_name(url), "oid": res.oid, "version": res.version}
    head |= {"title": res.title or res.description, "source": source, "tier": tier}
    if res.kind == "CodeSystem":
        cs = CodeSystemDoc(**head)
        for c in res.concepts:
            cs.concepts[c.code] = _concept_row(c.code, c.display, c.definition, c.properties)
        return cs
    includes = [Include(_alias_url(i.system), _fsh_pairs(i.concepts)) for i in res.includes]
    return ValueSetDoc(**head, includes=includes)


def read_fsh(path: Path, source: str, tier: int) -> list[Resource]:
    out = [_from_fsh(r, source, tier) for r in parse_fsh_file(path) if r.kind in ("CodeSystem", "ValueSet")]
    if not out:
        raise ValueError("no CodeSystem or ValueSet in this FSH file")
    return out


def read_capacity_csv(path: Path, systems: dict[str, CodeSystemDoc], source: str) -> list[ValueSetDoc]:
    """J187–J195 from `ror_capacity_nomenclatures.csv` (`jdv;tre;element_ror;code;libelle;statut;definition`).
    A row is a member when its statut is `active`, its TRE code is not deprecated and not FINESS-only (see
    `_FINESS_ONLY_FLAGS`). Order of the csv is kept."""
    sets: dict[str, ValueSetDoc] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter=";"):
            vs = _capacity_value_set(sets, row, source)
            tre = nos(row["tre"].strip())
            if _capacity_member(row, systems.get(tre)):
                _include_for(vs, tre).append((row["code"].strip(), row["libelle"].strip() or None))
    return list(sets.values())


def _capacity_value_set(sets: dict[str, ValueSetDoc], row: dict[str, str], source: str) -> ValueSetDoc:
    name = row["jdv"].strip()
    if name not in sets:
        url = nos(name)
        title = row.get("element_ror", "").strip() or None
        sets[name] = ValueSetDoc(url, url_name(url), _CAPACITY_OIDS.get(name), None, title, source, TIER["csv"])
    return sets[name]


def _capacity_member(row: dict[str, str], tre: CodeSystemDoc | None) -> bool:
    if row["statut"].strip() != "active":
        return False
    known = tre.concepts.get(row["code"].strip()) if tre else None
    return known is None or not (known.deprecated or known.flags & _FINESS_ONLY_FLAGS)


def _include_for(vs: ValueSetDoc, system: str) -> list[tuple[str, str | None]]:
    for inc in vs.includes:
        if inc.system == system and inc.concepts is not None:
            return inc.concepts
    concepts: list[tuple[str, str | None]] = []
    vs.includes.append(Include(system, concepts))
    return concepts


# --- assembly -----------------------------------------------------------------------------------------------------
def source_files(directory: Path) -> list[tuple[Path, str, int]]:
    """(path, source label, tier) of every file of the three folders, highest precedence first."""
    out = []
    for folder in FOLDERS:
        base = directory / folder
        if base.is_dir():
            out += [(p, f"{folder}/{p.name}", TIER[folder]) for p in sorted(base.iterdir()) if p.is_file()]
    return out


def read_file(path: Path, source: str, tier: int) -> list[Resource]:
    if path.suffix == ".fsh":
        return read_fsh(path, source, tier)
    return [read_json(path, source, tier)]


def select_winners(resources: Iterable[Resource], report: NosLoadReport) -> dict[str, Resource]:
    """One resource per URL: the highest tier (folder precedence), then the highest version."""
    best: dict[str, Resource] = {}
    for res in resources:
        other = best.get(res.url)
        if other is not None and type(other) is not type(res):
            report.skip(res.source, f"{res.url} is both a CodeSystem and a ValueSet ({other.source})")
            continue
        if other is None or (res.tier, res.version or "") > (other.tier, other.version or ""):
            best[res.url] = res
            if other is not None:
                report.skip(other.source, f"superseded by {res.source}")
        else:
            report.skip(res.source, f"superseded by {other.source}")
    return best


def resolve_members(vs: ValueSetDoc, systems: dict[str, CodeSystemDoc], report: NosLoadReport) -> list[Member]:
    """The value set's codes, in compose order, whole-system includes expanded, excludes removed, no duplicates."""
    members: dict[tuple[str, str], Member] = {}
    for inc in vs.includes:
        cs = systems.get(inc.system)
        if inc.concepts is None:
            if cs is None:
                report.skip(vs.source, f"includes all of {inc.system}, which is not loaded: those codes are missing")
                continue
            pairs: list[tuple[str, str | None]] = [(c.code, c.display) for c in cs.concepts.values()]
        else:
            pairs = inc.concepts
        for code, display in pairs:
            known = cs.concepts.get(code) if cs else None
            label = display or (known.display if known else code)
            members.setdefault((inc.system, code), Member(inc.system, code, label))
    for exc in vs.excludes:
        excluded = {code for code, _ in exc.concepts or []}
        for key in [k for k in members if k[0] == exc.system and (exc.concepts is None or k[1] in excluded)]:
            del members[key]
    return list(members.values())


def complete_code_systems(
    systems: dict[str, CodeSystemDoc], value_sets: list[tuple[ValueSetDoc, list[Member]]], report: NosLoadReport
) -> None:
    """Make every value set code resolvable in its code system: add the missing codes (label from the value set),
    create a code system known only through value sets (e.g. G08 in J236), and let a value set newer than its code
    system refresh the labels. Oldest value sets first, so the newest label wins."""
    for vs, members in sorted(value_sets, key=lambda item: item[0].version or ""):
        touched: set[str] = set()
        for m in members:
            cs = systems.get(m.system) or _derived_code_system(systems, m.system, vs)
            known = cs.concepts.get(m.code)
            if known is None:
                cs.concepts[m.code] = ConceptRow(m.code, m.display)
                report.concepts_added_from_value_sets += 1
                touched.add(m.system)
            elif _is_newer(vs.version, cs.version) and known.display != m.display:
                known.display = m.display
                report.labels_refreshed_from_value_sets += 1
                touched.add(m.system)
        for url in touched:
            systems[url].source = _with_source(systems[url].source, vs.source)


def _derived_code_system(systems: dict[str, CodeSystemDoc], url: str, vs: ValueSetDoc) -> CodeSystemDoc:
    cs = CodeSystemDoc(url, url_name(url), None, None, None, f"codes listed by {vs.source}", TIER["csv"])
    systems[url] = cs
    return cs


def _is_newer(version: str | None, than: str | None) -> bool:
    return bool(version) and (not than or (version or "") > than)


def _with_source(source: str, extra: str) -> str:
    return source if extra in source else f"{source} + {extra}"[:255]


# --- database -----------------------------------------------------------------------------------------------------
def _code_system_rows(systems: Iterable[CodeSystemDoc]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    heads, rows = [], []
    for cs in systems:
        heads.append(_head_row(cs))
        for c in cs.concepts.values():
            rows.append(
                {
                    "system_url": cs.url,
                    "code": c.code,
                    "display": c.display,
                    "definition": c.definition,
                    "date_valid": c.date_valid,
                    "date_fin": c.date_fin,
                    "deprecated": c.deprecated,
                }
            )
    return heads, rows


def _head_row(res: Resource) -> dict[str, Any]:
    return {
        "url": res.url,
        "name": res.name[:128],
        "oid": res.oid,
        "version": res.version,
        "title": (res.title or "")[:255] or None,
        "source": res.source[:255],
    }


def _value_set_rows(
    value_sets: list[tuple[ValueSetDoc, list[Member]]], systems: dict[str, CodeSystemDoc]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    heads, rows = [], []
    for vs, members in value_sets:
        heads.append(_head_row(vs))
        for m in members:
            known = systems[m.system].concepts[m.code]
            rows.append(
                {
                    "vs_url": vs.url,
                    "system_url": m.system,
                    "code": m.code,
                    "display": m.display,
                    "deprecated": known.deprecated,
                }
            )
    return heads, rows


def _write(engine: Engine, tables: list[tuple[Table, str, list[dict[str, Any]]]], progress: Progress) -> None:
    """Replace the rows of the loaded resources: deletes (children first) then bulk inserts, one transaction."""
    task = progress.add_task("writing", total=2 * len(tables))
    with engine.connect().execution_options(ror_write=True) as conn, conn.begin():
        for table, key, rows in reversed(tables):
            urls = sorted({r[key] for r in rows} | _parent_urls(tables, table))
            for chunk in _chunks(urls, 500):
                conn.execute(table.delete().where(table.c[key].in_(chunk)))
            progress.advance(task)
        for table, _key, rows in tables:
            for chunk in _chunks(rows, 5000):
                conn.execute(table.insert(), chunk)
            progress.advance(task)


def _parent_urls(tables: list[tuple[Table, str, list[dict[str, Any]]]], child: Table) -> set[str]:
    """Children are deleted for every parent being reloaded (also a parent that now has no child row)."""
    parent = {concept: code_system, value_set_concept: value_set}.get(child)
    return {r["url"] for t, _k, rows in tables if t is parent for r in rows}


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- entry point --------------------------------------------------------------------------------------------------
def load_nos(
    engine: Engine, directory: Path, *, progress: bool = False, capacity_csv: Path | None = None
) -> NosLoadReport:
    """Load every NOS code system and value set of `directory` (the `nos/` folder); `capacity_csv` defaults to
    `../ror/ror_capacity_nomenclatures.csv` next to it."""
    started = time.perf_counter()
    report = NosLoadReport()
    with _progress_bar(progress) as bar:
        resources = _read_all(directory, report, bar)
        winners = select_winners(resources, report)
        systems = {u: r for u, r in winners.items() if isinstance(r, CodeSystemDoc)}
        sets = [r for r in winners.values() if isinstance(r, ValueSetDoc)]
        sets += _capacity_sets(directory, capacity_csv, systems, winners, report)
        resolved = [(vs, resolve_members(vs, systems, report)) for vs in sets]
        complete_code_systems(systems, resolved, report)
        cs_heads, concept_rows = _code_system_rows(systems.values())
        vs_heads, member_rows = _value_set_rows(resolved, systems)
        tables = [
            (code_system, "url", cs_heads),
            (concept, "system_url", concept_rows),
            (value_set, "url", vs_heads),
            (value_set_concept, "vs_url", member_rows),
        ]
        _write(engine, tables, bar)
    report.code_systems, report.concepts = len(cs_heads), len(concept_rows)
    report.value_sets, report.value_set_concepts = len(vs_heads), len(member_rows)
    report.seconds = round(time.perf_counter() - started, 2)
    return report


def _read_all(directory: Path, report: NosLoadReport, bar: Progress) -> list[Resource]:
    if not directory.is_dir():
        raise FileNotFoundError(f"NOS directory not found: {directory}")
    files = source_files(directory)
    task = bar.add_task("reading NOS files", total=len(files))
    resources: list[Resource] = []
    for path, source, tier in files:
        try:
            resources += read_file(path, source, tier)
            report.files += 1
        except (ValueError, KeyError) as exc:
            report.skip(source, str(exc))
        bar.advance(task)
    return resources


def _capacity_sets(
    directory: Path,
    capacity_csv: Path | None,
    systems: dict[str, CodeSystemDoc],
    winners: dict[str, Resource],
    report: NosLoadReport,
) -> list[ValueSetDoc]:
    path = capacity_csv or directory.parent / CAPACITY_CSV
    if not path.is_file():
        report.skip(str(path), "capacity value sets J187–J195 not loaded: file not found")
        return []
    report.files += 1
    out = []
    for vs in read_capacity_csv(path, systems, path.name):
        if vs.url in winners:
            report.skip(path.name, f"{vs.name} superseded by {winners[vs.url].source}")
        else:
            out.append(vs)
    return out


def _progress_bar(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not enabled,
    )
