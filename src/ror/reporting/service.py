"""Entry point shared by the adapters (CLI, API, web page): who may see the report, scope parsing, names."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine

from ror.access.policy import RULES, Profile
from ror.errors import InvalidRequest
from ror.geo.service import Geography
from ror.reporting.daily import DailyReport, daily_report

NEEDED_STATUSES = frozenset({"01", "02", "03", "06"})  # installed, available, occupied, supplementary
FORMATS = ("csv", "xlsx", "fhir")


def may_see(profile: Profile) -> bool:
    """The report shows operational capacity: only profiles that see every capacity status (1 and 4) get it."""
    statuses = RULES[profile].capacity
    return statuses is None or statuses >= NEEDED_STATUSES


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise InvalidRequest(f"date must be YYYY-MM-DD, got {text!r}", expression="date") from exc


def parse_scope(text: str | None) -> tuple[str | None, str | None]:
    """`national` | `region:53` | `departement:35` -> (region, département)."""
    if not text or text.strip().lower() in ("national", "france"):
        return None, None
    kind, _, code = text.strip().partition(":")
    kind = kind.lower()
    if kind in ("region", "région", "reg") and code:
        return code.upper(), None
    if kind in ("departement", "département", "dep") and code:
        return None, code.upper()
    raise InvalidRequest(
        f"scope must be national, region:<code> or departement:<code>, got {text!r}", expression="scope"
    )


def build_daily(
    engine: Engine, geography: Geography | None, day: date, scope: str | None, profile: Profile = Profile.ALL
) -> DailyReport:
    region, departement = parse_scope(scope)
    names: dict[tuple[str, str], str] = {}
    if geography is not None and geography.loaded:
        names |= {("region", r.code): r.name for r in geography.regions()}
        names |= {("departement", d.code): d.name for d in geography.departements()}
    with engine.connect() as conn:
        return daily_report(
            conn,
            day,
            region=region,
            departement=departement,
            include_sensitive=RULES[profile].sensitive_units,
            names=names,
        )
