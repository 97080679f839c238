"""NOS terminology: FSH parser, loader (real reference files, real database), service and FHIR operations."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, func, select

from ror.db.tables import code_system, concept, value_set, value_set_concept
from ror.directory.ids import TRE_R13, TRE_R211, TRE_R332, nos
from ror.errors import InvalidRequest, RorError, UnknownCode
from ror.fhir.terminology import router
from ror.terminology import NosLoadReport, Terminology, load_nos
from ror.terminology.fsh import FshError, parse_fsh
from ror.terminology.loader import canonical_url, nos_name

R211 = TRE_R211
J17 = nos("JDV_J17-ActiviteOperationnelle-ROR")
TABLES = (code_system, concept, value_set, value_set_concept)


@pytest.fixture(scope="module")
def report(engine: Engine, reference_dir: Path) -> NosLoadReport:
    return load_nos(engine, reference_dir / "nos")


@pytest.fixture(scope="module")
def term(engine: Engine, report: NosLoadReport) -> Terminology:
    return Terminology(engine)


class Client:
    """A synchronous facade over httpx's ASGI transport (no server, no thread)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def get(self, path: str, params: dict[str, str] | None = None) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                return await http.get(path, params=params)

        return asyncio.run(call())


@pytest.fixture(scope="module")
def client(term: Terminology) -> Client:
    app = FastAPI()
    app.state.terminology = term
    app.include_router(router, prefix="/fhir")

    @app.exception_handler(RorError)
    async def ror_error(_request: Request, exc: RorError) -> JSONResponse:
        issues = [{"severity": i.severity, "code": i.code, "diagnostics": i.diagnostics} for i in exc.issues]
        for out, issue in zip(issues, exc.issues, strict=True):
            if issue.expression:
                out["expression"] = issue.expression
        return JSONResponse({"resourceType": "OperationOutcome", "issue": issues}, status_code=exc.status)

    return Client(app)


def _codes(
    term: Terminology, value_set: str, *, text: str | None = None, include_deprecated: bool = False
) -> list[str]:
    return [c.code for c in term.expand(value_set, text=text, include_deprecated=include_deprecated)]


def _table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in TABLES}


# --- FSH parser and NOS naming -------------------------------------------------------------------------------------
FSH_SAMPLE = r"""
Alias: $R99 = https://example.org/cs
CodeSystem: TRE_R999_Test
Id: TRE-R999-Test
* ^url = "https://mos.esante.gouv.fr/NOS/TRE_R999-Test/FHIR/TRE-R999-Test"
* ^identifier.value = "urn:oid:1.2.3.4"
* ^version = "20260101120000"
* ^property[0].code = #dateFin
* #01 "Un \"premier\"" "Sa définition"
* #01 ^property[0].code = #dateValid
* #01 ^property[=].valueDateTime = "2020-01-01T12:00:00+01:00"
* #01 ^property[+].code = #finess
* #01 ^property[=].valueBoolean = true
* #02 "Deux"
* #02 ^property[0].code = #status
* #02 ^property[=].valueCode = #deprecated

ValueSet: JDV_J999_Test_ROR
* $TRE-R999-Test#01 "Un"
* $R99#A "Alpha"
* include codes from system $TRE_G15_ProfessionSante
"""


def test_fsh_parser_reads_header_concepts_properties_and_includes() -> None:
    cs, vs = parse_fsh(FSH_SAMPLE)
    assert (cs.kind, cs.id, cs.oid, cs.version) == ("CodeSystem", "TRE-R999-Test", "1.2.3.4", "20260101120000")
    first, second = cs.concepts
    assert (first.code, first.display, first.definition) == ("01", 'Un "premier"', "Sa définition")
    assert first.properties == {"dateValid": "2020-01-01T12:00:00+01:00", "finess": True}
    assert second.properties == {"status": "deprecated"}
    assert vs.kind == "ValueSet" and vs.url is None
    assert [(i.system, [(c.code, c.display) for c in i.concepts or []]) for i in vs.includes] == [
        ("$TRE-R999-Test", [("01", "Un")]),
        ("https://example.org/cs", [("A", "Alpha")]),
        ("$TRE_G15_ProfessionSante", []),
    ]
    assert vs.includes[2].concepts is None


def test_fsh_parser_rejects_unreadable_rules() -> None:
    with pytest.raises(FshError, match="line 3"):
        parse_fsh('CodeSystem: X\n* #01 "ok"\n* 01 broken "rule"\n')
    with pytest.raises(FshError, match="undeclared concept 02"):
        parse_fsh("CodeSystem: X\n* #02 ^property[0].code = #dateFin\n")


def test_nos_naming() -> None:
    assert nos_name("$TRE_G15_ProfessionSante") == "TRE_G15-ProfessionSante"
    assert nos_name("TRE-R211-ActiviteOperationnelle") == "TRE_R211-ActiviteOperationnelle"
    assert nos_name("JDV_J17_ActiviteOperationnelle_ROR") == "JDV_J17-ActiviteOperationnelle-ROR"
    assert nos_name("not a nos name") is None
    canonical = nos("TRE_R340-TypeCaracteristiqueEquipement")
    typo = canonical.replace("Equipement/FHIR", "Equipement.tabs/FHIR")
    assert ".tabs/FHIR/" in typo
    assert canonical_url(typo) == canonical
    truncated = "https://mos.esante.gouv.fr/NOS/TRE_R265-PrestationPilotageSerafin"
    assert canonical_url(truncated) == nos("TRE_R265-PrestationPilotageSerafin")
    assert canonical_url("http://snomed.info/sct") == "http://snomed.info/sct"


# --- loader ------------------------------------------------------------------------------------------------------
def test_load_report(report: NosLoadReport) -> None:
    assert report.files == 145  # 11 FSH + 7 NOS JSON (ConceptMap skipped) + 126 SMT JSON + the capacity csv
    assert (report.code_systems, report.value_sets) == (96, 50)
    assert (report.concepts, report.value_set_concepts) == (4895, 3527)
    assert report.concepts_added_from_value_sets == 346
    skipped = {s.source: s.reason for s in report.skipped}
    assert "ConceptMap" in skipped["nos-2023/ASS_A14-FamilleActivite-ActiviteOperationnelle-FHIR.json"]
    assert skipped["smt-2023/TRE_R332_GenreCapacite.json"] == "superseded by fsh-2026/TRE_R332_GenreCapacite.fsh"
    assert skipped["nos-2023/JDV_J19-ModePriseEnCharge-ROR-FHIR.json"].startswith("superseded by fsh-2026/")
    assert report.seconds < 30


def test_reload_is_idempotent_and_replaces_content(engine: Engine, reference_dir: Path, term: Terminology) -> None:
    before = _table_counts(engine)
    with engine.begin() as conn:  # a stale row of a loaded code system must disappear on reload
        conn.execute(concept.insert().values(system_url=R211, code="XXX", display="stale", deprecated=False))
    again = load_nos(engine, reference_dir / "nos")
    assert _table_counts(engine) == before
    assert (again.concepts, again.value_set_concepts) == (4895, 3527)
    term.reload()
    with pytest.raises(UnknownCode):
        term.lookup("R211", "XXX")


def test_r211_codes_2023_and_2026(term: Terminology) -> None:
    assert term.display("R211", "003") == "Alcoologie"
    assert term.display(R211, "356") == "Soins intensifs spécialisés neurologie vasculaire (USINV)"
    # absent from the 2023 TRE, added from the 2026 J17
    assert term.display("R211", "536") == "Chirurgie oncologique thoracique"
    assert term.display("TRE_R211", "539") == "Chirurgie oncologique mammaire"
    # relabelled in 2026: the newer value set refreshes the 2023 label
    assert term.display("R211", "015") == "Conseil antipoison et toxicovigilance"
    j17 = {c.code: c.display for c in term.expand("J17")}
    assert j17["015"] == "Conseil antipoison et toxicovigilance"
    assert j17["006"] == "Andrologie (urologie médicale)"
    assert all(term.display("R211", code) == label for code, label in j17.items())


def test_current_value_sets_are_the_2026_ones(term: Terminology) -> None:
    expected = {"J17": ("20260629", 548), "J19": ("20260330", 36), "J55": ("20260505", 181)}
    for ref, (version, count) in expected.items():
        info = term.value_set_info(ref)
        assert info.version is not None and info.version.startswith(version), ref
        assert info.count == count, ref
        assert info.source is not None and info.source.startswith("fsh-2026/"), ref
    assert len(term.expand("J17", include_deprecated=True)) == 548
    assert "14" not in _codes(term, "J19", include_deprecated=True)
    assert term.display("R213", "14") == "Hospitalisation kangourou"  # still in the code system
    with pytest.raises(UnknownCode, match="code 14 is not in JDV_J19-ModePriseEnCharge-ROR"):
        term.validate("J19", "R213", "14")
    assert term.validate("J19", "R213", "09").display == "Chirurgie ambulatoire"


def test_capacity_code_systems_and_value_sets(term: Terminology) -> None:
    r332_03 = term.lookup("R332", "03")
    assert (r332_03.display, r332_03.deprecated) == ("Indifférencié", True)
    assert r332_03.date_fin is not None and r332_03.date_fin.startswith("2025-08-28")
    with pytest.raises(UnknownCode, match="deprecated since 2025-08-28"):
        term.validate("J190", TRE_R332, "03")
    assert term.lookup("R330", "07").deprecated is True
    assert term.lookup("R330", "08").deprecated is False
    assert term.lookup("R329", "03").display == "Logement"
    assert _codes(term, "J188", include_deprecated=True) == ["01", "02", "03", "04", "05", "06"]
    assert _codes(term, "J190", include_deprecated=True) == ["01", "02", "04"]
    assert _codes(term, "J187") == ["01", "02", "03"]
    assert _codes(term, "J189") == ["01", "02", "03", "04", "05"]
    assert _codes(term, "J193") == ["01", "02", "03", "04"]
    assert term.value_set_info("J188").oid == "1.2.250.1.213.3.4.21"
    assert term.validate("J188", "R330-TypeStatutCapacite", "02").display == "Disponible"


def test_deprecated_flag_is_kept_in_value_sets(term: Terminology) -> None:
    # R35 closes every code, yet J219 lists them all: membership kept, flag kept
    assert len(term.expand("J219", include_deprecated=True)) == 185
    assert term.expand("J219") == []
    with pytest.raises(UnknownCode, match=r"code RUE \(Rue\) of TRE_R35-TypeVoie is deprecated since"):
        term.validate("J219", "R35", "RUE")
    assert term.validate("J219", "R35", "RUE", allow_deprecated=True).deprecated is True


def test_whole_system_include_and_url_typos(term: Terminology) -> None:
    j51 = term.expand("J51")
    assert len(j51) == 74  # 2 codes of R266 + all 72 of R265
    assert {c.system for c in j51} == {
        nos("TRE_R266-FamilleActiviteOperationnelleHorsSerafin"),
        nos("TRE_R265-PrestationPilotageSerafin"),
    }
    assert term.resolve_value_set("J237") == nos("JDV_J237-RegionOM-ROR")
    assert term.display("R340", "001") == "Poids maximum"
    # J236 lists a code of TRE_G08, which has no file: the code system is derived from the value set
    g08 = [c for c in term.expand("J236") if c.system == nos("TRE_G08-TypeIdentifiantPersonne")]
    assert len(g08) == 1
    assert term.display("G08", g08[0].code) == g08[0].display


def test_short_form_resolution(term: Terminology) -> None:
    for ref in (
        "R211",
        "r211",
        "TRE_R211",
        "TRE-R211-ActiviteOperationnelle",
        "TRE_R211-ActiviteOperationnelle",
        "urn:oid:1.2.250.1.213.3.3.12",
        "1.2.250.1.213.3.3.12",
        R211 + "|20230802150000",
    ):
        assert term.resolve_system(ref) == R211, ref
    assert term.resolve_system("R66-CategorieEtablissement") == nos("TRE_R66-CategorieEtablissement")
    assert term.resolve_system("R13-CommuneOM") == TRE_R13
    assert term.resolve_system("TRE_R67-TypeStructure-EJ-EG") == nos("TRE_R67-TypeStructure-EJ-EG")
    for ref in ("J17", "JDV_J17", "JDV-J17-ActiviteOperationnelle-ROR", "urn:oid:1.2.250.1.213.3.4.5", J17):
        assert term.resolve_value_set(ref) == J17, ref


def test_unknown_references_raise(term: Terminology) -> None:
    with pytest.raises(UnknownCode, match="code system 'R9999' is not known"):
        term.lookup("R9999", "01")
    with pytest.raises(UnknownCode, match="code 999 is not in TRE_R211-ActiviteOperationnelle"):
        term.lookup("R211", "999")
    with pytest.raises(UnknownCode, match="value set 'J9999' is not known"):
        term.expand("J9999")
    with pytest.raises(UnknownCode, match="geography module"):
        term.lookup("R13-CommuneOM", "45234")
    with pytest.raises(UnknownCode, match="it uses TRE_R211-ActiviteOperationnelle, not TRE_R213"):
        term.validate("J17", "R213", "01")
    with pytest.raises(InvalidRequest):
        term.resolve_system("  ")


def test_validate_without_system(term: Terminology) -> None:
    assert term.validate("J55", None, "101").display == "Centre hospitalier régional (CHR)"
    assert term.validate("J55", None, "SA05").system == nos("TRE_R02-SecteurActivite")


def test_expand_filters(term: Terminology) -> None:
    rea = term.expand("J17", text="reanimation")
    assert "126" in [c.code for c in rea]
    assert all("réanimation" in c.display.lower() for c in rea)
    assert _codes(term, "J19", text="0") == ["01", "02", "09"]  # code prefix
    assert _codes(term, "J17", text="REANIMATION MEDICALE") == ["126"]
    assert len(term.expand("J17", limit=5)) == 5
    assert term.expand("J17", text="zzzz-nothing") == []


def test_catalogue(term: Terminology) -> None:
    systems = {s.name: s for s in term.code_systems()}
    assert systems["TRE_R211-ActiviteOperationnelle"].count == 628
    assert systems["TRE_R332-GenreCapacite"].version == "20250828120000"
    names = [v.name for v in term.value_sets()]
    assert names.index("JDV_J17-ActiviteOperationnelle-ROR") < names.index("JDV_J186-ProfessionRessource-ROR")


# --- FHIR operations --------------------------------------------------------------------------------------------------
def _params(body: dict[str, Any]) -> dict[str, Any]:
    return {p["name"]: next((v for k, v in p.items() if k.startswith("value")), None) for p in body["parameter"]}


def test_http_lookup(client: Client) -> None:
    r = client.get("/fhir/CodeSystem/$lookup", params={"system": "R332", "code": "03"})
    assert r.status_code == 200
    body = r.json()
    assert body["resourceType"] == "Parameters"
    params = _params(body)
    assert (params["name"], params["display"]) == ("TRE_R332-GenreCapacite", "Indifférencié")
    props = {p["part"][0]["valueCode"]: p["part"][1] for p in body["parameter"] if p["name"] == "property"}
    assert props["deprecated"] == {"name": "value", "valueBoolean": True}

    missing = client.get("/fhir/CodeSystem/$lookup", params={"system": R211})
    assert missing.status_code == 400
    assert missing.json()["issue"][0]["expression"] == ["code"]
    unknown_code = client.get("/fhir/CodeSystem/$lookup", params={"system": R211, "code": "999"})
    assert unknown_code.status_code == 404
    assert unknown_code.json()["issue"][0]["diagnostics"] == "code 999 is not in TRE_R211-ActiviteOperationnelle"
    unknown_system = client.get("/fhir/CodeSystem/$lookup", params={"system": "R9999", "code": "1"})
    assert (unknown_system.status_code, unknown_system.json()["issue"][0]["code"]) == (404, "not-found")


def test_http_validate_code(client: Client) -> None:
    ok = client.get("/fhir/ValueSet/$validate-code", params={"url": J17, "system": R211, "code": "015"})
    assert ok.status_code == 200
    assert _params(ok.json()) == {"result": True, "display": "Conseil antipoison et toxicovigilance"}
    bad = client.get("/fhir/ValueSet/$validate-code", params={"url": "J190", "system": "R332", "code": "03"})
    assert bad.status_code == 200
    result = _params(bad.json())
    assert result["result"] is False and "deprecated since 2025-08-28" in result["message"]
    assert client.get("/fhir/ValueSet/$validate-code", params={"url": "J9999", "code": "1"}).status_code == 404
    assert client.get("/fhir/ValueSet/$validate-code", params={"url": "J17"}).status_code == 400


def test_http_expand(client: Client) -> None:
    r = client.get("/fhir/ValueSet/$expand", params={"url": "J17", "filter": "reanimation", "count": "3"})
    assert r.status_code == 200
    body = r.json()
    assert (body["resourceType"], body["url"], body["version"]) == ("ValueSet", J17, "20260629120000")
    assert body["expansion"]["total"] == 11
    assert [c["code"] for c in body["expansion"]["contains"]] == ["121", "122", "123"]
    page2 = client.get("/fhir/ValueSet/$expand", params={"url": "J17", "filter": "reanimation", "offset": "10"})
    assert [c["code"] for c in page2.json()["expansion"]["contains"]] == ["244"]
    inactive = client.get("/fhir/ValueSet/$expand", params={"url": "J219", "activeOnly": "false", "count": "1"})
    assert inactive.json()["expansion"]["contains"][0]["inactive"] is True
    bad_count = client.get("/fhir/ValueSet/$expand", params={"url": "J17", "count": "many"})
    assert bad_count.status_code == 400 and bad_count.json()["issue"][0]["expression"] == ["count"]
    assert client.get("/fhir/ValueSet/$expand", params={"url": "J9999"}).status_code == 404


def test_http_catalogues(client: Client) -> None:
    cs = client.get("/fhir/CodeSystem").json()
    assert (cs["type"], cs["total"]) == ("searchset", 96)
    r211 = next(e["resource"] for e in cs["entry"] if e["resource"]["url"] == R211)
    assert r211["count"] == 628 and r211["identifier"][0]["value"] == "urn:oid:1.2.250.1.213.3.3.12"
    vs = client.get("/fhir/ValueSet", params={"name": "capacite"}).json()
    assert {e["resource"]["name"] for e in vs["entry"]} >= {"JDV_J188-TypeStatutCapacite-ROR"}
    assert client.get("/fhir/ValueSet", params={"url": J17}).json()["total"] == 1
