"""The terminology service: resolution of code-system / value-set references, lookup, validation and expansion of
NOS codes, from the tables `load_nos` fills. Everything is read once into memory (a few thousand rows) and served
from dicts; `reload()` re-reads after a new load.

Communes (TRE_R13-CommuneOM) are not NOS rows here: the geography module serves them (INSEE COG). The terminology
resolves the R13 reference but `lookup`/`validate` on it raise `UnknownCode` saying so — never a silent accept."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from sqlalchemy import Engine, select

from ror.db.tables import code_system, concept, value_set, value_set_concept
from ror.directory.ids import TRE_R13
from ror.errors import InvalidRequest, UnknownCode
from ror.search.normalise import norm_text
from ror.terminology.loader import canonical_url

# Code systems the ROR uses whose codes are served by another module: url -> why they are not here.
EXTERNAL_SYSTEMS = {
    TRE_R13: "communes are served by the geography module (INSEE COG), not by the NOS terminology",
}
_OID = re.compile(r"^(?:urn:oid:)?([0-2](?:\.\d+)+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Concept:
    code: str
    display: str
    system: str
    deprecated: bool = False
    date_fin: str | None = None
    definition: str | None = None


@dataclass(frozen=True)
class ResourceSummary:
    """A code system or value set: canonical URL, NOS name, OID, version, title and number of codes."""

    url: str
    name: str
    oid: str | None
    version: str | None
    title: str | None
    count: int
    source: str | None = None


@dataclass
class _Snapshot:
    systems: dict[str, ResourceSummary] = field(default_factory=dict)
    concepts: dict[str, dict[str, Concept]] = field(default_factory=dict)
    value_sets: dict[str, ResourceSummary] = field(default_factory=dict)
    members: dict[str, list[tuple[Concept, str]]] = field(default_factory=dict)  # (concept, normalised display)
    member_index: dict[str, dict[tuple[str, str], Concept]] = field(default_factory=dict)
    system_refs: dict[str, str] = field(default_factory=dict)
    value_set_refs: dict[str, str] = field(default_factory=dict)
    # successful validations (value set, system, code, allow_deprecated) -> member: the capacity feed validates
    # the same few codes thousands of times; a reload replaces the snapshot, and this cache with it
    validated: dict[tuple[str, str | None, str, bool], Concept] = field(default_factory=dict)


def reference_keys(name: str, oid: str | None) -> set[str]:
    """The short forms a NOS resource answers to, normalised by `_ref_key`: for `TRE_R211-ActiviteOperationnelle`
    `tre-r211-activiteoperationnelle`, `r211-activiteoperationnelle`, `tre-r211`, `r211`; for a JDV also without
    its `-ror` suffix; and the OID."""
    full = _ref_key(name)
    keys = {full}
    prefix, _, rest = full.partition("-")
    if prefix in ("tre", "jdv") and rest:
        ident = rest.split("-", 1)[0]
        keys |= {rest, ident, f"{prefix}-{ident}"}
        keys |= {k.removesuffix("-ror") for k in keys if k.endswith("-ror")}
    if oid:
        keys.add(oid.lower())
    return keys


def _ref_key(ref: str) -> str:
    ref = ref.strip().split("|", 1)[0]
    m = _OID.match(ref)
    if m:
        return m[1]
    return ref.lower().replace("_", "-")


class Terminology:
    """NOS terminology backed by the database (see module docstring). Thread-safe; the cache is built on first
    use, and an empty database is re-read on the next call (so a service created before `load_nos` works)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None

    # --- cache ----------------------------------------------------------------------------------------------------
    def reload(self) -> None:
        with self._lock:
            self._snapshot = self._read()

    def _data(self) -> _Snapshot:
        snap = self._snapshot
        if snap is None or not snap.systems:
            with self._lock:
                if self._snapshot is None or not self._snapshot.systems:
                    self._snapshot = self._read()
                snap = self._snapshot
        return snap

    def _read(self) -> _Snapshot:
        snap = _Snapshot()
        with self.engine.connect() as conn:
            concept_rows = conn.execute(select(concept)).all()
            member_rows = conn.execute(select(value_set_concept)).all()
            system_rows = conn.execute(select(code_system)).all()
            set_rows = conn.execute(select(value_set)).all()
        for r in concept_rows:
            snap.concepts.setdefault(r.system_url, {})[r.code] = Concept(
                r.code, r.display, r.system_url, bool(r.deprecated), r.date_fin, r.definition
            )
        for r in member_rows:
            self._add_member(snap, r.vs_url, r.system_url, r.code, r.display, bool(r.deprecated))
        for r in system_rows:
            count = len(snap.concepts.get(r.url, {}))
            snap.systems[r.url] = ResourceSummary(r.url, r.name, r.oid, r.version, r.title, count, r.source)
        for r in set_rows:
            count = len(snap.members.get(r.url, []))
            snap.value_sets[r.url] = ResourceSummary(r.url, r.name, r.oid, r.version, r.title, count, r.source)
        _index_references(snap)
        return snap

    @staticmethod
    def _add_member(snap: _Snapshot, vs_url: str, system: str, code: str, display: str, deprecated: bool) -> None:
        base = snap.concepts.get(system, {}).get(code)
        member = Concept(
            code, display, system, deprecated, base.date_fin if base else None, base.definition if base else None
        )
        snap.members.setdefault(vs_url, []).append((member, norm_text(display)))
        snap.member_index.setdefault(vs_url, {})[(system, code)] = member

    # --- resolution -----------------------------------------------------------------------------------------------
    def resolve_system(self, ref: str) -> str:
        """Canonical URL of a code system given as URL, OID (`urn:oid:…` or bare), NOS name or short form
        (`R211`, `TRE_R211`, `TRE-R211-ActiviteOperationnelle`, `R66-CategorieEtablissement`, `R13-CommuneOM`)."""
        return self._resolve(ref, self._data().system_refs, "code system")

    def resolve_value_set(self, ref: str) -> str:
        """Canonical URL of a value set given as URL, OID, NOS name or short form (`J17`, `JDV_J17`,
        `JDV_J17-ActiviteOperationnelle-ROR`)."""
        return self._resolve(ref, self._data().value_set_refs, "value set")

    @staticmethod
    def _resolve(ref: str, refs: dict[str, str], kind: str) -> str:
        if not ref or not ref.strip():
            raise InvalidRequest(f"a {kind} reference is required")
        text = ref.strip().split("|", 1)[0]
        found = refs.get(canonical_url(text)) if "://" in text else refs.get(_ref_key(text))
        if found:
            return found
        raise UnknownCode(f"{kind} {ref!r} is not known")

    # --- lookup ---------------------------------------------------------------------------------------------------
    def lookup(self, system: str, code: str) -> Concept:
        url = self.resolve_system(system)
        if url in EXTERNAL_SYSTEMS:
            raise UnknownCode(
                f"code system {self._name(url)} is not loaded in the terminology: {EXTERNAL_SYSTEMS[url]}"
            )
        found = self._data().concepts.get(url, {}).get(code)
        if found is None:
            raise UnknownCode(f"code {code} is not in {self._name(url)}")
        return found

    def display(self, system: str, code: str) -> str:
        return self.lookup(system, code).display

    def system_info(self, ref: str) -> ResourceSummary:
        url = self.resolve_system(ref)
        info = self._data().systems.get(url)
        if info is None:  # an external system (communes)
            return ResourceSummary(url, self._name(url), None, None, None, 0, EXTERNAL_SYSTEMS.get(url))
        return info

    def value_set_info(self, ref: str) -> ResourceSummary:
        return self._data().value_sets[self.resolve_value_set(ref)]

    def _name(self, url: str) -> str:
        data = self._data()
        info = data.systems.get(url) or data.value_sets.get(url)
        if info is not None:
            return info.name
        return url.rsplit("/NOS/", 1)[-1].split("/", 1)[0]

    # --- validation -----------------------------------------------------------------------------------------------
    def validate(self, value_set: str, system: str | None, code: str, *, allow_deprecated: bool = False) -> Concept:
        """The member `code` of `value_set` (label as the value set gives it). `system` may be omitted when the code
        is unambiguous in the value set. Codes outside the value set, and deprecated codes unless
        `allow_deprecated`, raise `UnknownCode`."""
        validated = self._data().validated
        key = (value_set, system, code, allow_deprecated)
        hit = validated.get(key)
        if hit is not None:
            return hit
        member = self._validate(value_set, system, code, allow_deprecated)
        if len(validated) > 50_000:
            validated.clear()  # bounded (codes given by clients)
        validated[key] = member
        return member

    def _validate(self, value_set: str, system: str | None, code: str, allow_deprecated: bool) -> Concept:
        vs_url = self.resolve_value_set(value_set)
        sys_url = self.resolve_system(system) if system else None
        member = self._member(vs_url, sys_url, code)
        if member.deprecated and not allow_deprecated:
            since = f" since {member.date_fin[:10]}" if member.date_fin else ""
            raise UnknownCode(
                f"code {code} ({member.display}) of {self._name(member.system)} is deprecated{since}"
                f" and no longer accepted in {self._name(vs_url)}"
            )
        return member

    def _member(self, vs_url: str, sys_url: str | None, code: str) -> Concept:
        data = self._data()
        index = data.member_index.get(vs_url, {})
        if sys_url is None:
            matches = [m for (_s, c), m in index.items() if c == code]
            if len(matches) > 1:
                systems = ", ".join(sorted(self._name(m.system) for m in matches))
                raise InvalidRequest(f"code {code} is ambiguous in {self._name(vs_url)} ({systems}): give the system")
            if matches:
                return matches[0]
        elif (sys_url, code) in index:
            return index[(sys_url, code)]
        raise UnknownCode(self._not_member_message(vs_url, sys_url, code))

    def _not_member_message(self, vs_url: str, sys_url: str | None, code: str) -> str:
        data = self._data()
        message = f"code {code} is not in {self._name(vs_url)}"
        if sys_url is None:
            return message
        used = {s for s, _c in data.member_index.get(vs_url, {})}
        if sys_url not in used:
            names = ", ".join(sorted(self._name(s) for s in used)) or "no code system"
            return f"{message}: it uses {names}, not {self._name(sys_url)}"
        known = data.concepts.get(sys_url, {}).get(code)
        if known is not None:
            state = f", deprecated since {(known.date_fin or '')[:10]}" if known.deprecated else ""
            return f"{message} (it is {self._name(sys_url)} {code} {known.display!r}{state}, outside this value set)"
        return f"{message} (nor in {self._name(sys_url)})"

    # --- expansion ------------------------------------------------------------------------------------------------
    def expand(
        self, value_set: str, *, text: str | None = None, include_deprecated: bool = False, limit: int | None = None
    ) -> list[Concept]:
        """The value set's codes in their published order. `text` keeps codes starting with it or whose label
        contains it (case- and accent-insensitive); deprecated codes only on request; at most `limit` codes."""
        if limit is not None and limit < 0:
            raise InvalidRequest("limit must be >= 0", expression="limit")
        members = self._data().members.get(self.resolve_value_set(value_set), [])
        code_prefix = (text or "").strip().lower()
        needle = norm_text(text or "")
        out: list[Concept] = []
        for member, label in members:
            if member.deprecated and not include_deprecated:
                continue
            if needle and not (member.code.lower().startswith(code_prefix) or needle in label):
                continue
            if limit is not None and len(out) >= limit:
                break
            out.append(member)
        return out

    # --- catalogue ------------------------------------------------------------------------------------------------
    def code_systems(self) -> list[ResourceSummary]:
        return sorted(self._data().systems.values(), key=lambda s: _sort_key(s.name))

    def value_sets(self) -> list[ResourceSummary]:
        return sorted(self._data().value_sets.values(), key=lambda s: _sort_key(s.name))


def _sort_key(name: str) -> tuple[str, int, str]:
    """By prefix (`JDV_J`, `TRE_G`, `TRE_R`), then number (J17 before J186), then name."""
    m = re.match(r"^([A-Z]+_[A-Z]+)(\d+)", name)
    return (m[1], int(m[2]), name) if m else (name, 0, name)


def _index_references(snap: _Snapshot) -> None:
    for info in snap.systems.values():
        _add_refs(snap.system_refs, info.url, info.name, info.oid)
    for url in EXTERNAL_SYSTEMS:
        name = url.rsplit("/NOS/", 1)[-1].split("/", 1)[0]
        _add_refs(snap.system_refs, url, name, None)
    for info in snap.value_sets.values():
        _add_refs(snap.value_set_refs, info.url, info.name, info.oid)


def _add_refs(refs: dict[str, str], url: str, name: str, oid: str | None) -> None:
    refs.setdefault(url, url)
    for key in reference_keys(name, oid):
        refs.setdefault(key, url)
