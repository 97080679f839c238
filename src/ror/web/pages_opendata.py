"""Données ouvertes: the public download page of the open-data extraction (profile 0 view as CSV, data dictionary,
README, metadata). Anyone may read it, no account. The extraction of the day is written on the first visit of the
day into `<ROR_EXPORT_DIR>/opendata/<YYYY-MM-DD>/` (or earlier by `ror export opendata`); older days stay listed."""

from __future__ import annotations

from datetime import UTC, date
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from ror.config import get_settings
from ror.export.opendata import DESCRIPTIONS, FILES, dated_sets, ensure_today
from ror.export.runner import query_parser
from ror.web.render import PARIS, now_utc, render
from ror.web.session import WebError

router = APIRouter(include_in_schema=False)
MEDIA = {".csv": "text/csv; charset=utf-8", ".json": "application/json", ".md": "text/markdown; charset=utf-8"}
EXTRA = {"README.md": "Présentation, format et licence", "metadata.json": "Date, nombre de lignes, empreintes SHA-256"}
SHOWN_PAST = 10


def opendata_root(request: Request) -> Path:
    return Path(getattr(request.app.state, "export_dir", None) or get_settings().export_dir) / "opendata"


def _today() -> date:
    return now_utc().replace(tzinfo=UTC).astimezone(PARIS).date()


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} o"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} ko".replace(".", ",")
    return f"{n / 1024 / 1024:.1f} Mo".replace(".", ",")


def _files(folder: Path, meta: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name in FILES:
        path = folder / name
        info = meta.get("fichiers", {}).get(name, {})
        out.append(
            {
                "name": name,
                "url": f"/donnees-ouvertes/{folder.name}/{name}",
                "description": info.get("description") or EXTRA.get(name) or DESCRIPTIONS.get(name.split(".")[0], ""),
                "rows": info.get("lignes"),
                "sha256": info.get("sha256"),
                "size": _size(path.stat().st_size) if path.is_file() else "—",
            }
        )
    return out


@router.get("/donnees-ouvertes")
def opendata_page(request: Request) -> Response:
    root = opendata_root(request)
    services = request.app.state.services
    latest = ensure_today(services.engine, query_parser(services), root, _today())
    meta = orjson.loads((latest / "metadata.json").read_bytes())
    context = {
        "title": "Données ouvertes",
        "nav": "donnees",
        "day": latest.name,
        "meta": meta,
        "files": _files(latest, meta),
        "past": [d for d in dated_sets(root) if d != latest.name][:SHOWN_PAST],
    }
    return render(request, "opendata.html", context)


@router.get("/donnees-ouvertes/{day}/{name}")
def opendata_file(request: Request, day: str, name: str) -> Response:
    root = opendata_root(request)
    if name not in FILES or day not in dated_sets(root):
        raise WebError(404, "Fichier introuvable", "Ce fichier de données ouvertes n'existe pas ou plus.")
    stem, _, ext = name.rpartition(".")
    return FileResponse(
        root / day / name,
        media_type=MEDIA["." + ext],
        filename=f"ror-{stem.lower()}-{day}.{ext}",  # dated file name for the person who downloads it
        headers={"Cache-Control": "public, max-age=3600"},
    )
