"""In-memory lookups on the reference geography (régions, départements, communes and their centroids).

The three `geo_*` tables are read once, lazily, on first use (≈37 k communes, a few MB); `reload()` re-reads
them after `load_geography`. Lookups are plain dictionary accesses: `region_of_commune` is called by the
resource store for every written resource that carries a commune code.

`locate()` finds the INSEE commune of an address given as postcode + city label (FINESS "ligne
d'acheminement"), the way La Poste writes it: upper case, no accents, `ST` for `SAINT`, `CEDEX` codes, names
truncated to 26 characters."""

from __future__ import annotations

import math
import re
import threading
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from sqlalchemy import Engine, select

from ror.db.tables import geo_commune, geo_departement, geo_region

COMMUNE_ACTUELLE = "commune-actuelle"
ARRONDISSEMENT = "arrondissement-municipal"
ACHEMINEMENT_MAX = 26  # longest city label of a FINESS "ligne d'acheminement" (32 chars minus "CP ")


def departement_from_commune_code(code: str) -> str:
    """INSEE commune code -> département code: 97x/98x overseas are 3 characters, else 2 (2A/2B Corsica)."""
    return code[:3] if code[:2] in ("97", "98") else code[:2]


_LIGATURES = str.maketrans({"Œ": "OE", "œ": "OE", "Æ": "AE", "æ": "AE", "ß": "SS"})
_NON_ALNUM = re.compile(r"[^A-Z0-9]+")
_CEDEX = re.compile(r"(?:^| )CEDEX\b.*$")
_ABBREVIATIONS = {"ST": "SAINT", "STE": "SAINTE", "STS": "SAINTS", "STES": "SAINTES"}
_ARRONDISSEMENT_SUFFIX = re.compile(r" \d{1,2}(?: ?(?:E|ER|EME))?$")  # "PARIS 13", "LYON 3EME", "MARSEILLE 01"


@lru_cache(maxsize=1 << 16)
def normalise_place_name(name: str) -> str:
    """`Saint-Étienne-du-Rouvray`, `ST ETIENNE DU ROUVRAY CEDEX 2` -> `SAINT ETIENNE DU ROUVRAY`: upper case,
    no accents or ligatures, punctuation as spaces, saint abbreviations expanded, CEDEX and a trailing
    arrondissement number removed."""
    text = unicodedata.normalize("NFKD", name.translate(_LIGATURES))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).upper()
    text = _NON_ALNUM.sub(" ", text).strip()
    text = _CEDEX.sub("", text).strip()
    text = " ".join(_ABBREVIATIONS.get(word, word) for word in text.split())
    return _ARRONDISSEMENT_SUFFIX.sub("", text)


@dataclass(frozen=True, slots=True)
class Region:
    code: str
    name: str


@dataclass(frozen=True, slots=True)
class Departement:
    code: str
    name: str
    region: str | None


@dataclass(frozen=True, slots=True)
class Commune:
    code: str
    name: str
    type: str  # commune-actuelle | commune-deleguee | commune-associee | arrondissement-municipal
    departement: str | None
    region: str | None
    lat: float | None
    lon: float | None
    postal_codes: tuple[str, ...]
    population: int | None = None

    @property
    def centroid(self) -> tuple[float, float] | None:
        return None if self.lat is None or self.lon is None else (self.lat, self.lon)


@dataclass(frozen=True, slots=True)
class CommuneMatch:
    """The commune found for an address and how: `postcode+name`, `departement+name`, `postcode+prefix`,
    `departement+prefix`, `postcode+nearest`, `departement+nearest`."""

    commune: Commune
    method: str


@dataclass
class _Data:
    regions: dict[str, Region] = field(default_factory=dict)
    departements: dict[str, Departement] = field(default_factory=dict)
    communes: dict[str, Commune] = field(default_factory=dict)
    by_postal_code: dict[str, list[Commune]] = field(default_factory=lambda: defaultdict(list))
    by_departement: dict[str, list[Commune]] = field(default_factory=lambda: defaultdict(list))
    normalised: dict[str, str] = field(default_factory=dict)  # commune code -> normalised name
    # (postcode or département, normalised name) -> communes
    by_name: dict[tuple[str, str], list[Commune]] = field(default_factory=lambda: defaultdict(list))


class Geography:
    """Cached read access to the geography tables (thread-safe lazy load)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._data: _Data | None = None
        self._lock = threading.Lock()

    # -- loading -----------------------------------------------------------------------------------------------
    def reload(self) -> None:
        data = self._read()
        with self._lock:
            self._data = data

    @property
    def loaded(self) -> bool:
        """True when the geography tables hold communes (`load_geography` was run)."""
        return bool(self._get().communes)

    def _get(self) -> _Data:
        data = self._data
        if data is None:
            with self._lock:
                if self._data is None:
                    self._data = self._read()
                data = self._data
        return data

    def _read(self) -> _Data:
        data = _Data()
        with self.engine.connect() as c:
            for r in c.execute(select(geo_region.c.code, geo_region.c.name)):
                data.regions[r.code] = Region(r.code, r.name)
            for r in c.execute(select(geo_departement.c.code, geo_departement.c.name, geo_departement.c.region)):
                data.departements[r.code] = Departement(r.code, r.name, r.region)
            rows = c.execute(select(geo_commune)).all()
        for r in rows:
            commune = Commune(
                code=r.code,
                name=r.name,
                type=r.type,
                departement=r.departement,
                region=r.region,
                lat=r.lat,
                lon=r.lon,
                postal_codes=tuple((r.postal_codes or "").split()),
                population=r.population,
            )
            _index(data, commune)
        return data

    # -- lookups -----------------------------------------------------------------------------------------------
    def commune(self, code: str) -> Commune | None:
        return self._get().communes.get(code)

    def centroid(self, code: str) -> tuple[float, float] | None:
        commune = self._get().communes.get(code)
        return commune.centroid if commune else None

    def departement_of_commune(self, code: str) -> str | None:
        """The département of any INSEE commune code, known to the COG or not (derived from the code)."""
        commune = self._get().communes.get(code)
        if commune is not None and commune.departement:
            return commune.departement
        dep = departement_from_commune_code(code)
        return dep if dep in self._get().departements else None

    def region_of_commune(self, code: str) -> str | None:
        data = self._get()
        commune = data.communes.get(code)
        if commune is not None and commune.region:
            return commune.region
        dep = data.departements.get(departement_from_commune_code(code))
        return dep.region if dep else None

    def region_of_departement(self, code: str) -> str | None:
        dep = self._get().departements.get(code)
        return dep.region if dep else None

    def departement(self, code: str) -> Departement | None:
        return self._get().departements.get(code)

    def region(self, code: str) -> Region | None:
        return self._get().regions.get(code)

    def regions(self) -> list[Region]:
        return sorted(self._get().regions.values(), key=lambda r: r.code)

    def departements(self, region: str | None = None) -> list[Departement]:
        deps = self._get().departements.values()
        return sorted((d for d in deps if region is None or d.region == region), key=lambda d: d.code)

    def communes_by_postal_code(self, postal_code: str) -> list[Commune]:
        return list(self._get().by_postal_code.get(postal_code.strip(), ()))

    def communes_of_departement(self, departement: str) -> list[Commune]:
        return list(self._get().by_departement.get(departement, ()))

    # -- address -> commune ------------------------------------------------------------------------------------
    def locate(
        self,
        postal_code: str,
        city: str,
        *,
        departement: str | None = None,
        lat: float | None = None,
        lon: float | None = None,
    ) -> CommuneMatch | None:
        """The commune of a postal address. Tries, in order: the exact (normalised) name among the communes of
        the postcode, then among the communes of the département (CEDEX postcodes belong to no commune); a
        name that is a word prefix of the other (renamed communes: LOUHANS -> Louhans-Châteaurenaud) or a
        truncated label (26 characters); finally, with coordinates, the nearest commune centroid among the
        communes of the postcode, then of the département. Ties go to the commune closest to the point, else to
        a commune actuelle, else to the most populated."""
        data = self._get()
        name = normalise_place_name(city)
        truncated = len(city.strip()) >= ACHEMINEMENT_MAX
        if truncated:
            name = _drop_partial_cedex(name)
        by_cp = data.by_postal_code.get(postal_code.strip(), [])
        by_dep = data.by_departement.get(departement or "", []) if departement else []
        if name:
            for scope, key in (("postcode", postal_code.strip()), ("departement", departement or "")):
                found = data.by_name.get((key, name))
                if found:
                    return CommuneMatch(_best(found, lat, lon), f"{scope}+name")
            for scope, pool in (("postcode", by_cp), ("departement", by_dep)):
                found = [c for c in pool if _prefix_match(data.normalised[c.code], name, truncated)]
                if found:
                    return CommuneMatch(_best(found, lat, lon), f"{scope}+prefix")
        if lat is None or lon is None:
            return None
        for scope, pool in (("postcode", by_cp), ("departement", by_dep)):
            nearest = _nearest(pool, lat, lon)
            if nearest is not None:
                return CommuneMatch(nearest, f"{scope}+nearest")
        return None


def _index(data: _Data, commune: Commune) -> None:
    name = normalise_place_name(commune.name)
    data.communes[commune.code] = commune
    data.normalised[commune.code] = name
    for cp in commune.postal_codes:
        data.by_postal_code[cp].append(commune)
        data.by_name[cp, name].append(commune)
    if commune.departement:
        data.by_departement[commune.departement].append(commune)
        data.by_name[commune.departement, name].append(commune)


def _drop_partial_cedex(name: str) -> str:
    """A label cut at 26 characters may end in a piece of CEDEX (`… GENEVOIS CEDE`)."""
    head, _, last = name.rpartition(" ")
    return head if head and "CEDEX".startswith(last) else name


def _prefix_match(candidate: str, name: str, truncated: bool) -> bool:
    if truncated and candidate.startswith(name):
        return True
    return candidate.startswith(name + " ") or name.startswith(candidate + " ")


def _distance2(commune: Commune, lat: float, lon: float) -> float:
    """Squared equirectangular distance (degrees²): enough to rank nearby points."""
    assert commune.lat is not None and commune.lon is not None
    dx = (commune.lon - lon) * math.cos(math.radians(lat))
    dy = commune.lat - lat
    return dx * dx + dy * dy


def _best(found: list[Commune], lat: float | None, lon: float | None) -> Commune:
    if len(found) == 1:
        return found[0]
    if lat is not None and lon is not None:
        located = [c for c in found if c.lat is not None and c.lon is not None]
        if located:
            return min(located, key=lambda c: _distance2(c, lat, lon))
    return max(found, key=lambda c: (c.type == COMMUNE_ACTUELLE, c.population or 0))


def _nearest(pool: Iterable[Commune], lat: float, lon: float) -> Commune | None:
    """Nearest commune actuelle or arrondissement (déléguées borrow their parent's point) with a centroid."""
    located = [c for c in pool if c.type in (COMMUNE_ACTUELLE, ARRONDISSEMENT) and c.lat is not None]
    return min(located, key=lambda c: _distance2(c, lat, lon)) if located else None
