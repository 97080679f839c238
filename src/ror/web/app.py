"""Wiring of the web application into the ASGI app: routers, static files (own + DSFR), French error pages."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from ror.routing import include
from ror.web import (
    pages_admin,
    pages_auth,
    pages_crisis,
    pages_dashboard,
    pages_entry,
    pages_offer_forms,
    pages_opendata,
    pages_quality,
    pages_reports,
    pages_search,
    pages_tension,
    pages_unit,
    pages_urgences,
    pages_workflow,
)
from ror.web.render import HERE, render
from ror.web.session import LoginRequired, WebError

PROJECT_ROOT = HERE.parents[2]  # src/ror/web -> the project (editable install)


def dsfr_dist() -> Path | None:
    """The DSFR `dist` folder installed by npm (`ROR_DSFR_DIST`, else node_modules of the project or the working
    directory); None when absent (the pages then use the fallback stylesheet only)."""
    candidates = [os.environ.get("ROR_DSFR_DIST", "")]
    candidates += [str(base / "node_modules/@gouvfr/dsfr/dist") for base in (PROJECT_ROOT, Path.cwd())]
    for c in candidates:
        if c and (Path(c) / "dsfr.min.css").is_file():
            return Path(c)
    return None


def install_web(app: FastAPI) -> None:
    dist = dsfr_dist()
    app.state.dsfr_available = dist is not None
    if dist is not None:
        app.mount("/static/dsfr", StaticFiles(directory=str(dist)), name="dsfr")
    app.mount("/static/web", StaticFiles(directory=str(HERE / "static")), name="web-static")
    for module in (pages_auth, pages_search, pages_unit, pages_entry, pages_dashboard, pages_opendata):
        include(app, module.router)
    for module in (pages_reports, pages_quality):  # rapport quotidien, qualité des données
        include(app, module.router)
    include(app, pages_workflow.router)  # /a-traiter, /modifications/{pk} (docs/workflow.md)
    include(app, pages_offer_forms.router)  # /etablissements/{finess}/offres…: offer forms (docs/workflow.md)
    include(app, pages_tension.router)  # /tension: TES board and declarations (docs/tension.md)
    include(app, pages_urgences.router)  # /urgences: emergency activity (docs/urgences.md)
    include(app, pages_crisis.router)  # crisis declaration / end from the dashboard (docs/web.md)
    include(app, pages_admin.router)  # /administration/…: people, API clients, imports, crises, audit log

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home(request: Request) -> Response:
        return render(request, "home.html", {"title": "Accueil"})

    @app.exception_handler(WebError)
    async def web_error(request: Request, exc: WebError) -> Response:
        return render(request, "error.html", {"title": exc.title, "error": exc}, status=exc.status)

    @app.exception_handler(LoginRequired)
    async def login_required(_request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(f"/connexion?suivant={quote(exc.target, safe='')}", status_code=303)
