"""FINESS importer: establishments (ET) -> EJ Organization, EG Organization and EG address Location (FHIR R4,
ROR profiles), written through `ResourceStore.bulk_upsert` in batches (idempotent: ids derive from the FINESS
numbers, unchanged content writes nothing).

Sources (format detected from the first line; plain or gzip, detected from the magic bytes):
* the flat national file `finess_et_*_flat_from_fhir.csv[.gz]` — UTF-8, `;`, header line, RFC-4180 quoting,
  WGS84 `latitude`/`longitude`; it has no INSEE commune code: the commune is derived from postcode + city with
  `Geography.locate` (exact name, then word prefix / truncated label, then nearest centroid);
* the official etalab extract (cs1100507 with geolocation, cs1100502 without): no header, first line
  `finess;etalab;<n>;<date>`, `structureet` lines then `geolocalisation` lines (x/y in the CRS of the territory:
  EPSG code read from `sourcecoordet`, else by territory). The file is read twice — coordinates first (a small
  dict), then the establishments — so nothing but that dict is held in memory. Each line is decoded as strict
  UTF-8 and, failing that, as Windows-1252 (a cp1252 byte string with accents is never valid UTF-8, while the
  reverse order would silently turn UTF-8 accents into mojibake);
* an http(s) URL, downloaded (streaming) to a temporary file first.

A malformed line is reported (line number, message) and skipped. An establishment whose commune cannot be
determined gets its Organization but no address Location (the profile requires `ror-commune-cog`): that is
reported as an error of its line too."""

from __future__ import annotations

import csv
import gc
import gzip
import json
import math
import os
import pickle
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

from pyproj import Transformer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine, insert, update

from ror.db.engine import is_sqlite
from ror.db.tables import INDEX_TABLES, import_run, resource, resource_version
from ror.directory import ids
from ror.directory.scope import Scope
from ror.errors import InvalidRequest
from ror.geo.service import Geography
from ror.store import ResourceStore
from ror.store.meta import REGION_SYSTEM
from ror.store.store import UpsertCounts

AUTHOR = "import:finess"
FLAT_COLUMNS = [
    "nofinesset",
    "nofinessej",
    "rs",
    "adresse_ligne1",
    "adresse_ligne2",
    "code_postal",
    "ville",
    "telephone",
    "categetab",
    "libcategetab",
    "categagretab",
    "libcategagretab",
    "siret",
    "codeape",
    "codesph",
    "libsph",
    "dateouv",
    "datemaj",
    "coordxet",
    "coordyet",
    "crs",
    "latitude",
    "longitude",
]
FINESS_RE = re.compile(r"^[0-9][0-9A-Z][0-9]{7}$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
FR_DATE_RE = re.compile(r"^(\d{2})/(\d{2})/(\d{4})$")

# FINESS numbers of overseas establishments: 4-character prefix -> INSEE département
FINESS_OVERSEAS_PREFIX = {
    "9701": "971",
    "9702": "972",
    "9703": "973",
    "9704": "974",
    "9705": "975",
    "9805": "976",
    "9806": "986",
}
# `departement` field of the etalab file -> INSEE département (9A Guadeloupe also covers St-Barthélemy, St-Martin)
ETALAB_DEPARTEMENT = {"9A": "971", "9B": "972", "9C": "973", "9D": "974", "9E": "975", "9F": "976", "9J": "986"}
# CRS of the x/y of each territory when `sourcecoordet` names none (docs/data-sources.md §3)
TERRITORY_EPSG = {"971": 5490, "972": 5490, "973": 2972, "974": 2975, "975": 4467, "976": 4471}
METRO_EPSG = 2154
# Saint-Barthélemy and Saint-Martin left Guadeloupe in 2007: FINESS still writes their former commune codes.
RENUMBERED_COMMUNES = {"97123": "97701", "97127": "97801"}

_EPSG_IN_TEXT = re.compile(r"EPSG\s*:\s*(\d{4,5})", re.IGNORECASE)
_UTM_WGS84 = re.compile(r"WGS\s*84\s*/\s*UTM\s*zone\s*(\d{1,2})\s*([NS])", re.IGNORECASE)
_LAMBERT93 = re.compile(r"LAMBERT[\s_-]?93", re.IGNORECASE)

TYPE_G07 = {"40": "Identifiant national de structure", "1": "FINESS", "3": "SIRET"}


# --- report ---------------------------------------------------------------------------------------------------
@dataclass
class FinessReport:
    source: str
    format: str = ""  # flat | etalab
    extraction_date: str | None = None
    rows_read: int = 0  # establishment lines read (in scope or not, malformed included)
    eg: UpsertCounts = field(default_factory=UpsertCounts)
    ej: UpsertCounts = field(default_factory=UpsertCounts)
    locations: UpsertCounts = field(default_factory=UpsertCounts)
    skipped_out_of_scope: int = 0
    commune_match: dict[str, int] = field(default_factory=dict)  # how the INSEE commune was found -> count
    geolocations: int = 0  # etalab: geolocalisation lines projected to WGS84
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, message)
    aborted: str | None = None  # the exception that stopped the import, if any
    processes: int = 1  # 2: the establishments shared with a worker process (`_import_parallel`)
    seconds: float = 0.0

    def error(self, line: int, message: str) -> None:
        self.errors.append((line, message))

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data["errors"] = [list(e) for e in self.errors[:1000]]
        data["error_count"] = len(self.errors)
        return data


# --- the record shared by both formats ------------------------------------------------------------------------
@dataclass
class Establishment:
    line: int
    finess_et: str
    finess_ej: str
    name: str
    address_lines: list[str]
    postal_code: str
    city: str
    departement: str  # INSEE département (971, 2A, …)
    commune_code: str | None = None  # etalab only: INSEE code as given
    phone: str = ""
    fax: str = ""
    categetab: str = ""
    libcategetab: str = ""
    categagretab: str = ""
    libcategagretab: str = ""
    siret: str = ""
    codesph: str = ""
    libsph: str = ""
    dateouv: str = ""
    datemaj: str = ""
    lat: float | None = None
    lon: float | None = None


class MalformedLine(ValueError):
    pass


# --- entry point ----------------------------------------------------------------------------------------------
def import_finess(
    store: ResourceStore,
    source: str | Path,
    *,
    scope: Scope | None = None,
    geography: Geography | None = None,
    progress: bool = False,
    batch_size: int = 2000,
    parallel: bool | None = None,
) -> FinessReport:
    """Import a FINESS establishment file (flat or etalab format, plain or gzip) or URL. Idempotent.

    `parallel`: share the work with a second process (`_import_parallel`); None (default): when the store is
    empty at the start (a bulk load), the file is large and the machine has two CPUs or more."""
    t0 = time.perf_counter()
    geo = geography or Geography(store.engine)
    if not geo.loaded:
        raise InvalidRequest("the geography is not loaded: run `ror import geo` first")
    report = FinessReport(source=str(source))
    importer = _Importer(store, geo, scope or Scope("national"), report, batch_size)
    with _local_file(source) as path:
        report.format = detect_format(path)
        run_pk = _start_run(store, report)
        try:
            with store.bulk_load() as bulk:
                url = _shareable_url(store.engine)
                if parallel is None:
                    parallel = bulk and (os.cpu_count() or 1) >= 2 and path.stat().st_size >= PARALLEL_MIN_BYTES
                if parallel and url is not None:
                    _import_parallel(path, url, importer, progress)
                else:
                    _import_file(path, importer, progress)
                importer.statistics.at_end(importer.written)
        except BaseException as exc:
            report.aborted = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            report.errors.sort(key=lambda e: e[0])  # in file order (etalab: its geolocations are read first)
            report.commune_match = dict(sorted(importer.matches.items()))
            report.seconds = round(time.perf_counter() - t0, 2)
            _finish_run(store, run_pk, report)
    return report


def _import_file(path: Path, importer: _Importer, progress: bool, check: Callable[[], None] | None = None) -> None:
    """Read the file and write the establishments this importer owns (all of them, or its share of a
    partitioned import: `_import_parallel`, whose worker process `check` watches between batches)."""
    size = path.stat().st_size
    importer.statistics.analyze()
    label = f"FINESS {importer.report.format}" + (f" ({importer.parts} processes)" if importer.parts > 1 else "")
    with _progress_bar(progress) as bar, _gc_paused():
        task = bar.add_task(label, total=size)
        for est, position in _establishments(path, importer.report):
            importer.add(est)
            if importer.pending >= importer.batch_size:
                importer.flush()
                bar.update(task, completed=position)
                if check is not None:
                    check()
        importer.flush()
        bar.update(task, completed=size)


# --- two processes -------------------------------------------------------------------------------------------
PARALLEL_MIN_BYTES = 1_000_000  # below (a département's file), starting a second process costs more than it saves


def _shareable_url(engine: Engine) -> str | None:
    """The database URL a second process can open (not an in-memory SQLite database), with its password."""
    url = engine.url
    if url.get_backend_name() == "sqlite" and (not url.database or url.database == ":memory:"):
        return None
    return url.render_as_string(hide_password=False)


def _import_parallel(path: Path, url: str, importer: _Importer, progress: bool) -> None:
    """A partitioned import: two processes each read the whole file and write every other establishment line
    (`_Importer.owns`), this one and a worker process (`work`). Reading and parsing every line is cheap; the
    commune lookup, the resources, their content hash and index rows and the database writes — nearly all the
    work — are split in two, and each process writes its own batches directly (on SQLite the two take turns
    on the write lock, each preparing its next batch while the other writes; on PostgreSQL both write at
    once). Each process knows every line, so the shared decisions come out the same in both: the duplicate
    establishment lines, and the EJ written by the owner of its first establishment (with that one's region).
    The worker is a plain interpreter (`python -c`: no re-import of the caller's main script, no fork of its
    connections and threads); its job comes on stdin (the URL may hold a password), its report on stdout at
    the end. A failure of either side stops both."""
    cmd = [sys.executable, "-c", "from ror.directory.finess import work; work()"]
    worker = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert worker.stdin is not None and worker.stdout is not None
    importer.part, importer.parts = 0, 2
    importer.report.processes = 2
    try:
        job = (url, str(path), importer.scope, importer.report.format, importer.batch_size, 1, 2)
        pickle.dump(job, worker.stdin)
        worker.stdin.close()
        outcome: list[tuple[FinessReport, Counter[str]]] = []

        def check() -> None:  # a worker that failed stops this process at its next batch, not at the end
            if not outcome and worker.poll() is not None:
                outcome.append(_worker_outcome(worker))

        _import_file(path, importer, progress, check)
        _merge_worker_report(importer, outcome[0] if outcome else _worker_outcome(worker))
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.wait()
        worker.stdout.close()


def _worker_outcome(worker: subprocess.Popen[bytes]) -> tuple[FinessReport, Counter[str]]:
    """The report of a worker process (waiting for its end), or its failure raised here."""
    assert worker.stdout is not None
    try:
        kind, payload = pickle.load(worker.stdout)
    except EOFError:
        code = worker.wait()
        raise RuntimeError(f"the FINESS worker process ended (exit code {code})") from None
    if kind == "error":
        raise payload
    return payload  # type: ignore[no-any-return]


def work() -> None:
    """The worker process of `_import_parallel`: reads its job from stdin, imports its share of the file into the
    bulk load the calling process opened, then writes on stdout, pickled, ("done", (report, commune matches))
    or ("error", exception)."""
    from ror.db.engine import make_engine

    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # stdout carries the outcome: a stray print must not corrupt it
    url, path, scope, fmt, batch_size, part, parts = pickle.load(sys.stdin.buffer)
    engine = make_engine(url)
    try:
        geo = Geography(engine)
        geo.reload()
        store = ResourceStore(engine, region_of=geo.region_of_commune)
        report = FinessReport(source=path, format=fmt)
        importer = _Importer(store, geo, scope, report, batch_size, part=part, parts=parts)
        with store.bulk_load_joined():
            _import_file(Path(path), importer, progress=False)
        pickle.dump(("done", (report, importer.matches)), out)
    except BaseException as exc:  # the caller re-raises it (InvalidRequest for a bad file keeps its message)
        try:
            pickle.loads(pickle.dumps(exc))
        except Exception:  # an exception that cannot be pickled
            exc = RuntimeError(f"{type(exc).__name__}: {exc}")
        with suppress(BrokenPipeError):  # the caller stopped (its own failure, which it reports)
            pickle.dump(("error", exc), out)
    finally:
        with suppress(BrokenPipeError):
            out.flush()
        engine.dispose()


def _merge_worker_report(importer: _Importer, payload: tuple[FinessReport, Counter[str]]) -> None:
    """Both processes read every line: what is about every line (lines read, malformed lines, extraction date,
    geolocations) is the same in both reports; what is about the establishments each one owns is added up."""
    theirs, matches = payload
    report = importer.report
    for mine, other in ((report.ej, theirs.ej), (report.eg, theirs.eg), (report.locations, theirs.locations)):
        mine.add(other)
    report.skipped_out_of_scope += theirs.skipped_out_of_scope
    report.errors = list(dict.fromkeys([*report.errors, *theirs.errors]))
    importer.matches.update(matches)


def detect_format(path: Path) -> str:
    """`flat` (header line `nofinesset;…`) or `etalab` (`finess;etalab;…` or a first `structureet` line)."""
    with _lines(path) as (_, lines):
        first = _decode(next(lines, b"")).lstrip("\ufeff").strip().lower()
    if first.startswith("nofinesset;"):
        return "flat"
    if first.startswith(("finess;", "structureet;")):
        return "etalab"
    raise InvalidRequest(f"{path.name}: unknown FINESS format (first line {first[:60]!r})")


# --- files ----------------------------------------------------------------------------------------------------
@contextmanager
def _local_file(source: str | Path) -> Iterator[Path]:
    text = str(source)
    if not text.startswith(("http://", "https://")):
        path = Path(source)
        if not path.is_file():
            raise InvalidRequest(f"FINESS file not found: {path}")
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="ror-finess-") as tmp:
        target = Path(tmp) / "finess-download"
        _download(text, target)
        yield target


def _download(url: str, target: Path) -> None:
    import httpx

    with httpx.stream("GET", url, follow_redirects=True, timeout=httpx.Timeout(60.0)) as response:
        response.raise_for_status()
        with target.open("wb") as out:
            for chunk in response.iter_bytes(1 << 16):
                out.write(chunk)


@contextmanager
def _lines(path: Path) -> Iterator[tuple[BinaryIO, Iterator[bytes]]]:
    """The file as stored (its position drives the progress bar) and its lines, gunzipped when the file starts
    with the gzip magic number."""
    with path.open("rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
        f.seek(0)
        if gz:
            with gzip.GzipFile(fileobj=f) as g:
                yield f, iter(g)
        else:
            yield f, iter(f)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _split(text: str) -> list[str]:
    return next(csv.reader((text,), delimiter=";", quotechar='"'), [])


def _establishments(path: Path, report: FinessReport) -> Iterator[tuple[Establishment, int]]:
    """(establishment, byte position in the file) of every valid establishment line."""
    if report.format == "flat":
        yield from _flat_records(path, report)
    else:
        positions = _etalab_geolocations(path, report)
        yield from _etalab_records(path, positions, report)


# --- flat format ----------------------------------------------------------------------------------------------
def _flat_records(path: Path, report: FinessReport) -> Iterator[tuple[Establishment, int]]:
    with _lines(path) as (raw, lines):
        reader = csv.reader((_decode(b) for b in lines), delimiter=";", quotechar='"')
        header = [h.strip().lstrip("\ufeff").lower() for h in next(reader, [])]
        missing = [c for c in FLAT_COLUMNS if c not in header]
        if missing:
            raise InvalidRequest(f"{path.name}: flat FINESS file without columns {', '.join(missing)}")
        index = {name: header.index(name) for name in FLAT_COLUMNS}
        for fields in reader:
            if not fields or fields == [""]:
                continue
            report.rows_read += 1
            try:
                est = _flat_establishment(reader.line_num, fields, index, len(header))
            except MalformedLine as exc:
                report.error(reader.line_num, str(exc))
                continue
            if est.datemaj and (report.extraction_date is None or est.datemaj > report.extraction_date):
                report.extraction_date = est.datemaj
            yield est, raw.tell()


def _flat_establishment(line: int, fields: list[str], index: dict[str, int], width: int) -> Establishment:
    if len(fields) != width:
        raise MalformedLine(f"expected {width} fields, got {len(fields)}")

    def get(name: str) -> str:
        return fields[index[name]].strip()

    et, ej = _finess_numbers(get("nofinesset"), get("nofinessej"))
    lat, lon = _float(get("latitude"), "latitude"), _float(get("longitude"), "longitude")
    return Establishment(
        line=line,
        finess_et=et,
        finess_ej=ej,
        name=get("rs"),
        address_lines=[x for x in (get("adresse_ligne1"), get("adresse_ligne2")) if x],
        postal_code=get("code_postal"),
        city=get("ville"),
        departement=departement_of_finess(et),
        phone=get("telephone"),
        categetab=get("categetab"),
        libcategetab=get("libcategetab"),
        categagretab=get("categagretab"),
        libcategagretab=get("libcategagretab"),
        siret=get("siret"),
        codesph=get("codesph"),
        libsph=get("libsph"),
        dateouv=_iso_date(get("dateouv")),
        datemaj=_iso_date(get("datemaj")),
        lat=None if lat is None or lon is None else round(lat, 6),
        lon=None if lat is None or lon is None else round(lon, 6),
    )


# --- etalab format --------------------------------------------------------------------------------------------
def _etalab_lines(path: Path, tag: bytes) -> Iterator[tuple[int, list[str], int]]:
    """(line number, fields, byte position) of the lines starting with `tag`."""
    with _lines(path) as (raw, lines):
        for number, data in enumerate(lines, start=1):
            if data.startswith(tag):
                yield number, _split(_decode(data).rstrip("\r\n")), raw.tell()


def _etalab_geolocations(path: Path, report: FinessReport) -> dict[str, tuple[float, float]]:
    """FINESS ET -> (lat, lon) WGS84 from the `geolocalisation` lines, projected in one call per CRS."""
    by_crs: dict[int, list[tuple[str, float, float, int]]] = {}
    for number, fields, _ in _etalab_lines(path, b"geolocalisation"):
        try:
            et, x, y, epsg = _geolocation(fields)
        except MalformedLine as exc:
            report.error(number, str(exc))
            continue
        if x is not None and y is not None:
            by_crs.setdefault(epsg, []).append((et, x, y, number))
    out: dict[str, tuple[float, float]] = {}
    for epsg, points in by_crs.items():
        lons, lats = _transformer(epsg).transform([p[1] for p in points], [p[2] for p in points])
        for (et, _, _, number), lat, lon in zip(points, lats, lons, strict=True):
            if math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90:
                out[et] = (round(lat, 6), round(lon, 6))
            else:
                report.error(number, f"coordinates of {et} cannot be projected from EPSG:{epsg}")
    report.geolocations = len(out)
    return out


def _geolocation(fields: list[str]) -> tuple[str, float | None, float | None, int]:
    """`geolocalisation;nofinesset;x;y;sourcecoordet;datemaj` (a `;`-split sourcecoordet is tolerated)."""
    while len(fields) > 6 and fields[-1] == "":
        fields = fields[:-1]
    if len(fields) < 6:
        raise MalformedLine(f"geolocalisation line: expected 6 fields, got {len(fields)}")
    et = fields[1].strip()
    if not FINESS_RE.match(et):
        raise MalformedLine(f"invalid FINESS ET number {et!r}")
    x, y = _float(fields[2], "coordxet"), _float(fields[3], "coordyet")
    return et, x, y, crs_of(",".join(fields[4:-1]), departement_of_finess(et))


def crs_of(source: str, departement: str) -> int:
    """EPSG code of FINESS x/y: named in `sourcecoordet` when it is, else the territory's usual CRS."""
    if m := _EPSG_IN_TEXT.search(source):
        return int(m[1])
    if _LAMBERT93.search(source):
        return METRO_EPSG
    if m := _UTM_WGS84.search(source):
        return (32600 if m[2].upper() == "N" else 32700) + int(m[1])
    if departement in TERRITORY_EPSG:
        return TERRITORY_EPSG[departement]
    if departement[:2] in ("97", "98"):
        raise MalformedLine(f"no coordinate reference system known for territory {departement}")
    return METRO_EPSG


@lru_cache(maxsize=32)
def _transformer(epsg: int) -> Transformer:
    return Transformer.from_crs(epsg, 4326, always_xy=True)


def _etalab_records(
    path: Path, positions: dict[str, tuple[float, float]], report: FinessReport
) -> Iterator[tuple[Establishment, int]]:
    with _lines(path) as (_, lines):
        head = _split(_decode(next(lines, b"")).strip())
    if len(head) >= 4 and head[0].lower() == "finess":
        report.extraction_date = head[3].strip() or None
    for number, fields, position in _etalab_lines(path, b"structureet"):
        report.rows_read += 1
        try:
            est = _etalab_establishment(number, fields)
        except MalformedLine as exc:
            report.error(number, str(exc))
            continue
        est.lat, est.lon = positions.get(est.finess_et, (None, None))
        yield est, position


def _etalab_establishment(line: int, f: list[str]) -> Establishment:
    if not 31 <= len(f) <= 33:
        raise MalformedLine(f"structureet line: expected 32 fields, got {len(f)}")
    f = [x.strip() for x in f]
    et, ej = _finess_numbers(f[1], f[2])
    departement = ETALAB_DEPARTEMENT.get(f[13], f[13]) or departement_of_finess(et)
    postal_code, _, city = f[15].partition(" ")
    street = " ".join(x for x in (f[7], f[10], f[8], f[9]) if x)
    return Establishment(
        line=line,
        finess_et=et,
        finess_ej=ej,
        name=f[3],
        address_lines=[x for x in (street, f[6], f[11]) if x],
        postal_code=postal_code,
        city=city.strip(),
        departement=departement,
        commune_code=_insee_code(departement, f[12]),
        phone=f[16],
        fax=f[17],
        categetab=f[18],
        libcategetab=f[19],
        categagretab=f[20],
        libcategagretab=f[21],
        siret=f[22],
        codesph=f[26],
        libsph=f[27],
        dateouv=_iso_date(f[28]),
        datemaj=_iso_date(f[30]),
    )


def _insee_code(departement: str, commune: str) -> str | None:
    """INSEE code from the département and the 3-digit commune: `01`+`451`, `2A`+`004`, `97`+`209` (972)."""
    if not re.fullmatch(r"\d{3}", commune):
        return None
    return (departement[:2] if len(departement) == 3 else departement) + commune


# --- field helpers --------------------------------------------------------------------------------------------
def departement_of_finess(finess: str) -> str:
    """The département of registration of a FINESS number (`2A…`, `35…`, `9702…` -> 972, `9805…` -> 976)."""
    if finess[:2] in ("97", "98"):
        return FINESS_OVERSEAS_PREFIX.get(finess[:4], finess[:3])
    return finess[:2]


def _finess_numbers(et: str, ej: str) -> tuple[str, str]:
    if not FINESS_RE.match(et):
        raise MalformedLine(f"invalid FINESS ET number {et!r}")
    if not FINESS_RE.match(ej):
        raise MalformedLine(f"invalid FINESS EJ number {ej!r} (ET {et})")
    return et, ej


def _float(text: str, name: str) -> float | None:
    text = text.strip().replace(",", ".")
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise MalformedLine(f"{name} is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise MalformedLine(f"{name} is not a number: {text!r}")
    return value


def _iso_date(text: str) -> str:
    """ISO dates as they are; `dd/mm/yyyy` (spreadsheet re-exports) converted; anything else dropped."""
    if DATE_RE.match(text):
        return text
    if m := FR_DATE_RE.match(text):
        return f"{m[3]}-{m[2]}-{m[1]}"
    return ""


# --- resources ------------------------------------------------------------------------------------------------
def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def _concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    return {"coding": [_coding(system, code, display)]}


def _identifier(system: str, value: str, g07: str) -> dict[str, Any]:
    return {"type": _concept(ids.TRE_G07, g07, TYPE_G07[g07]), "system": system, "value": value}


def _meta(profile: str, region: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"profile": [profile]}
    if region:
        meta["tag"] = [{"system": REGION_SYSTEM, "code": region}]
    return meta


def build_ej(finess_ej: str, region: str | None) -> dict[str, Any]:
    """EJ Organization: identifiers only (the ET files carry no EJ name)."""
    return {
        "resourceType": "Organization",
        "id": ids.ej_id(finess_ej),
        "meta": _meta(ids.PROFILE_ORGANIZATION, region),
        "identifier": [
            _identifier(ids.ID_NAT_STRUCT, "1" + finess_ej, "40"),
            _identifier(ids.FINESS, finess_ej, "1"),
        ],
    }


def _telecom(value: str, system: str, channel: str, channel_display: str) -> dict[str, Any]:
    return {
        "extension": [
            {"url": ids.EXT_TELECOM_CHANNEL, "valueCodeableConcept": _concept(ids.TRE_R200, channel, channel_display)},
            {
                "url": ids.EXT_TELECOM_CONFIDENTIALITY,
                "valueCodeableConcept": _concept(ids.TRE_R283, "1", "Accès libre"),
            },
        ],
        "system": system,
        "value": value,
    }


def _address(est: Establishment, commune: tuple[str, str] | None) -> dict[str, Any]:
    address: dict[str, Any] = {}
    if commune is not None:
        address["extension"] = [{"url": ids.EXT_FR_INSEE_CODE, "valueCoding": _coding(ids.TRE_R13, *commune)}]
    if est.address_lines:
        address["line"] = est.address_lines
    if est.city:
        address["city"] = est.city
    if est.postal_code:
        address["postalCode"] = est.postal_code
    return address


def _types(est: Establishment) -> list[dict[str, Any]]:
    types = []
    if est.categetab:
        types.append(_concept(ids.TRE_R66, est.categetab, est.libcategetab))
    if est.categagretab:
        types.append(_concept(ids.TRE_R65, est.categagretab, est.libcategagretab))
    if est.codesph:
        types.append(_concept(ids.TRE_R73, est.codesph, est.libsph))
    return types


def build_eg(est: Establishment, region: str | None, commune: tuple[str, str] | None) -> dict[str, Any]:
    """EG Organization. `commune` = (INSEE code, name) when known."""
    identifiers = [
        _identifier(ids.ID_NAT_STRUCT, "1" + est.finess_et, "40"),
        _identifier(ids.FINESS, est.finess_et, "1"),
    ]
    if re.fullmatch(r"\d{14}", est.siret):
        identifiers.append(_identifier(ids.SIRENE, est.siret, "3"))
    res: dict[str, Any] = {
        "resourceType": "Organization",
        "id": ids.eg_id(est.finess_et),
        "meta": _meta(ids.PROFILE_ORGANIZATION, region),
    }
    if est.dateouv:
        res["extension"] = [{"url": ids.EXT_ORG_PERIOD, "valuePeriod": {"start": est.dateouv}}]
    res["identifier"] = identifiers
    res["active"] = True
    if types := _types(est):
        res["type"] = types
    if est.name:
        res["name"] = est.name
    telecom = [_telecom(est.phone, "phone", "2", "Téléphone fixe")] if est.phone else []
    if est.fax:
        telecom.append(_telecom(est.fax, "fax", "6", "Télécopie"))
    if telecom:
        res["telecom"] = telecom
    if address := _address(est, commune):
        res["address"] = [address]
    res["partOf"] = {"reference": f"Organization/{ids.ej_id(est.finess_ej)}"}
    return res


def build_location(est: Establishment, region: str | None, commune: tuple[str, str]) -> dict[str, Any]:
    """EG address Location (fonctionLieu 005 Adresse), `ror-commune-cog` = (INSEE code, name)."""
    res: dict[str, Any] = {
        "resourceType": "Location",
        "id": ids.eg_address_location_id(est.finess_et),
        "meta": _meta(ids.PROFILE_LOCATION, region),
        "extension": [{"url": ids.EXT_COMMUNE_COG, "valueCodeableConcept": _concept(ids.TRE_R13, *commune)}],
        "status": "active",
        "operationalStatus": _coding(ids.TRE_R203, "3", "Opérationnel"),
    }
    if est.name:
        res["name"] = est.name
    res["type"] = [_concept(ids.TRE_R343, "005", "Adresse")]
    res["address"] = _address(est, None)
    if est.lat is not None and est.lon is not None:
        res["position"] = {"longitude": est.lon, "latitude": est.lat}
    res["managingOrganization"] = {"reference": f"Organization/{ids.eg_id(est.finess_et)}"}
    return res


# --- batching -------------------------------------------------------------------------------------------------
class _Importer:
    """Builds the resources of each in-scope establishment and writes them in batches (one transaction each)."""

    def __init__(
        self,
        store: ResourceStore,
        geo: Geography,
        scope: Scope,
        report: FinessReport,
        batch_size: int,
        *,
        part: int = 0,
        parts: int = 1,
    ):
        self.store, self.geo, self.scope, self.report = store, geo, scope, report
        self.batch_size = batch_size
        self.part, self.parts = part, parts  # a partitioned import: this one owns the lines ≡ part (mod parts)
        self.matches: Counter[str] = Counter()
        self.seen_et: dict[str, int] = {}  # FINESS ET -> line, to report duplicates
        self.seen_ej: set[str] = set()  # each EJ is written once, with its first EG's region
        self.statistics = _Statistics(store.engine)
        self.ej: list[dict[str, Any]] = []
        self.eg: list[dict[str, Any]] = []
        self.locations: list[dict[str, Any]] = []

    @property
    def pending(self) -> int:
        return len(self.eg)

    def owns(self, est: Establishment) -> bool:
        return self.parts == 1 or est.line % self.parts == self.part

    def add(self, est: Establishment) -> None:
        """Every line goes through the decisions shared by the processes of a partitioned import (scope,
        duplicate, first establishment of its EJ); only the owned ones are looked up and written."""
        mine = self.owns(est)
        place = self._place(est, mine)
        if place is None:
            if mine:
                self.report.skipped_out_of_scope += 1
            return
        region, commune = place
        if est.finess_et in self.seen_et:
            if mine:
                first = self.seen_et[est.finess_et]
                self.report.error(est.line, f"FINESS ET {est.finess_et} already read on line {first}: skipped")
            return
        self.seen_et[est.finess_et] = est.line
        new_ej = est.finess_ej not in self.seen_ej
        if new_ej:
            self.seen_ej.add(est.finess_ej)
        if not mine:
            return
        if new_ej:
            self.ej.append(build_ej(est.finess_ej, region))
        self.eg.append(build_eg(est, region, commune))
        if commune is None:
            self.report.error(
                est.line, f"commune of {est.finess_et} unknown ({est.postal_code} {est.city}): no Location"
            )
        else:
            self.locations.append(build_location(est, region, commune))

    def _place(self, est: Establishment, mine: bool = True) -> tuple[str | None, tuple[str, str] | None] | None:
        """(region, commune) of an establishment in scope, None when out of scope. The region is the one of the
        FINESS département (Saint-Barthélemy and Saint-Martin stay with Guadeloupe, as in FINESS and the ARS),
        the commune's when the département is unknown. The commune is looked up only in scope, and for a line
        another process owns only when the region needs it (then not counted: its owner counts it)."""
        region = self.geo.region_of_departement(est.departement)
        if region is not None:
            if not self.scope.accepts(region, est.departement):
                return None
            return region, self._commune(est) if mine else None
        commune = self._commune(est, count=mine)
        region = self.geo.region_of_commune(commune[0]) if commune else None
        return (region, commune) if self.scope.accepts(region, est.departement) else None

    def _commune(self, est: Establishment, count: bool = True) -> tuple[str, str] | None:
        """(INSEE code, name) of the establishment's commune; counts how it was found."""
        method, found = self._locate(est)
        if count:
            self.matches[method] += 1
        return found

    def _locate(self, est: Establishment) -> tuple[str, tuple[str, str] | None]:
        if est.commune_code:
            code = RENUMBERED_COMMUNES.get(est.commune_code, est.commune_code)
            known = self.geo.commune(code)
            if known is not None:
                return ("etalab-code" if code == est.commune_code else "etalab-renumbered"), (known.code, known.name)
        found = self.geo.locate(est.postal_code, est.city, departement=est.departement, lat=est.lat, lon=est.lon)
        if found is None:
            return "unknown", None
        return found.method, (found.commune.code, found.commune.name)

    def flush(self) -> None:
        """Write the pending resources, one transaction. In a partitioned import (a bulk load: the resources are
        new) their versions are prepared first (`prepare_new`), so that the transaction — which on SQLite holds
        the write lock the other process waits for — only looks the ids up and writes."""
        if not self.eg:
            return
        batches = (self.ej, self.eg, self.locations)
        counts = (self.report.ej, self.report.eg, self.report.locations)
        if self.parts > 1:
            prepared = [self.store.prepare_new(batch) for batch in batches]
            with self.store.bulk_write_tx() as conn:
                for versions, count in zip(prepared, counts, strict=True):
                    count.add(self.store.bulk_upsert(prepared=versions, author=AUTHOR, conn=conn))
        else:
            with self.store.bulk_write_tx() as conn:
                for batch, count in zip(batches, counts, strict=True):
                    count.add(self.store.bulk_upsert(batch, author=AUTHOR, conn=conn))
        self.ej, self.eg, self.locations = [], [], []
        self.statistics.after_write(self.written)

    @property
    def written(self) -> int:
        return sum(c.created + c.updated for c in (self.report.ej, self.report.eg, self.report.locations))


class _Statistics:
    """Keeps PostgreSQL's planner statistics of the store tables fresh during a bulk load.

    The store looks resources up by `res_type = … AND res_id IN (…)`. With stale statistics (a table that
    grew from empty within one import, autovacuum off or lagging) PostgreSQL plans that lookup as a scan of
    every resource of the type through `ix_resource_type_updated`: measured 0.3 s per 900-id lookup at 237 k
    resources, which made the national import and re-import take more than 10 minutes. ANALYZE (a sample,
    ~0.1–0.5 s) of `resource` runs at the start and whenever the rows written since the last one double; every
    store table is analysed at the end (sampling the millions of index rows during the load cost ~3 s and no
    statement of the load reads them). Nothing to do on SQLite, whose planner uses the unique index regardless."""

    TABLES = ", ".join(t.name for t in (resource, resource_version, *INDEX_TABLES))

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.enabled = not is_sqlite(engine)
        self.written_at_last = 0

    def analyze(self, tables: str = resource.name) -> None:
        if self.enabled:
            with self.engine.begin() as c:
                c.exec_driver_sql(f"ANALYZE {tables}")

    def after_write(self, written: int) -> None:
        if written >= max(1000, 2 * self.written_at_last):
            self.analyze()
            self.written_at_last = written

    def at_end(self, written: int) -> None:
        if written > 0:
            self.analyze(self.TABLES)
            self.written_at_last = written


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector during the import. The import allocates millions of small acyclic
    containers (parsed rows, FHIR dicts, index rows) that reference counting frees; with the collector on, its
    repeated full scans of the surviving objects cost about as much CPU as the import itself (measured: the
    importer alone 20.7 s -> 9.8 s on the national file). The previous state is restored afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# --- bookkeeping ----------------------------------------------------------------------------------------------
def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _start_run(store: ResourceStore, report: FinessReport) -> int:
    with store.engine.begin() as c:
        result = c.execute(
            insert(import_run)
            .values(kind="finess", source=report.source[:500], started=_now())
            .returning(import_run.c.pk)
        )
        return int(result.scalar_one())


def _finish_run(store: ResourceStore, pk: int, report: FinessReport) -> None:
    totals = UpsertCounts()
    for counts in (report.ej, report.eg, report.locations):
        totals.add(counts)
    with store.engine.begin() as c:
        c.execute(
            update(import_run)
            .where(import_run.c.pk == pk)
            .values(
                finished=_now(),
                created=totals.created,
                updated=totals.updated,
                unchanged=totals.unchanged,
                errors=len(report.errors),
                report=json.dumps(report.summary(), ensure_ascii=False),
            )
        )


def _progress_bar(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        disable=not enabled,
    )
