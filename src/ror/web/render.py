"""Jinja2 rendering of the pages: templates, French date and age formatting, DSFR assets when installed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from ror.web.session import current_session

HERE = Path(__file__).parent
PARIS = ZoneInfo("Europe/Paris")
templates = Jinja2Templates(directory=str(HERE / "templates"))


def now_utc() -> datetime:
    """Naive UTC now (what the database stores)."""
    return datetime.now(UTC).replace(tzinfo=None)


def age(value: datetime | None, now: datetime | None = None) -> str:
    """`il y a 35 min`, `il y a 3 h`, `il y a 2 j` for a naive-UTC (or aware) datetime."""
    if value is None:
        return "jamais"
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    seconds = ((now or now_utc()) - value).total_seconds()
    if seconds < 60:
        return "à l'instant"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"il y a {minutes} min"
    hours = minutes // 60
    if hours < 48:
        rest = minutes % 60
        return f"il y a {hours} h" + (f" {rest:02d}" if hours < 6 and rest else "")
    return f"il y a {hours // 24} j"


def local(value: datetime | None) -> str:
    """`30/11/2026 14:05` in Paris time."""
    if value is None:
        return "—"
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(PARIS).strftime("%d/%m/%Y %H:%M")


def stale(value: datetime | None, hours: int = 24) -> bool:
    return (
        value is None
        or (now_utc() - (value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value)).total_seconds()
        > hours * 3600
    )


def percent(part: float | None, whole: float | None) -> str:
    if not whole or part is None:
        return "—"
    return f"{round(100 * part / whole)} %"


templates.env.filters["age"] = age
templates.env.filters["local"] = local
templates.env.filters["stale"] = stale
templates.env.globals["percent"] = percent


def render(request: Request, name: str, context: dict[str, Any] | None = None, status: int = 200) -> HTMLResponse:
    session = current_session(request)
    ctx: dict[str, Any] = {
        "session": session,
        "person": session.person if session else None,
        "csrf": session.csrf if session else "",
        "dsfr": getattr(request.app.state, "dsfr_available", False),
        "nav": "",
    }
    ctx.update(context or {})
    response = templates.TemplateResponse(request, name, ctx, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    return response
